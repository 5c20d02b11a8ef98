# Run the relay benchmark (scripts/bench.py) from .venv; arguments go to it (see --help).
. (Join-Path $PSScriptRoot 'lib.ps1')
Initialize-Venv
& (Get-VenvPython) (Join-Path $PSScriptRoot 'bench.py') @args
exit $LASTEXITCODE
