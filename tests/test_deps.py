"""Started without its dependencies, each program says which package is missing and how to install it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT, wine_limit

from chatroom import deps

ROOT = Path(__file__).resolve().parent.parent
INSTALL = "-m pip install -r requirements.txt\n"


def run_bare(*args: str) -> subprocess.CompletedProcess:
    """Python with -S: the standard library and the checkout, no installed packages at all."""
    return subprocess.run([sys.executable, "-S", *args], capture_output=True, text=True, timeout=TIMEOUT * 3,
                          cwd=ROOT, stdin=subprocess.DEVNULL)


@wine_limit("the embeddable CPython imports site even with -S (its ._pth file says so)")
@pytest.mark.parametrize("program, args, missing", [
    ("server.py", ["server.py", "0"], "the package confusable-homoglyphs is"),
    ("client.py", ["client.py", "127.0.0.1", "1"], "the packages readchar, colorama are"),
    ("server.py", ["-c", "from chatroom.launch import server; server()"], "the package confusable-homoglyphs is"),
    ("client.py", ["-c", "from chatroom.launch import client; client()"], "the packages readchar, colorama are"),
])
def test_a_program_without_its_packages_exits_with_one_line(program, args, missing):
    result = run_bare(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"{program}: error: {missing} missing; install the requirements with: ")
    assert result.stderr.endswith(INSTALL) and result.stderr.count("\n") == 1


def test_one_missing_package_is_named_alone(monkeypatch, capsys):
    monkeypatch.setitem(deps.IMPORT_NAMES, "readchar", "chatroom_no_such_module")
    with pytest.raises(SystemExit) as info:
        deps.require("client.py", *deps.CLIENT)
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("client.py: error: the package readchar is missing; install")


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
    assert set(deps.SERVER) | set(deps.CLIENT) == names
