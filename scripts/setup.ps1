# Create .venv in the checkout if missing and install chatroom into it. Quick when nothing changed.
param([switch]$Test, [switch]$Help)
. (Join-Path $PSScriptRoot 'lib.ps1')
if ($Help) { Write-Host 'usage: powershell -ExecutionPolicy Bypass -File scripts\setup.ps1 [-Test]   (-Test also installs the test tools)'; exit 0 }
Initialize-Venv $(if ($Test) { 'test' } else { '' })
Write-Host "Ready: $Venv"
