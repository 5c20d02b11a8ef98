"""The bash launchers for real, in a copy of the checkout (so its .venv is the test's own)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 300

pytestmark = pytest.mark.skipif(os.name == "nt" or shutil.which("bash") is None,
                                reason="bash launchers; the PowerShell ones run in the Windows CI job")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the project with the launchers' .venv set up once (the first `setup`)."""
    copy = tmp_path_factory.mktemp("checkout") / "chatroom"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info",
                                                             ".pytest_cache", ".hypothesis"))
    first = run(copy, "setup.sh")
    assert first.returncode == 0, first.stderr
    assert "Installing chatroom" in first.stderr and (copy / ".venv").is_dir()
    return copy


def run(checkout: Path, script: str, *args: str, stdin: str = "", env: dict | None = None,
        timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(checkout / "scripts" / script), *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=checkout)


def test_setup_twice_the_second_run_installs_nothing(checkout):
    again = run(checkout, "setup.sh")
    assert again.returncode == 0
    assert "Installing" not in again.stderr and "Creating" not in again.stderr
    assert again.stdout.strip() == f"Ready: {checkout / '.venv'}"


def test_server_and_client_pass_their_arguments_through(checkout, server, clients):
    server_help = run(checkout, "server.sh", "--help")
    assert server_help.returncode == 0 and server_help.stdout.startswith("usage: server.py")
    bob = clients()
    bob.login("bob")
    result = run(checkout, "client.sh", "127.0.0.1", str(server.port), "launched", stdin="via the launcher\n")
    assert result.returncode == 0, result.stderr
    assert bob.expect_event("message", sender="launched")["text"] == "via the launcher"
    bad = run(checkout, "server.sh", "--port", "nope")
    assert bad.returncode == 2 and "not a port number" in bad.stderr


def test_demo_check_exchanges_a_message_and_leaves_nothing_running(checkout):
    result = run(checkout, "demo.sh", "--check", "--clients", "2", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    port = re.search(r"port (\d+)", result.stdout).group(1)
    assert "2 clients exchanged a message" in result.stdout
    left = subprocess.run(["pgrep", "-f", f"(server|client).py .*{port}"], capture_output=True, text=True)
    assert left.stdout == ""


def test_demo_refuses_a_port_in_use_and_bad_options(checkout):
    import socket
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        result = run(checkout, "demo.sh", "--check", "--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert result.returncode == 1 and "is in use" in result.stderr
    assert run(checkout, "demo.sh", "--clients", "0").returncode == 1
    assert "unknown option" in run(checkout, "demo.sh", "--bogus").stderr


@pytest.mark.skipif(sys.platform != "linux", reason="DISPLAY is how X11 finds a screen")
def test_demo_gui_without_a_display_says_so(checkout):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run(checkout, "demo.sh", "--gui", env=env, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "--gui needs" in result.stderr


def test_test_launcher_runs_pytest_and_passes_its_exit_status(checkout):
    passing = run(checkout, "test.sh", "-q", "tests/test_names.py")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert re.search(r"\d+ passed", passing.stdout)
    missing = run(checkout, "test.sh", "-q", "tests/no_such_file.py")
    assert missing.returncode == 4


def fake_path(tmp_path: Path, python_version: str | None) -> dict:
    """An environment whose PATH has the shell tools the launchers need and maybe a fake old Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ["bash", "dirname", "basename", "cat"]:
        os.symlink(shutil.which(tool), bin_dir / tool)
    if python_version:
        fake = bin_dir / "python3"
        fake.write_text(f"#!{shutil.which('bash')}\n"
                        f"[ \"$1\" = --version ] && echo 'Python {python_version}'\nexit 1\n")
        fake.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}


@pytest.mark.parametrize("version, message", [
    (None, "no Python found: install Python 3.10 or newer"),
    ("3.8.10", "Python 3.8.10 is too old: chatroom needs Python 3.10 or newer"),
])
def test_setup_says_clearly_when_python_is_missing_or_old(tmp_path, version, message):
    copy = tmp_path / "fresh"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "lib.sh", copy / "scripts")
    shutil.copy(ROOT / "scripts" / "setup.sh", copy / "scripts")
    result = run(copy, "setup.sh", env=fake_path(tmp_path, version), timeout=30)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_demo_without_tmux_runs_one_client_here_and_stops_the_server(checkout, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ["bash", "dirname", "basename", "cat", "cksum", "grep", "mktemp", "seq", "sleep", "rm"]:
        os.symlink(shutil.which(tool), bin_dir / tool)
    result = run(checkout, "demo.sh", "--clients", "2", stdin="alice\nhello from the demo\n/quit\n",
                 env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tmux is not installed" in result.stderr
    assert "<alice> hello from the demo" in result.stdout and "Goodbye" in result.stdout
    port = re.search(r"Server on port (\d+)", result.stdout).group(1)
    left = subprocess.run(["pgrep", "-f", f"server.py {port}"], capture_output=True, text=True)
    assert left.stdout == ""


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("tmux") is None or shutil.which("script") is None,
                    reason="needs tmux, and util-linux script(1) for a terminal to attach from")
def test_demo_in_tmux_opens_the_clients_and_leaves_nothing_running_once_closed(checkout, tmp_path):
    port = _free_port()
    socket_dir = tmp_path / "tmux"
    socket_dir.mkdir()
    env = {**os.environ, "TMUX_TMPDIR": str(socket_dir)}
    env.pop("TMUX", None)
    demo = subprocess.Popen(["script", "-qc", f"bash scripts/demo.sh --clients 2 --port {port}", "/dev/null"],
                            cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    session = f"chatroom-demo-{port}"
    try:
        deadline = time.monotonic() + 30
        panes = ""
        while time.monotonic() < deadline:
            panes = subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_current_command}"],
                                   capture_output=True, text=True, env=env).stdout
            shown = subprocess.run(["tmux", "capture-pane", "-p", "-t", f"{session}.2"],
                                   capture_output=True, text=True, env=env).stdout
            if "Welcome, bob!" in shown:
                break
            time.sleep(0.2)
        assert "Welcome, bob!" in shown, panes
        assert len(panes.split()) == 3  # the server and two clients
        subprocess.run(["tmux", "detach-client", "-s", session], env=env, timeout=TIMEOUT)
        demo.wait(TIMEOUT)
        wait = time.monotonic() + TIMEOUT
        while subprocess.run(["pgrep", "-f", f"server.py {port}"], capture_output=True).returncode == 0:
            assert time.monotonic() < wait, "the demo's server is still running"
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], env=env, capture_output=True)
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
