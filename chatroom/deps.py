"""Check at start that the run-time dependencies are installed, before the modules that need them load.

Standard library only, so it works when they are missing: one line and exit status 2, not a traceback
(or, worse, a server that accepts people and fails every login).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

# Distribution (what pip installs) -> the module it provides.
IMPORT_NAMES = {"colorama": "colorama", "readchar": "readchar", "confusable-homoglyphs": "confusable_homoglyphs",
                "platformdirs": "platformdirs", "wcwidth": "wcwidth"}
SERVER = ("confusable-homoglyphs", "platformdirs")
CLIENT = ("readchar", "colorama", "wcwidth")
_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"


def missing(*distributions: str) -> list[str]:
    return [name for name in distributions if importlib.util.find_spec(IMPORT_NAMES[name]) is None]


def _python() -> str:
    """How to name this interpreter in a command: its short name if that finds this very one on PATH."""
    short = shutil.which(os.path.basename(sys.executable))
    if short and os.path.realpath(short) == os.path.realpath(sys.executable):
        return os.path.basename(sys.executable)
    return shlex.quote(sys.executable) if os.name != "nt" else f'"{sys.executable}"'


def install_command(distributions: list[str]) -> str:
    if _REQUIREMENTS.is_file():  # a checkout: install everything it lists
        try:
            where = os.path.relpath(_REQUIREMENTS)
        except ValueError:  # another drive on Windows
            where = str(_REQUIREMENTS)
        return f"{_python()} -m pip install -r {where}"
    return f"{_python()} -m pip install {' '.join(distributions)}"


def require(program: str, *distributions: str) -> None:
    """Exit with status 2 and one line on stderr if any of `distributions` is not installed."""
    gone = missing(*distributions)
    if gone:
        what = f"the package {gone[0]} is" if len(gone) == 1 else f"the packages {', '.join(gone)} are"
        sys.stderr.write(f"{program}: error: {what} missing; install the requirements with: "
                         f"{install_command(gone)}\n")
        raise SystemExit(2)
