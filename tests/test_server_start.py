"""Starting the server for real: a port that is taken or not allowed is named as such, and leaves no file behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent


def data_dir_env(tmp_path: Path) -> dict[str, str]:
    """The environment with a data directory of the test's own, where room-PORT.sqlite3 would go."""
    return {**os.environ, "XDG_DATA_HOME": str(tmp_path), "HOME": str(tmp_path), "LOCALAPPDATA": str(tmp_path)}


def default_history(tmp_path: Path, port: str) -> list[str]:
    """No --history: the default file in the data directory of data_dir_env. Windows' known folder for local
    application data does not follow the environment, so there the same file is named."""
    return ["--history", str(tmp_path / f"room-{port}.sqlite3")] if os.name == "nt" else []


def history_files(tmp_path: Path) -> list[str]:
    return sorted(path.name for path in tmp_path.rglob("room-*"))


def start(*args: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, str(ROOT / "server.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT * 3, stdin=subprocess.DEVNULL)


def test_a_second_server_on_the_same_port_is_told_about_the_port_not_the_history_file(tmp_path):
    env = data_dir_env(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    first = subprocess.Popen([sys.executable, str(ROOT / "server.py"), port, *default_history(tmp_path, port)],
                             cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert "listening" in first.stdout.readline()
        second = start(port, *default_history(tmp_path, port), env=env)
    finally:
        with first:
            first.terminate()
            first.wait(TIMEOUT)
    assert second.returncode == 2, second.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in second.stderr and "history" not in second.stderr
    assert {name.split(".sqlite3")[0] for name in history_files(tmp_path)} == {f"room-{port}"}  # the first's


def test_a_port_in_use_leaves_no_history_file(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = start(port, *default_history(tmp_path, port), env=data_dir_env(tmp_path))
    assert result.returncode == 2 and "already in use" in result.stderr
    assert history_files(tmp_path) == []


def _without_low_ports() -> tuple[str, ...] | None:
    """How to run a process that may not listen below 1024 here, or None."""
    if sys.platform != "linux":
        return None
    if os.geteuid() != 0:
        start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        return () if not start.exists() or int(start.read_text()) > 80 else None
    setpriv = shutil.which("setpriv")  # root without the capability that lets it use low ports
    return (setpriv, "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service") if setpriv else None


@pytest.mark.skipif(_without_low_ports() is None,
                    reason="needs Linux and a user who may not listen on port 80 (or root and setpriv to drop that)")
def test_port_80_without_rights_on_linux_names_the_8080_form_and_leaves_no_file(tmp_path):
    result = start("80", env=data_dir_env(tmp_path), prefix=_without_low_ports() or ())
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "port 80 needs root on Linux, as every port below 1024 does: use " in result.stderr
    assert " 8080 instead" in result.stderr and "Traceback" not in result.stderr
    assert history_files(tmp_path) == []


def test_a_history_file_in_use_is_still_named_once_the_port_is_free(tmp_path):
    held = tmp_path / "room.sqlite3"
    env = data_dir_env(tmp_path)
    first = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "0", "--history", str(held)], cwd=ROOT,
                             env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert "listening" in first.stdout.readline()
        second = start("0", "--history", str(held), env=env)
    finally:
        with first:
            first.terminate()
            first.wait(TIMEOUT)
    assert second.returncode == 2
    assert "in use by another chatroom server" in second.stderr and "Traceback" not in second.stderr
