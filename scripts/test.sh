#!/usr/bin/env bash
# Install chatroom with its test tools into .venv and run the test suite; arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in
    -h|--help) echo "usage: scripts/test.sh [PYTEST ARGUMENTS]   (runs python -m pytest in .venv)"; exit 0 ;;
esac
ensure_venv test
cd "$ROOT"
exec "$(venv_python)" -m pytest "$@"
