#!/usr/bin/env bash
# Run a chatroom client from .venv; arguments go to client.py (e.g. scripts/client.sh 127.0.0.1 8080;
# scripts/client.sh --gui opens the window client).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_venv
exec "$(venv_python)" "$ROOT/client.py" "$@"
