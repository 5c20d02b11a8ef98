#!/usr/bin/env bash
# The demo in one command: a server on a free port and a few clients to chat with.
# In tmux panes when tmux is available; otherwise the server in the background and one client here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
usage: scripts/demo.sh [--clients N] [--port P] [--gui] [--check]

  --clients N   how many clients to open (default 3; without tmux only one runs, in this terminal);
                the demo's server lets N + 10 connect from this computer
  --port P      the server's port (default: a free one)
  --gui         also open one window client (python client.py --gui) next to the console ones
  --check       no terminal needed: start the server and N clients, have them exchange one
                message, stop everything, and exit 0 if it all worked
USAGE
}

clients=3 port="" check="" gui=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --clients) [ $# -ge 2 ] || die "--clients needs a number"; clients="$2"; shift 2 ;;
        --port) [ $# -ge 2 ] || die "--port needs a number"; port="$2"; shift 2 ;;
        --check) check=1; shift ;;
        --gui) gui=1; shift ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$clients" =~ ^[1-9][0-9]?$ ]] || die "--clients takes a number from 1 to 99, not '$clients'"
[[ -z "$port" || "$port" =~ ^[0-9]+$ ]] || die "--port takes a number, not '$port'"

ensure_venv
python="$(venv_python)"
port="${port:-$(free_port)}"
if ! "$python" -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    die "port $port is in use (or not allowed); pick another with --port, or leave --port out for a free one"
fi

if [ -n "$check" ]; then
    exec "$python" "$ROOT/scripts/demo_check.py" --port "$port" --clients "$clients"
fi

names=(alice bob carol dave erin frank grace heidi ivan judy)
client_command() {  # the command line for client number $1 (and more arguments, e.g. --gui)
    local name="${names[$(( ($1 - 1) % ${#names[@]} ))]}"
    if [ "$1" -gt "${#names[@]}" ]; then name="$name$1"; fi
    printf '%q ' "$python" "$ROOT/client.py" 127.0.0.1 "$port" "$name" "${@:2}"
}

if [ -n "$gui" ]; then
    "$python" -c 'import tkinter' 2>/dev/null \
        || die "--gui needs Python's tkinter: on Debian/Ubuntu install python3-tk (sudo apt install python3-tk)"
    if [ "$(uname -s)" = Linux ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
        die "--gui needs a desktop to open a window in (DISPLAY is not set)"
    fi
fi

# The server allows 10 connections from one address by default, and 10 logins at once; the demo's clients all
# come from 127.0.0.1, so its own server makes room for them and for 10 more joining by hand. A throwaway room
# keeps no history: no room-PORT.sqlite3 is left behind for a random port.
server=("$python" "$ROOT/server.py" "$port" --max-per-ip "$(( clients + 10 ))" --joins-per-ip 0 --history none)

if command -v tmux >/dev/null 2>&1; then
    session="chatroom-demo-$port"
    demo_terminal
    # The server pane waits for Enter after the server ends, so its last words can be read.
    tmux new-session -d -s "$session" -x "$(tput cols 2>/dev/null || echo 160)" -y "$(tput lines 2>/dev/null || echo 48)" \
        "$(printf '%q ' "${server[@]}"); read -r -p 'server stopped; press Enter'"
    # While it runs, the status line says how to end it and get around, the end first so that even an 80-column
    # terminal shows it (#{prefix} is the user's own prefix key, C-b by default).
    tmux set-option -t "$session" mouse on \; \
        set-option -t "$session" status-left-length 100 \; set-option -t "$session" status-right "" \; \
        set-option -t "$session" status-left " chatroom demo: $leave | #{prefix} + arrow key, or a click: another pane " \
        >/dev/null
    split() {  # one more pane, running $1 after the others are drawn; more tmux split-window options follow
        tmux split-window -t "$session" "${@:2}" "sleep 0.5; $1" 2>/dev/null && return
        tmux kill-session -t "$session"
        die "no room for $clients panes in this terminal: make it larger or ask for fewer --clients"
    }
    for number in $(seq 1 "$clients"); do
        split "$(client_command "$number")"
        tmux select-layout -t "$session" tiled >/dev/null
    done
    # The window client has a one-line pane across the bottom that says where it is: in the session, it ends
    # with the session, like the others.
    if [ -n "$gui" ]; then
        # No newline after the words: in one line, it would scroll them away.
        split "printf 'The window client runs in a window of its own.'; $(client_command $(( clients + 1 )) --gui)" \
            -d -f -v -l 1
    fi
    echo "Demo on port $port in tmux session $session: $ended ends it."
    demo_show "$session"
fi

echo "tmux is not installed, so the demo runs one client here (install tmux for $clients side by side)." >&2
log="$(mktemp)"
"${server[@]}" >"$log" 2>&1 &
server_pid=$!
window_pid=""
# SIGTERM, not SIGINT: a background job of a script ignores SIGINT. The server tells its clients either way.
trap 'kill -TERM $window_pid "$server_pid" 2>/dev/null; wait $window_pid "$server_pid" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 50); do
    grep -q listening "$log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "the server did not start"; }
    sleep 0.1
done
echo "Server on port $port. Others can join with: scripts/client.sh 127.0.0.1 $port"
if [ -n "$gui" ]; then
    eval "$(client_command 2 --gui) &"
    window_pid=$!
fi
"$python" "$ROOT/client.py" 127.0.0.1 "$port" || true
