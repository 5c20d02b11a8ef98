"""Check at start that the run-time dependencies are installed, before the modules that need them load.

Standard library only, so it works when they are missing: one line and exit status 2, not a traceback
(or, worse, a server that accepts people and fails every login).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from . import invocation

# Distribution (what pip installs) -> the module it provides.
IMPORT_NAMES = {"colorama": "colorama", "readchar": "readchar", "confusable-homoglyphs": "confusable_homoglyphs",
                "platformdirs": "platformdirs", "wcwidth": "wcwidth", "sv-ttk": "sv_ttk", "darkdetect": "darkdetect"}
SERVER = ("confusable-homoglyphs", "platformdirs", "wcwidth")  # wcwidth: a shared file's safe name (filenames.py)
CLIENT = ("readchar", "colorama", "wcwidth", "platformdirs")  # platformdirs: the Downloads folder
WINDOW = ("sv-ttk", "darkdetect")  # the client's --gui: checked when it opens, so a console needs none of them


def missing(*distributions: str) -> list[str]:
    return [name for name in distributions if importlib.util.find_spec(IMPORT_NAMES[name]) is None]


def install_command(distributions: list[str], here: invocation.Process) -> str:
    python = here.python(fresh=False)
    requirements = os.path.join(here.root, "requirements.txt")
    if os.path.isfile(requirements):  # a checkout: install everything it lists
        return f"{python} -m pip install -r {here.join(here.shown(requirements))}"
    return f"{python} -m pip install {here.join(*distributions)}"


def advice(program: str, distributions: list[str], argv: list[str], here: invocation.Process) -> str:
    """What to do about the missing packages. A venv takes them from pip; a system Python must not (Debian's and
    Ubuntu's refuse with externally-managed-environment): there the checkout's .venv and its launcher, which
    creates and fills it, are the way."""
    if here.in_venv or not here.is_checkout():
        return f"; install the requirements with: {install_command(distributions, here)}"
    role = "server" if "server" in program else "client"
    run = " ".join(filter(None, [here.launcher(role), here.join(*argv)]))
    where = f" from this Python ({here.executable})"
    if os.path.isdir(here.venv):
        return f"{where}; use the .venv here: {run}"
    return f"{where}; {run} installs them into a new .venv here and starts the {role}"


def require(program: str, *distributions: str) -> None:
    """Exit with status 2 and one line on stderr if any of `distributions` is not installed."""
    gone = missing(*distributions)
    if gone:
        what = f"the package {gone[0]} is" if len(gone) == 1 else f"the packages {', '.join(gone)} are"
        sys.stderr.write(f"{program}: error: {what} missing"
                         f"{advice(program, gone, sys.argv[1:], invocation.Process.current())}\n")
        raise SystemExit(2)
