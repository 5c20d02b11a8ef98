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
    # Run from a shell inside tmux, the demo becomes another session of the user's own tmux and the terminal
    # showing that shell switches to it: then C-b d would detach the user's tmux, and going back to their
    # session (C-b L, tmux's "last session") is what ends the demo. Elsewhere it is a tmux of its own, attached here.
    if [ -n "${TMUX:-}" ]; then
        # The terminal that shows this shell's session (the latest used, if several do); tmux's "current client"
        # would be any other terminal attached to this tmux when none shows it.
        terminal="$(tmux list-clients -t "${TMUX_PANE:-}" -F '#{client_activity} #{client_name}' 2>/dev/null \
            | sort -n | tail -n 1 | cut -d ' ' -f 2-)" || terminal=""
        [ -n "$terminal" ] || die "no terminal shows this tmux session (it is detached), so the demo has" \
            "nowhere to appear: run it from an attached session or outside tmux (--check needs no terminal)"
        leave="#{prefix} L (back to your session) ends it" ended="Ctrl+B then L (back to this session)"
    else
        [ -t 0 ] || die "the demo shows its panes in this terminal, and there is none here: run it from" \
            "a terminal (--check needs none)"
        leave="#{prefix} d ends it" ended="Ctrl+B then D, or closing the window,"
    fi
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
    # Once nobody looks at the session it ends, and with it the server and every client: after a detach, a
    # closed terminal, or switching to another session. Set only once attached, as it would end it right away.
    keep_until_left=(\; set-option -t "$session" destroy-unattached on)
    if [ -n "${TMUX:-}" ]; then
        tmux switch-client -c "$terminal" -t "$session" "${keep_until_left[@]}" && exit
    else
        tmux attach -t "$session" "${keep_until_left[@]}" && exit
    fi
    # The terminal could not show it after all: leave nothing running.
    if tmux has-session -t "$session" 2>/dev/null; then
        tmux kill-session -t "$session"
        die "tmux could not show the demo here (see its message above); nothing is left running"
    fi
    exit
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
