"""Started without its dependencies, each program says which package is missing and how to install it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT, wine_limit

from chatroom import deps

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The checkout's files without its .venv, in a folder of the test's own (the folders linked; the scripts
    copied, as Python finds the modules beside a script's real path)."""
    copy = tmp_path / "chatroom-checkout"
    copy.mkdir()
    for name in ["chatroom", "requirements.txt", "scripts"]:
        os.symlink(ROOT / name, copy / name)
    for name in ["server.py", "client.py"]:
        shutil.copy(ROOT / name, copy)
    return copy


def run_bare(python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Python with -S: the standard library and the checkout, no installed packages at all, as a system Python
    without chatroom's requirements."""
    return subprocess.run([python, "-S", *args], capture_output=True, text=True, timeout=TIMEOUT * 3, cwd=cwd,
                          stdin=subprocess.DEVNULL)


bare = wine_limit("the embeddable CPython imports site even with -S (its ._pth file says so): it has no bare form")


def launcher(role: str, *args: str) -> str:
    """The launcher command the message names, on this system."""
    if os.name == "nt":
        return " ".join([f"powershell -ExecutionPolicy Bypass -File {os.path.join('scripts', role + '.ps1')}", *args])
    return " ".join([f"scripts/{role}.sh", *args])


CLIENT_MISSING = "the packages readchar, colorama, wcwidth, platformdirs are"
SERVER_MISSING = "the packages confusable-homoglyphs, platformdirs, wcwidth are"
PROGRAMS = [
    ("server.py", ["server.py", "9700"], SERVER_MISSING, launcher("server", "9700")),
    ("client.py", ["client.py", "127.0.0.1", "1"], CLIENT_MISSING,
     launcher("client", "127.0.0.1", "1")),
    ("server.py", ["-c", "from chatroom.launch import server; server()"], SERVER_MISSING,
     launcher("server")),
    ("client.py", ["-c", "from chatroom.launch import client; client()"], CLIENT_MISSING,
     launcher("client")),
]


@bare
@pytest.mark.parametrize("program, args, missing, launcher", PROGRAMS)
def test_a_system_python_without_the_packages_is_sent_to_the_venv_here(checkout, program, args, missing,
                                                                      launcher):
    (checkout / ".venv").mkdir()
    result = run_bare(sys.executable, *args, cwd=checkout)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"{program}: error: {missing} missing from this Python ({sys.executable}); "
                             f"use the .venv here: {launcher}\n")


@bare
@pytest.mark.parametrize("program, args, missing, launcher", PROGRAMS[:2])
def test_without_a_venv_the_launcher_that_creates_it_is_named_never_pip_into_the_system(checkout, program, args,
                                                                                       missing, launcher):
    result = run_bare(sys.executable, *args, cwd=checkout)
    role = program.removesuffix(".py")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"{program}: error: {missing} missing from this Python ({sys.executable}); "
                             f"{launcher} installs them into a new .venv here and starts the {role}\n")
    assert "pip" not in result.stderr


def test_in_a_virtual_environment_pip_completes_it(checkout, tmp_path):
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")],
                          capture_output=True, timeout=TIMEOUT * 6)
    if made.returncode:
        pytest.skip("this Python cannot create a virtual environment (the embeddable build under Wine)")
    python = tmp_path / "env" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    result = subprocess.run([str(python), "server.py", "9700"], capture_output=True, text=True, cwd=checkout,
                            timeout=TIMEOUT * 3, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr == (f"server.py: error: {SERVER_MISSING} missing; install the "
                             f"requirements with: {python} -m pip install -r requirements.txt\n")


def test_one_missing_package_is_named_alone(monkeypatch, capsys):
    monkeypatch.setitem(deps.IMPORT_NAMES, "readchar", "chatroom_no_such_module")
    with pytest.raises(SystemExit) as info:
        deps.require("client.py", *deps.CLIENT)
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("client.py: error: the package readchar is missing")


def test_nothing_is_said_when_everything_is_there(capsys):
    deps.require("server.py", *deps.SERVER, *deps.CLIENT)
    assert capsys.readouterr().err == ""


def test_the_entry_points_check_first():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'chatroom-server = "chatroom.launch:server"' in text
    assert 'chatroom-client = "chatroom.launch:client"' in text


def _pyproject_dependencies() -> list[str]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs tomllib (Python 3.11+)")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_requirements_txt_lists_exactly_pyprojects_dependencies():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    listed = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert sorted(listed) == sorted(_pyproject_dependencies())


def test_the_start_up_check_knows_every_dependency_and_no_other():
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0] for requirement in _pyproject_dependencies()}
    assert set(deps.IMPORT_NAMES) == names
    assert set(deps.SERVER) | set(deps.CLIENT) | set(deps.WINDOW) == names


def test_the_window_checks_its_own_packages_so_the_console_needs_none_of_them(monkeypatch, capsys):
    from argparse import Namespace

    from chatroom.client import gui

    monkeypatch.setitem(deps.IMPORT_NAMES, "sv-ttk", "chatroom_no_such_module")
    assert "sv-ttk" not in deps.CLIENT
    with pytest.raises(SystemExit) as info:
        gui.run(Namespace())
    assert info.value.code == 2
    assert "error: the package sv-ttk is missing" in capsys.readouterr().err


# Every module a program may load, and what it loads at its first use (the window's own packages are checked
# on opening, test above), imported where each installed package the program's check does not name is hidden.
MODULES = {
    "SERVER": ["chatroom.server.main", "chatroom.server.files", "chatroom.server.transfers",
               "chatroom.server.history"],
    "CLIENT": ["chatroom.client.main", "chatroom.client.transfers", "chatroom.client.console.chat",
               "chatroom.client.console.editor"],
}


@pytest.mark.parametrize("program", sorted(MODULES))
def test_each_program_checks_every_package_its_modules_import(program):
    hidden = sorted({deps.IMPORT_NAMES[name] for name in deps.IMPORT_NAMES} -
                    {deps.IMPORT_NAMES[name] for name in getattr(deps, program)})
    script = (
        "import sys, importlib.abc\n"
        f"HIDDEN = {hidden!r}\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in HIDDEN:\n"
        "            raise ImportError(f'{name} is not among the checked packages')\n"
        "sys.meta_path.insert(0, Hide())\n"
        f"for module in {MODULES[program]!r}:\n"
        "    __import__(module)\n"
        # names.py loads its look-alike table (confusable-homoglyphs' data) at the first name it checks
        + ("import chatroom.names\nchatroom.names.skeleton('x')\n" if program == "SERVER" else ""))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-600:]
