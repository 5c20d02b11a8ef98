# Run a chatroom client from .venv; arguments go to client.py
# (e.g. powershell -ExecutionPolicy Bypass -File .\scripts\client.ps1 127.0.0.1 8080).
. (Join-Path $PSScriptRoot 'lib.ps1')
Initialize-Venv
& (Get-VenvPython) (Join-Path $Root 'client.py') @args
exit $LASTEXITCODE
