# Run the chatroom server from .venv; arguments go to server.py
# (e.g. powershell -ExecutionPolicy Bypass -File .\scripts\server.ps1 8080).
. (Join-Path $PSScriptRoot 'lib.ps1')
Initialize-Venv
& (Get-VenvPython) (Join-Path $Root 'server.py') @args
exit $LASTEXITCODE
