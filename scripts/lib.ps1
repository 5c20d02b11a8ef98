# Shared by the PowerShell launchers (dot-sourced, not run): find Python, keep .venv installed.

$Root = Split-Path -Parent $PSScriptRoot
$Venv = Join-Path $Root '.venv'

function Fail([string]$Message) {
    [Console]::Error.WriteLine("chatroom: error: $Message")
    exit 1
}

# The first Python launcher that runs Python 3.10 or newer, as a command and its leading arguments.
function Find-Python {
    $tooOld = $null
    foreach ($candidate in @(@('py', '-3'), @('python'), @('python3'))) {
        if (-not (Get-Command $candidate[0] -ErrorAction SilentlyContinue)) { continue }
        $rest = @($candidate | Select-Object -Skip 1)
        $version = & $candidate[0] @rest -c 'import sys; print(sys.version.split()[0]); sys.exit(sys.version_info < (3, 10))'
        if ($LASTEXITCODE -eq 0) { return ,$candidate }
        # The Windows Store placeholder 'python' prints no version: it is no Python at all.
        if ($version) { $tooOld = "Python $version" }
    }
    if ($tooOld) { Fail "$tooOld is too old: chatroom needs Python 3.10 or newer (https://www.python.org/downloads/)" }
    Fail "no Python found: install Python 3.10 or newer from https://www.python.org/downloads/ (tick 'Add python.exe to PATH')"
}

function Get-VenvPython {
    foreach ($path in @((Join-Path $Venv 'Scripts/python.exe'), (Join-Path $Venv 'bin/python'))) {
        if (Test-Path $path) { return $path }
    }
    return $null
}

# Create .venv if missing and install the project (with extras, e.g. 'test') unless that is done already.
function Initialize-Venv([string]$Extras = '') {
    if (-not (Get-VenvPython)) {
        $python = Find-Python
        $rest = @($python | Select-Object -Skip 1)
        Write-Host "Creating $Venv ..."
        & $python[0] @rest -m venv $Venv
        if ($LASTEXITCODE -ne 0) { Fail "could not create a virtual environment in $Venv" }
    }
    $stamp = Join-Path $Venv '.chatroom-installed'
    # What is installed depends on the project files and the extras: reinstall only when the files change or
    # an extra is missing. More extras than asked for is fine, so the demo after the tests installs nothing.
    $files = @((Join-Path $Root 'pyproject.toml'), (Join-Path $Root 'requirements.txt'))
    $hash = (Get-FileHash -Algorithm SHA256 -LiteralPath $files | ForEach-Object Hash) -join ''
    $installed = if (Test-Path $stamp) { (Get-Content -Raw $stamp).Trim() -split ' extras=', 2 } else { @('', '') }
    if ($installed[0] -eq $hash -and (-not $Extras -or $installed[1] -eq $Extras)) { return }
    if (-not $Extras) { $Extras = $installed[1] }  # keep the extras a changed project file had
    $target = if ($Extras) { "$Root[$Extras]" } else { $Root }
    Write-Host "Installing chatroom into $Venv ..."
    & (Get-VenvPython) -m pip install --quiet --disable-pip-version-check -e $target
    if ($LASTEXITCODE -ne 0) { Fail "installing into $Venv failed (see pip's message above)" }
    Set-Content -LiteralPath $stamp -Value "$hash extras=$Extras"
}

# Quotes one argument for Start-Process, which passes its argument list on as one string.
function Quote([string]$Text) { '"' + $Text + '"' }
