#!/usr/bin/env bash
# Run the chatroom server from .venv; arguments go to server.py (e.g. scripts/server.sh 8080).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_venv
exec "$(venv_python)" "$ROOT/server.py" "$@"
