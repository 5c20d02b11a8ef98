#!/usr/bin/env bash
# Create .venv in the checkout if missing and install chatroom into it. Quick when nothing changed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

extras=""
case "${1:-}" in
    -h|--help) echo "usage: scripts/setup.sh [--test]   (--test also installs the test tools)"; exit 0 ;;
    --test) extras="test" ;;
    "") ;;
    *) die "unknown option $1 (see --help)" ;;
esac
ensure_venv "$extras"
echo "Ready: $VENV"
