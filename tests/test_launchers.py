"""The bash launchers for real, in a copy of the checkout (so its .venv is the test's own)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import TIMEOUT, JsonClient

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 300

# A test here may first wait for the run's one installed copy (pip, tens of seconds on a busy machine), which
# pytest-timeout counts as the test's own time; each command a test runs has a timeout of its own.
pytestmark = [pytest.mark.skipif(os.name == "nt" or shutil.which("bash") is None,
                                 reason="bash launchers; the PowerShell ones run in the Windows CI job"),
              pytest.mark.timeout(INSTALL_TIMEOUT)]


def copy_of_the_project(copy: Path) -> Path:
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info",
                                                             ".pytest_cache", ".hypothesis", ".windows"))
    return copy


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Installed:
    """The run's one installed copy of the project, and what its two setup.sh runs said."""

    path: Path
    plain: Ran  # setup.sh
    with_tests: Ran  # then setup.sh --test


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A copy of the project installed by setup.sh, then with the test extra by setup.sh --test, once per run:
    the first xdist worker to ask makes it under a lock, the others read what its runs said (the tests here only
    read the copy, so they may run at once)."""
    import fcntl  # POSIX, like this module's tests

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's own folder, above each worker's
    record = shared / "installed-copy.json"
    with open(shared / "installed-copy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            record.write_text(json.dumps(_install(shared / "installed-copy" / "chatroom")))
    said = json.loads(record.read_text())
    made = Installed(Path(said["path"]), Ran(*said["plain"]), Ran(*said["with_tests"]))
    assert made.plain.returncode == 0 and "Installing chatroom into" in made.plain.stderr, made.plain.stderr
    return made


def _install(copy: Path) -> dict:
    """Its .venv starts out without pip and lent the packages this suite runs with, pip included (after its own):
    pip then finds the requirements satisfied instead of downloading ~60 MB each run (pip's HTTP cache may not be
    kept), and ensurepip is not run again. A new .venv installed from the index is test_setup_twice's (and CI's:
    its scripts/test.sh runs in a fresh clone)."""
    shutil.rmtree(copy, ignore_errors=True)  # what a worker that failed half-way left
    copy_of_the_project(copy)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(copy / ".venv")], check=True,
                   timeout=INSTALL_TIMEOUT)
    site = copy / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    lent = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "the-test-suites-packages.pth").write_text("".join(f"{path}\n" for path in lent))
    said: dict = {"path": str(copy)}
    for name, args in [("plain", ()), ("with_tests", ("--test",))]:
        result = run(copy, "setup.sh", *args)
        said[name] = [result.returncode, result.stdout, result.stderr]
    return said


@pytest.fixture
def checkout(installed: Installed) -> Path:
    return installed.path


def run(checkout: Path, script: str, *args: str, stdin: str = "", env: dict | None = None,
        timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(checkout / "scripts" / script), *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=checkout)


@pytest.mark.slow
def test_setup_twice_the_second_run_installs_nothing(tmp_path):
    checkout = copy_of_the_project(tmp_path / "chatroom")
    first = run(checkout, "setup.sh")
    assert first.returncode == 0, first.stderr
    assert "Creating" in first.stderr and "Installing chatroom" in first.stderr and (checkout / ".venv").is_dir()
    again = run(checkout, "setup.sh")
    assert again.returncode == 0
    assert "Installing" not in again.stderr and "Creating" not in again.stderr
    assert again.stdout.strip() == f"Ready: {checkout / '.venv'}"


@pytest.mark.slow
def test_tests_and_demo_share_one_install(installed):
    with_tests = installed.with_tests
    assert with_tests.returncode == 0, with_tests.stderr
    assert "Installing chatroom [test]" in with_tests.stderr  # more than setup.sh installed
    for script, args in [("setup.sh", ()), ("demo.sh", ("--check", "--clients", "1")), ("setup.sh", ("--test",))]:
        again = run(installed.path, script, *args)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Installing" not in again.stderr, script


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


def test_demo_check_exchanges_a_message_and_leaves_nothing_running(checkout, tmp_path):
    result = run(checkout, "demo.sh", "--check", "--clients", "2", timeout=60, env=data_dir_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    port = re.search(r"port (\d+)", result.stdout).group(1)
    assert "2 clients exchanged a message" in result.stdout
    left = subprocess.run(["pgrep", "-f", f"(server|client).py .*{port}"], capture_output=True, text=True)
    assert left.stdout == ""
    assert history_files(tmp_path) == []  # a throwaway room keeps no history


def data_dir_env(tmp_path: Path) -> dict:
    """The environment with a data directory of the test's own, where a server keeps room-PORT.sqlite3."""
    return {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}


def history_files(tmp_path: Path) -> list[str]:
    return sorted(path.name for path in (tmp_path / "data").rglob("*"))


FRESH_PATH = "/usr/local/bin:/usr/bin:/bin"  # a new terminal's: no virtual environment active


@pytest.mark.parametrize("start", ["exec bash scripts/server.sh {port} --history none",
                                   ". .venv/bin/activate && exec python server.py {port} --history none"],
                         ids=["the launcher", "by hand in the activated venv"])
def test_the_servers_connect_command_works_from_a_new_terminal(checkout, start):
    port = _free_port()
    server = subprocess.Popen(["bash", "-c", start.format(port=port)], cwd=checkout, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    bob = None
    try:
        first = server.stdout.readline()
        shown = re.search(r"connect with: (.*?)  \(Ctrl\+C", first).group(1)
        assert shown == f"scripts/client.sh 127.0.0.1 {port}"
        bob = JsonClient(port)
        bob.login("bob")
        fresh = {"PATH": FRESH_PATH, "HOME": str(checkout), "TERM": "dumb"}
        joined = subprocess.run(["bash", "-c", f"{shown} newcomer"], cwd=checkout, env=fresh, input="it works\n",
                                capture_output=True, text=True, timeout=60)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert bob.expect_event("message", sender="newcomer")["text"] == "it works"
    finally:
        if bob:
            bob.close()
        with server:
            server.terminate()
            server.wait(TIMEOUT)


def test_demo_makes_room_for_more_clients_than_the_per_address_cap(checkout):
    result = run(checkout, "demo.sh", "--check", "--clients", "11", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "11 clients exchanged a message" in result.stdout


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


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (Debian's "
                    "redis-server package; .ci/run installs it)")
def test_cluster_demo_check_exchanges_a_message_across_three_servers_and_leaves_nothing_running(checkout):
    result = run(checkout, "cluster-demo.sh", "--check", "--clients", "3", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 clients exchanged a message through 3 servers sharing one room" in result.stdout
    redis_port, ports = re.search(r"redis://127.0.0.1:(\d+)/0 \(ports ([\d, ]+)\)", result.stdout).groups()
    for pattern in [f"redis-server 127.0.0.1:{redis_port}",
                    *(f"(server|client).py .*{port}" for port in ports.split(", "))]:
        assert subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout == ""
    assert run(checkout, "cluster-demo.sh", "--clients", "0").returncode == 1
    assert "unknown option" in run(checkout, "cluster-demo.sh", "--bogus").stderr
    assert "--check" in run(checkout, "cluster-demo.sh", "--help").stdout


@pytest.mark.skipif(sys.platform != "linux", reason="DISPLAY is how X11 finds a screen")
def test_demo_gui_without_a_display_says_so(checkout):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run(checkout, "demo.sh", "--gui", env=env, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "--gui needs" in result.stderr


def test_test_launcher_runs_pytest_and_passes_its_exit_status(checkout):
    passing = run(checkout, "test.sh", "-q", "-n", "0", "tests/test_names.py")  # -n 0: no workers to start
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert re.search(r"\d+ passed", passing.stdout)
    missing = run(checkout, "test.sh", "-q", "-n", "0", "tests/no_such_file.py")  # usage error: 4 (xdist says 5)
    assert missing.returncode == 4


def test_the_test_summary_says_why_a_test_was_skipped(checkout):
    folder = checkout / "skipping"
    folder.mkdir()
    (folder / "test_says_why.py").write_text("import pytest\n\n\ndef test_elsewhere():\n"
                                             "    pytest.skip('only where there is a frobnicator')\n")
    try:
        result = run(checkout, "test.sh", "-q", "-n", "0", "skipping")
    finally:
        shutil.rmtree(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIPPED [1] skipping/test_says_why.py:5: only where there is a frobnicator" in result.stdout


@pytest.mark.slow
def test_readme_by_hand_path_installs_into_a_venv_and_runs(tmp_path):
    """The README's "By hand" commands as written, except that the server and client only show --help."""
    block = ROOT.joinpath("README.md").read_text().split("## By hand", 1)[1].split("```")[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands[0].startswith("python3 -m venv")  # stock Debian/Ubuntu have no `python`, no system pip
    for name in ["requirements.txt", "server.py", "client.py", "chatroom"]:
        os.symlink(ROOT / name, tmp_path / name)
    script = "\n".join(["set -e", *(command + " --help" if command.startswith("python ") else command
                                     for command in commands), 'python -c "import sys; print(sys.prefix)"'])
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=INSTALL_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage: server.py" in result.stdout and "usage: client.py" in result.stdout
    assert result.stdout.splitlines()[-1] == str(tmp_path / ".venv")


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


class Tmux:
    """A tmux server of the test's own (its socket in tmp_path), and a terminal attached to it by script(1)."""

    def __init__(self, tmp_path: Path) -> None:
        socket_dir = tmp_path / "tmux"
        socket_dir.mkdir()
        self.env = {**data_dir_env(tmp_path), "TMUX_TMPDIR": str(socket_dir), "TERM": "xterm"}
        self.env.pop("TMUX", None)
        self.terminal: subprocess.Popen | None = None

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, env=self.env,
                              timeout=TIMEOUT).stdout

    def attach(self, command: str, cwd: Path) -> None:
        self.terminal = subprocess.Popen(["script", "-qc", command, "/dev/null"], cwd=cwd, env=self.env,
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)

    def press(self, keys: str) -> None:
        """Type into the terminal, as a person does."""
        assert self.terminal and self.terminal.stdin
        self.terminal.stdin.write(keys.encode())
        self.terminal.stdin.flush()

    def until(self, text: str, *args: str) -> None:
        """Repeat the tmux command until its output has text."""
        deadline = time.monotonic() + 30
        shown = ""
        while text not in shown:
            assert time.monotonic() < deadline, f"no {text!r} from tmux {args}: {shown}"
            time.sleep(0.2)
            shown = self(*args)

    def close(self) -> None:
        self("kill-server")
        if self.terminal:
            with self.terminal:  # closes its stdin
                try:  # what runs in the terminal ends with the tmux it showed, and cleans up after itself (xvfb-run)
                    self.terminal.wait(TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.terminal.kill()


@pytest.fixture
def tmux(tmp_path) -> Iterator[Tmux]:
    """A tmux server of the test's own, stopped at the end with all it runs."""
    server = Tmux(tmp_path)
    yield server
    server.close()


def _nothing_left_running(port: int) -> None:
    wait = time.monotonic() + TIMEOUT
    while subprocess.run(["pgrep", "-f", f"(server|client).py .*{port}"], capture_output=True).returncode == 0:
        assert time.monotonic() < wait, "the demo's server or a client is still running"
        time.sleep(0.1)


needs_tmux = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("tmux") is None or shutil.which("script") is None,
    reason="needs tmux, and util-linux script(1) for a terminal to attach from")

PREFIX = "\x02"  # Ctrl+B, tmux's prefix key, as a person presses it
PANES = "C-b + arrow key, or a click: another pane"


@needs_tmux
@pytest.mark.parametrize("leave", ["detach", "close the terminal", "go back to your session"])
def test_demo_in_tmux_shows_how_to_use_it_and_leaves_nothing_running_once_left(checkout, tmp_path, tmux, leave):
    port = _free_port()
    session = f"chatroom-demo-{port}"
    demo = f"bash scripts/demo.sh --clients 2 --port {port}"
    if leave != "go back to your session":
        tmux.attach(demo, checkout)
        ends = "C-b d ends it"
    else:  # run from a shell inside the user's own tmux: the demo is a session of that tmux
        tmux("new-session", "-d", "-s", "outer", "-x", "80", "-y", "24", "-c", str(checkout), "bash --norc")
        tmux.attach("tmux attach -t outer", checkout)
        tmux.until("outer", "list-clients", "-F", "#{client_session}")
        tmux("send-keys", "-t", "outer", demo, "Enter")
        ends = "C-b L (back to your session) ends it"  # C-b d would detach the user's own tmux
    tmux.until("Welcome, bob!", "capture-pane", "-p", "-t", f"{session}.2")
    panes = tmux("list-panes", "-t", session, "-F", "#{pane_current_command}")
    assert len(panes.split()) == 3  # the server and two clients
    status = tmux("display-message", "-p", "-t", session, "#{T:status-left}")
    assert status.startswith(f" chatroom demo: {ends} | {PANES}")
    assert status.index(" | ") < 60  # how to end it shows even in 80 columns
    if leave == "detach":
        tmux.press(PREFIX + "d")
        tmux.terminal.wait(TIMEOUT)
    elif leave == "close the terminal":
        tmux.terminal.kill()  # the terminal's side of the pty closes: tmux's client gets a hangup
        tmux.terminal.wait(TIMEOUT)
    else:
        tmux.press(PREFIX + "L")
        tmux.until("outer", "list-clients", "-F", "#{client_session}")
        said = tmux("capture-pane", "-p", "-J", "-t", "outer")
        assert f"session {session}: Ctrl+B then L (back to this session) ends it." in said
    _nothing_left_running(port)
    assert session not in tmux("list-sessions")
    assert history_files(tmp_path) == []


@needs_tmux
def test_demo_in_a_detached_tmux_session_says_so_and_starts_nothing(checkout, tmux):
    port = _free_port()
    tmux("new-session", "-d", "-s", "away", "-x", "100", "-y", "24", "-c", str(checkout), "bash --norc")
    tmux("send-keys", "-t", "away", f"bash scripts/demo.sh --port {port}; echo status $?", "Enter")
    tmux.until("status 1", "capture-pane", "-p", "-J", "-t", "away")
    shown = tmux("capture-pane", "-p", "-J", "-t", "away")
    assert "demo.sh: error: no terminal shows this tmux session (it is detached)" in shown
    assert tmux("list-sessions", "-F", "#{session_name}").split() == ["away"]
    _nothing_left_running(port)


@needs_tmux
def test_demo_without_a_terminal_says_so_and_starts_nothing(checkout, tmux):
    port = _free_port()
    result = run(checkout, "demo.sh", "--port", str(port), env=tmux.env, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "demo.sh: error: the demo shows its panes in this terminal, and there is none here" in result.stderr
    assert tmux("list-sessions") == ""
    _nothing_left_running(port)


@needs_tmux
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian: xvfb) for the window client")
def test_demo_gui_gives_the_window_client_one_line_across_the_bottom(checkout, tmux):
    if subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-c", "import tkinter"]).returncode:
        pytest.skip("needs tkinter (Debian: python3-tk)")
    port = _free_port()
    session = f"chatroom-demo-{port}"
    tmux.attach(f"xvfb-run -a bash scripts/demo.sh --clients 2 --gui --port {port}", checkout)
    tmux.until("carol joined", "capture-pane", "-p", "-J", "-t", f"{session}.0")  # the window client's user
    panes = [line.split() for line in tmux("list-panes", "-t", session, "-F",
                                           "#{pane_top} #{pane_width} #{pane_height} #{pane_active} "
                                           "#{window_width}").splitlines()]
    window = panes[-1]
    assert [window[1], window[2], window[3]] == [window[4], "1", "0"]  # full width, one line, not typed into
    assert all(int(pane[0]) < int(window[0]) for pane in panes[:-1])  # below the console clients
    words = tmux("capture-pane", "-p", "-t", f"{session}.3")
    assert words.startswith("The window client runs in a window of its own.")
    tmux.press(PREFIX + "d")
    tmux.terminal.wait(TIMEOUT)
    _nothing_left_running(port)


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
