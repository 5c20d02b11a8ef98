"""The command a message names to start a program: right for how this one was started, and from a new terminal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatroom.invocation import Process, command

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX paths and executables; Windows runs the same logic")


def executable(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def root(tmp_path) -> Path:
    """A checkout with its .venv."""
    checkout = tmp_path / "room"
    (checkout / "scripts").mkdir(parents=True)
    executable(checkout / ".venv" / "bin" / "python")
    return checkout


def process(root: Path, python: str, cwd: Path, path: list[str], venv: str | None = None, argv0: str = "server.py",
            in_venv: bool = True, windows: bool = False) -> Process:
    """A process of `python` (in a venv's bin/ when in_venv), called as argv0, in cwd, with this PATH and maybe
    the venv `venv` activated."""
    environ = {"PATH": os.pathsep.join(path), **({"VIRTUAL_ENV": venv} if venv else {})}
    return Process(executable=python, prefix=str(Path(python).parent.parent), in_venv=in_venv, argv0=argv0,
                   cwd=str(cwd), environ=environ, windows=windows, root=str(root))


def test_the_launcher_of_the_checkout_venv_from_its_folder_or_elsewhere(root, tmp_path):
    python = str(root / ".venv" / "bin" / "python")
    assert command("client", process(root, python, root, ["/usr/bin"])) == "scripts/client.sh"
    assert command("client", process(root, python, root / "scripts", ["/usr/bin"])) == "./client.sh"
    assert command("client", process(root, python, tmp_path, ["/usr/bin"])) == "room/scripts/client.sh"
    (tmp_path / "elsewhere").mkdir()
    assert command("client", process(root, python, tmp_path / "elsewhere", ["/usr/bin"])) == f"{root}/scripts/client.sh"


def test_by_hand_in_the_activated_venv_the_same_terminal_types_python_a_new_one_the_launcher(root):
    python = str(root / ".venv" / "bin" / "python")
    here = process(root, python, root, [str(root / ".venv" / "bin"), "/usr/bin"], venv=str(root / ".venv"))
    assert command("server", here, fresh=False) == "python server.py"
    assert command("client", here) == "scripts/client.sh"


def test_another_venv_is_named_by_its_path_where_it_is_not_active(root, tmp_path):
    python = executable(tmp_path / "env" / "bin" / "python")
    here = process(root, python, tmp_path, [str(tmp_path / "env" / "bin"), "/usr/bin"], venv=str(tmp_path / "env"))
    assert command("client", here) == "env/bin/python room/client.py"
    assert command("server", here, fresh=False) == "python room/server.py"


def test_a_python_outside_any_venv_by_its_short_name_when_path_finds_it(root, tmp_path):
    python = executable(tmp_path / "usr" / "bin" / "python3")
    found = process(root, python, root, [str(tmp_path / "usr" / "bin")], in_venv=False)
    assert command("client", found) == "python3 client.py"
    assert command("client", process(root, python, root, ["/nowhere"], in_venv=False)) == f"{python} client.py"


def test_the_installed_commands_by_name_when_a_new_terminal_finds_them(root, tmp_path):
    bin_dir = tmp_path / "pipx" / "bin"
    server = executable(bin_dir / "chatroom-server")
    executable(bin_dir / "chatroom-client")
    python = executable(tmp_path / "pipx" / "venv" / "bin" / "python")
    assert command("client", process(root, python, tmp_path, [str(bin_dir)], argv0=server)) == "chatroom-client"
    # In a venv active only here, the new terminal needs the command's path.
    active = process(root, python, tmp_path, [str(bin_dir)], venv=str(tmp_path / "pipx"), argv0=server)
    assert command("client", active) == "pipx/bin/chatroom-client"
    assert command("server", active, fresh=False) == "chatroom-server"


def test_paths_with_spaces_are_quoted_for_the_shell(tmp_path):
    root = tmp_path / "my room"
    (root / "scripts").mkdir(parents=True)
    python = executable(root / ".venv" / "bin" / "python")
    assert command("client", process(root, python, tmp_path, ["/usr/bin"])) == "'my room/scripts/client.sh'"


def test_windows_names_the_powershell_launcher(root):
    python = str(root / ".venv" / "bin" / "python")
    assert (command("client", process(root, python, root, ["/usr/bin"], windows=True))
            == "powershell -ExecutionPolicy Bypass -File scripts/client.ps1")
