#!/usr/bin/env bash
# Run the relay benchmark (scripts/bench.py) from .venv; arguments go to it (see --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_venv bench  # uvloop for the load generator, py-spy for scripts/profile_server.py
exec "$(venv_python)" "$ROOT/scripts/bench.py" "$@"
