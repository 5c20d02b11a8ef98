# The demo in one command: a server on a free port and a few clients, each in a window of its own.
# Closing the client windows (or Ctrl+C here) ends the demo and stops the server.
param(
    [ValidateRange(1, 99)][int]$Clients = 3,
    [ValidateRange(0, 65535)][int]$Port = 0,
    [switch]$Check,
    [switch]$Gui,
    [switch]$Help
)
. (Join-Path $PSScriptRoot 'lib.ps1')
if ($Help) {
    Write-Host @'
usage: powershell -ExecutionPolicy Bypass -File scripts\demo.ps1 [-Clients N] [-Port P] [-Gui] [-Check]

  -Clients N   how many client windows to open (default 3); the demo's server lets N + 10
               connect from this computer
  -Port P      the server's port (default: a free one)
  -Gui         also open one window client (python client.py --gui) next to the console ones
  -Check       no windows: start the server and N clients, have them exchange one message,
               stop everything, and exit 0 if it all worked
'@
    exit 0
}
Initialize-Venv
$python = Get-VenvPython
if ($Port -eq 0) {
    # Single quotes inside the Python code: Windows PowerShell 5.1 drops double quotes in native arguments.
    $Port = [int](& $python -c 'import socket; s = socket.socket(); s.bind((''127.0.0.1'', 0)); print(s.getsockname()[1])')
}
& $python -c 'import socket, sys; socket.socket().bind((''127.0.0.1'', int(sys.argv[1])))' $Port 2>$null
if ($LASTEXITCODE -ne 0) {
    Fail "port $Port is in use (or not allowed); pick another with -Port, or leave -Port out for a free one"
}
if ($Check) {
    & $python (Join-Path $PSScriptRoot 'demo_check.py') --port $Port --clients $Clients
    exit $LASTEXITCODE
}

# As in demo.sh: room for all the clients from 127.0.0.1 and 10 more, and no history kept (a throwaway room
# leaves no room-PORT.sqlite3 behind).
$server = Start-Process -FilePath $python -PassThru `
    -ArgumentList @((Quote (Join-Path $Root 'server.py')), $Port, '--max-per-ip', ($Clients + 10), '--joins-per-ip', 0,
                    '--history', 'none')
$names = @('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy')
function Get-ClientName([int]$Number) {
    $name = $names[($Number - 1) % $names.Count]
    if ($Number -gt $names.Count) { $name = "$name$Number" }
    return $name
}
$windows = @()
try {
    Start-Sleep -Milliseconds 700  # the server's window opens first
    if ($server.HasExited) { Fail "the server did not start (exit status $($server.ExitCode))" }
    foreach ($number in 1..$Clients) {
        $name = Get-ClientName $number
        $windows += Start-Process -FilePath $python -PassThru `
            -ArgumentList @((Quote (Join-Path $Root 'client.py')), '127.0.0.1', $Port, $name)
    }
    if ($Gui) {
        # pythonw runs the window client without a console window of its own.
        $pythonw = Join-Path (Split-Path -Parent $python) 'pythonw.exe'
        if (-not (Test-Path $pythonw)) { $pythonw = $python }
        $windows += Start-Process -FilePath $pythonw -PassThru `
            -ArgumentList @((Quote (Join-Path $Root 'client.py')), '127.0.0.1', $Port, (Get-ClientName ($Clients + 1)), '--gui')
    }
    Write-Host "Demo on port $Port with $Clients clients. Close their windows (or press Ctrl+C here) to end it."
    Write-Host "Others can join with: powershell -ExecutionPolicy Bypass -File .\scripts\client.ps1 127.0.0.1 $Port"
    $windows | Wait-Process
} finally {
    foreach ($process in @($server) + $windows) {
        if (-not $process.HasExited) { Stop-Process -Id $process.Id -Force -ErrorAction SilentlyContinue }
    }
    Write-Host 'Demo ended; the server is stopped.'
}
