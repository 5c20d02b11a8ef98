# Shared by the bash launchers (sourced, not run): find Python, keep .venv installed.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

die() {
    echo "$(basename "$0"): error: $*" >&2
    exit 1
}

# The first python3/python on PATH that is 3.10 or newer.
find_python() {
    local candidate found=""
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then
            found="$candidate"
            if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
                echo "$candidate"
                return
            fi
        fi
    done
    if [ -n "$found" ]; then
        die "$("$found" --version 2>&1) is too old: chatroom needs Python 3.10 or newer (https://www.python.org/downloads/)"
    fi
    die "no Python found: install Python 3.10 or newer (https://www.python.org/downloads/) and make sure 'python3' is on PATH"
}

venv_python() {
    if [ -x "$VENV/bin/python" ]; then echo "$VENV/bin/python"; else echo "$VENV/Scripts/python.exe"; fi
}

# Create .venv if missing and install the project (with extras, e.g. "test") unless that is done already.
ensure_venv() {
    local extras="${1:-}" python stamp files installed=""
    if [ ! -x "$VENV/bin/python" ] && [ ! -x "$VENV/Scripts/python.exe" ]; then
        python="$(find_python)"
        echo "Creating $VENV ..." >&2
        "$python" -m venv "$VENV" || die "could not create a virtual environment in $VENV"
    fi
    python="$(venv_python)"
    stamp="$VENV/.chatroom-installed"
    # What is installed depends on the project files and the extras: reinstall only when the files change or
    # an extra is missing. More extras than asked for is fine, so the demo after the tests installs nothing.
    files="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.txt" | cksum)"
    [ -f "$stamp" ] && installed="$(cat "$stamp")"
    if [ "${installed% extras=*}" = "$files" ] && [[ -z "$extras" || "${installed##* extras=}" == "$extras" ]]; then
        return
    fi
    [ -n "$extras" ] || extras="${installed##* extras=}"  # keep the extras a changed project file had
    echo "Installing chatroom${extras:+ [$extras]} into $VENV ..." >&2
    "$python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}" \
        || die "installing into $VENV failed (see pip's message above)"
    echo "$files extras=$extras" >"$stamp"
}

# A free TCP port on 127.0.0.1.
free_port() {
    "$(venv_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The tmux demos (demo.sh, cluster-demo.sh): where the demo's session will show, and how it is left. Run from a
# shell inside tmux, the demo becomes another session of the user's own tmux and the terminal showing that shell
# switches to it: then C-b d would detach the user's tmux, and going back to their session (C-b L, tmux's "last
# session") is what ends the demo. Elsewhere it is a tmux of its own, attached here. Sets `terminal` (inside
# tmux), `leave` (for the status line) and `ended` (for this terminal).
demo_terminal() {
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
}

# Show the demo's tmux session (the target $1: SESSION or SESSION:WINDOW) where demo_terminal found, and exit.
# Once nobody looks at the session it ends, and with it everything running in it: after a detach, a closed
# terminal, or switching to another session. Set only once attached, as it would end it right away.
demo_show() {
    local session="${1%%:*}" keep_until_left
    keep_until_left=(\; set-option -t "$session" destroy-unattached on)
    if [ -n "${TMUX:-}" ]; then
        tmux switch-client -c "$terminal" -t "$1" "${keep_until_left[@]}" && exit
    else
        tmux attach -t "$1" "${keep_until_left[@]}" && exit
    fi
    # The terminal could not show it after all: leave nothing running.
    if tmux has-session -t "$session" 2>/dev/null; then
        tmux kill-session -t "$session"
        die "tmux could not show the demo here (see its message above); nothing is left running"
    fi
    exit
}
