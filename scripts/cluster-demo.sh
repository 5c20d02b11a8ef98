#!/usr/bin/env bash
# One room on three servers (--cluster), in one command: a local Redis without persistence on a free port, three
# servers sharing the room through it, and clients spread over them. In tmux panes when tmux is available (leaving
# the session ends everything, Redis included); otherwise all of it in the background and one client here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVERS=3

usage() {
    cat <<USAGE
usage: scripts/cluster-demo.sh [--clients N] [--check]

  --clients N   how many clients to open, spread over the $SERVERS servers (default 3: one on each; without
                tmux only one runs, in this terminal)
  --check       no terminal needed: start Redis, the servers and N clients, have them exchange one message
                across the servers, stop everything, and exit 0 if it all worked

Needs redis-server (Debian/Ubuntu: sudo apt install redis-server; macOS: brew install redis). The servers use
free ports, keep no history, and have file sharing off (a file would stay on one server).
USAGE
}

clients=3 check=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --clients) [ $# -ge 2 ] || die "--clients needs a number"; clients="$2"; shift 2 ;;
        --check) check=1; shift ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$clients" =~ ^[1-9][0-9]?$ ]] || die "--clients takes a number from 1 to 99, not '$clients'"
command -v redis-server >/dev/null 2>&1 \
    || die "the cluster demo needs redis-server: on Debian/Ubuntu sudo apt install redis-server (macOS: brew install redis)"

ensure_venv
python="$(venv_python)"
# The servers need the redis package (the "cluster" extra); the tests' install has it already.
"$python" -c 'import redis' 2>/dev/null || ensure_venv cluster

redis_port="$(free_port)"
ports=()
for _ in $(seq 1 "$SERVERS"); do ports+=("$(free_port)"); done
url="redis://127.0.0.1:$redis_port/0"
folder="$(mktemp -d)"
# No persistence: the cluster refuses a Redis that writes to disk (private messages pass through it).
redis=(redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$folder" --loglevel warning)
# All the clients come from 127.0.0.1: the servers make room for them, as demo.sh's does.
server_command() {  # the command line for the server on port $1
    printf '%q ' "$python" "$ROOT/server.py" "$1" --cluster "$url" --max-per-ip "$(( clients + 10 ))" \
        --joins-per-ip 0 --history none
}
names=(alice bob carol dave erin frank grace heidi ivan judy)
client_command() {  # the command line for client number $1, on the servers in turn
    local name="${names[$(( ($1 - 1) % ${#names[@]} ))]}"
    if [ "$1" -gt "${#names[@]}" ]; then name="$name$1"; fi
    printf '%q ' "$python" "$ROOT/client.py" 127.0.0.1 "${ports[$(( ($1 - 1) % SERVERS ))]}" "$name"
}
wait_for_redis() {
    for _ in $(seq 1 100); do
        "$python" -c 'import socket, sys; s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
s.sendall(b"PING\r\n"); sys.exit(not s.recv(16).startswith(b"+PONG"))' "$redis_port" 2>/dev/null && return
        sleep 0.1
    done
    die "redis-server did not start on port $redis_port"
}

if [ -n "$check" ] || ! command -v tmux >/dev/null 2>&1; then
    "${redis[@]}" --daemonize no >"$folder/redis.log" 2>&1 &
    redis_pid=$!
    pids=("$redis_pid")
    # SIGTERM, not SIGINT: a background job of a script ignores SIGINT. Each server tells its clients either way.
    trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$folder"' EXIT
    wait_for_redis
    if [ -n "$check" ]; then
        "$python" "$ROOT/scripts/demo_check.py" --cluster "$url" --clients "$clients" \
            $(printf -- '--port %s ' "${ports[@]}")
        exit
    fi
    echo "tmux is not installed, so the demo runs one client here (install tmux for $clients side by side)." >&2
    for port in "${ports[@]}"; do
        eval "$(server_command "$port") >>\"\$folder/servers.log\" 2>&1 &"
        pids+=($!)
    done
    for _ in $(seq 1 50); do
        [ "$(grep -c listening "$folder/servers.log" 2>/dev/null)" -ge "$SERVERS" ] && break
        sleep 0.1
    done
    grep -c listening "$folder/servers.log" | grep -qx "$SERVERS" || { cat "$folder/servers.log" >&2; die "the servers did not start"; }
    echo "Servers on ports ${ports[*]}, one room through Redis on port $redis_port. Others can join any of them" \
        "with: scripts/client.sh 127.0.0.1 PORT"
    "$python" "$ROOT/client.py" 127.0.0.1 "${ports[0]}" || true
    exit
fi

session="chatroom-cluster-demo-$redis_port"
demo_terminal
# Redis runs in the session's first window, so that it ends with the session: Redis ignores the SIGHUP a closed
# pane sends, so the pane's shell turns it into a SIGTERM. Its folder goes with it.
tmux new-session -d -s "$session" -x "$(tput cols 2>/dev/null || echo 160)" -y "$(tput lines 2>/dev/null || echo 48)" \
    "$(printf '%q ' "${redis[@]}") & trap 'kill -TERM \$!' HUP TERM; wait; wait; rm -rf $(printf '%q' "$folder")"
tmux rename-window -t "$session:0" redis \; new-window -t "$session" -n room "sleep 0.1" >/dev/null
wait_for_redis
tmux respawn-pane -k -t "$session:room" \
    "$(server_command "${ports[0]}"); read -r -p 'server stopped; press Enter'"
tmux set-option -t "$session" mouse on \; \
    set-option -t "$session" status-left-length 120 \; set-option -t "$session" status-right "" \; \
    set-option -t "$session" status-left " chatroom cluster demo: $leave | #{prefix} + arrow key, or a click: another pane " \
    >/dev/null
split() {  # one more pane in the room's window, running $1 after the others are drawn
    tmux split-window -t "$session:room" "sleep 0.5; $1" 2>/dev/null && return
    tmux kill-session -t "$session"
    die "no room for $(( SERVERS + clients )) panes in this terminal: make it larger or ask for fewer --clients"
}
for port in "${ports[@]:1}"; do
    split "$(server_command "$port"); read -r -p 'server stopped; press Enter'"
    tmux select-layout -t "$session:room" tiled >/dev/null
done
for number in $(seq 1 "$clients"); do
    split "sleep 1; $(client_command "$number")"  # the servers listen first
    tmux select-layout -t "$session:room" tiled >/dev/null
done
echo "Cluster demo (Redis on port $redis_port, servers on ${ports[*]}) in tmux session $session: $ended ends it."
demo_show "$session:room"
