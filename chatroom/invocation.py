"""The command line that starts one of chatroom's programs from a fresh terminal, for the messages that name one.

A fresh terminal has no virtual environment active (and stock Debian and Ubuntu have no `python` at all), so
`python client.py` is often wrong advice there: the checkout's launcher, a venv's interpreter by its path or the
installed command is what works. Standard library only: the dependency check uses it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # a checkout has server.py and scripts/ here


@dataclass(frozen=True)
class Process:
    """What the advice depends on: this interpreter, how the program was called, from which folder, with which
    environment. `current()` is this process."""
    executable: str
    prefix: str
    in_venv: bool
    argv0: str
    cwd: str
    environ: Mapping[str, str]
    windows: bool = False
    root: str = ROOT

    @classmethod
    def current(cls) -> Process:
        return cls(sys.executable, sys.prefix, sys.prefix != sys.base_prefix, sys.argv[0], os.getcwd(), os.environ,
                   os.name == "nt")

    def join(self, *words: str) -> str:
        """Words as one command line for this system's shell."""
        return subprocess.list2cmdline(words) if self.windows else shlex.join(words)

    def shown(self, path: str, command: bool = False) -> str:
        """A path as the user would type it: relative to the current folder when inside it, else whole (a command
        in the current folder as ./NAME: a shell looks for a bare name on PATH)."""
        try:
            relative = os.path.relpath(path, self.cwd)
        except ValueError:  # another drive on Windows
            return path
        if relative.startswith(os.pardir):
            return path
        return os.path.join(os.curdir, relative) if command and not os.path.dirname(relative) else relative

    def activated(self) -> bool:
        """This interpreter's virtual environment is active in this terminal (and in no new one)."""
        active = self.environ.get("VIRTUAL_ENV", "")
        return bool(active) and self.in_venv and os.path.realpath(active) == os.path.realpath(self.prefix)

    def search_path(self, fresh: bool) -> str:
        """PATH here, or as a new terminal has it: without the folder of the virtual environment activated here."""
        active = self.environ.get("VIRTUAL_ENV")
        folders = self.environ.get("PATH", os.defpath).split(os.pathsep)
        if fresh and active:
            folders = [folder for folder in folders
                       if os.path.dirname(os.path.normpath(folder)) != os.path.normpath(active)]
        return os.pathsep.join(folders)

    def python(self, fresh: bool) -> str:
        """This interpreter as a command: its short name when PATH (a new terminal's if `fresh`) finds this very
        one, else its path."""
        name = os.path.basename(self.executable)
        found = shutil.which(name, path=self.search_path(fresh))
        if found and os.path.realpath(found) == os.path.realpath(self.executable):
            return name
        return self.join(self.shown(self.executable, command=True))

    def launcher(self, program: str) -> str:
        """The checkout's launcher for program ("server", "client"): it creates .venv and installs when needed."""
        if self.windows:
            script = self.shown(os.path.join(self.root, "scripts", f"{program}.ps1"))
            return f"powershell -ExecutionPolicy Bypass -File {self.join(script)}"
        return self.join(self.shown(os.path.join(self.root, "scripts", f"{program}.sh"), command=True))

    @property
    def venv(self) -> str:
        """The checkout's virtual environment, which the launchers create and keep installed."""
        return os.path.join(self.root, ".venv")

    def runs_the_checkout_venv(self) -> bool:
        return self.in_venv and os.path.realpath(self.prefix) == os.path.realpath(self.venv)

    def is_checkout(self) -> bool:
        return os.path.isdir(os.path.join(self.root, "scripts"))


def command(program: str, process: Process | None = None, fresh: bool = True) -> str:
    """How to start program ("server" or "client") the way this process was started: the installed command, the
    checkout's launcher (when this is the checkout's .venv and not activated by hand), else this interpreter
    with the program's script. `fresh`: from a new terminal, where no venv is active, so the launcher there."""
    here = process or Process.current()
    called = os.path.basename(here.argv0)
    if called.startswith("chatroom-"):
        folder, wanted = os.path.dirname(here.argv0), f"chatroom-{program}{os.path.splitext(called)[1]}"
        found = shutil.which(wanted, path=here.search_path(fresh))
        if not folder or (found and os.path.samefile(os.path.dirname(found), folder)):
            return f"chatroom-{program}"
        return here.join(here.shown(os.path.join(folder, wanted), command=True))
    if here.runs_the_checkout_venv() and here.is_checkout() and (fresh or not here.activated()):
        return here.launcher(program)
    return f"{here.python(fresh)} {here.join(here.shown(os.path.join(here.root, f'{program}.py')))}"
