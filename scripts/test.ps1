# Install chatroom with its test tools into .venv and run the test suite; arguments go to pytest.
. (Join-Path $PSScriptRoot 'lib.ps1')
Initialize-Venv 'test'
Push-Location $Root
try {
    & (Get-VenvPython) -m pytest @args
    $status = $LASTEXITCODE
} finally {
    Pop-Location
}
exit $status
