# Run a chatroom client from .venv; arguments go to client.py
# (e.g. powershell -ExecutionPolicy Bypass -File .\scripts\client.ps1 127.0.0.1 8080).
# -Gui opens the window client (client.py --gui).
. (Join-Path $PSScriptRoot 'lib.ps1')
Initialize-Venv
$rest = @($args | ForEach-Object { if ($_ -eq '-Gui') { '--gui' } else { $_ } })
& (Get-VenvPython) (Join-Path $Root 'client.py') @rest
exit $LASTEXITCODE
