# One room on three servers (--cluster), in one command: a local Redis without persistence on a free port, three
# servers sharing the room through it, and clients spread over them, each in a window of its own. Closing the
# client windows (or Ctrl+C here) ends the demo: the servers and Redis are stopped.
# Needs a redis-server on PATH (Windows has none of its own: Memurai, or Redis for Windows builds, provide one).
param(
    [ValidateRange(1, 99)][int]$Clients = 3,
    [switch]$Check,
    [switch]$Help
)
. (Join-Path $PSScriptRoot 'lib.ps1')
$Servers = 3
if ($Help) {
    Write-Host @'
usage: powershell -ExecutionPolicy Bypass -File scripts\cluster-demo.ps1 [-Clients N] [-Check]

  -Clients N   how many client windows to open, spread over the 3 servers (default 3: one on each)
  -Check       no windows: start Redis, the servers and N clients, have them exchange one message
               across the servers, stop everything, and exit 0 if it all worked

Needs redis-server on PATH (Memurai's memurai.exe is taken too). The servers use free ports, keep no
history, and have file sharing off (a file would stay on one server).
'@
    exit 0
}
$redisServer = Get-Command redis-server, memurai -ErrorAction SilentlyContinue | Select-Object -First 1
if (-not $redisServer) {
    Fail 'the cluster demo needs redis-server on PATH (on Windows: Memurai, or a Redis for Windows build)'
}
Initialize-Venv
$python = Get-VenvPython
# The servers need the redis package (the "cluster" extra); the tests' install has it already.
& $python -c 'import redis' 2>$null
if ($LASTEXITCODE -ne 0) { Initialize-Venv 'cluster' }

function Get-FreePort {
    # Single quotes inside the Python code: Windows PowerShell 5.1 drops double quotes in native arguments.
    [int](& $python -c 'import socket; s = socket.socket(); s.bind((''127.0.0.1'', 0)); print(s.getsockname()[1])')
}
$redisPort = Get-FreePort
$ports = @(1..$Servers | ForEach-Object { Get-FreePort })
$url = "redis://127.0.0.1:$redisPort/0"
$folder = Join-Path ([IO.Path]::GetTempPath()) "chatroom-cluster-$redisPort"
New-Item -ItemType Directory -Force -Path $folder | Out-Null
# No persistence: the cluster refuses a Redis that writes to disk (private messages pass through it).
$redis = Start-Process -FilePath $redisServer.Source -PassThru -WindowStyle Hidden `
    -ArgumentList @('--port', $redisPort, '--bind', '127.0.0.1', '--save', '""', '--appendonly', 'no',
                    '--dir', (Quote $folder))
$started = @($redis)
$windows = @()
try {
    $ready = $false
    foreach ($attempt in 1..100) {
        & $python -c 'import socket, sys; s = socket.create_connection((''127.0.0.1'', int(sys.argv[1])), 1); s.sendall(b''PING\r\n''); sys.exit(not s.recv(16).startswith(b''+PONG''))' $redisPort 2>$null
        if ($LASTEXITCODE -eq 0) { $ready = $true; break }
        Start-Sleep -Milliseconds 100
    }
    if (-not $ready) { Fail "redis-server did not start on port $redisPort" }
    if ($Check) {
        $portArguments = @($ports | ForEach-Object { '--port', $_ })
        & $python (Join-Path $PSScriptRoot 'demo_check.py') --cluster $url --clients $Clients @portArguments
        exit $LASTEXITCODE
    }
    # As in demo.sh: room for all the clients from 127.0.0.1 and 10 more, and no history kept.
    foreach ($port in $ports) {
        $started += Start-Process -FilePath $python -PassThru `
            -ArgumentList @((Quote (Join-Path $Root 'server.py')), $port, '--cluster', $url, '--max-per-ip',
                            ($Clients + 10), '--joins-per-ip', 0, '--history', 'none')
    }
    Start-Sleep -Milliseconds 1000  # the servers' windows open first
    foreach ($process in $started) {
        if ($process.HasExited) { Fail "a server did not start (exit status $($process.ExitCode))" }
    }
    $names = @('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy')
    foreach ($number in 1..$Clients) {
        $name = $names[($number - 1) % $names.Count]
        if ($number -gt $names.Count) { $name = "$name$number" }
        $windows += Start-Process -FilePath $python -PassThru `
            -ArgumentList @((Quote (Join-Path $Root 'client.py')), '127.0.0.1', $ports[($number - 1) % $Servers], $name)
    }
    Write-Host "Cluster demo: servers on ports $($ports -join ', '), one room through Redis on port $redisPort."
    Write-Host 'Close the client windows (or press Ctrl+C here) to end it.'
    $windows | Wait-Process
} finally {
    foreach ($process in $windows + $started) {
        if (-not $process.HasExited) { Stop-Process -Id $process.Id -Force -ErrorAction SilentlyContinue }
    }
    Remove-Item -Recurse -Force -LiteralPath $folder -ErrorAction SilentlyContinue
    Write-Host 'Demo ended; the servers and Redis are stopped.'
}
