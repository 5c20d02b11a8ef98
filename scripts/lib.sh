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
