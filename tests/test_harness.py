"""The harness's own workarounds for the limits of the Windows set-up under Wine: tests/conftest.py's, and
scripts/wine_run.py's (scripts/test-windows.sh runs each command under Wine through it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import TIMEOUT, UNDER_WINE, WINE_LOST_THE_CHILD, start_again_when_wine_loses_the_child, wait_until

WINE_RUN = Path(__file__).resolve().parent.parent / "scripts" / "wine_run.py"
sys.path.insert(0, str(WINE_RUN.parent))  # a script, imported as bench.py is by test_bench
import wine_run  # noqa: E402  (after the path it is found on)
SERVER_CRASH = "wineserver64: server/sock.c:1331: sock_poll_event: Assertion `sock->obj.ops == &sock_ops' failed.\n"
# wine_run.py runs Wine on Linux; these tests look at processes in /proc.
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="wine_run.py runs Wine on Linux")


def lost_child() -> OSError:
    error = OSError(22, "Internal error")
    error.winerror = WINE_LOST_THE_CHILD  # type: ignore[attr-defined]
    return error


def test_a_child_wine_lost_at_its_start_is_started_again_on_the_same_popen(monkeypatch: pytest.MonkeyPatch) -> None:
    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    failures = [lost_child()]

    def loses_the_first(self: subprocess.Popen[Any], *args: Any) -> None:
        if failures:
            raise failures.pop()
        execute_child(self, *args)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", loses_the_first)
    monkeypatch.setattr(subprocess.Popen, "__init__", start_again_when_wine_loses_the_child(subprocess.Popen.__init__))
    with pytest.warns(UserWarning, match="Wine lost a child at its start"):
        result = subprocess.run([sys.executable, "-c", "print(input()[::-1])"], input="olleh\n", capture_output=True,
                                text=True, timeout=TIMEOUT * 3)
    assert (result.returncode, result.stdout) == (0, "hello\n")


def test_only_wine_losing_the_child_is_tried_again() -> None:
    calls: list[int] = []

    def refuses(self: object) -> None:
        calls.append(1)
        raise FileNotFoundError(2, "No such file")

    with pytest.raises(FileNotFoundError):
        start_again_when_wine_loses_the_child(refuses)(object())
    assert len(calls) == 1


def test_a_child_wine_loses_every_time_fails_the_test() -> None:
    calls: list[int] = []

    def always_lost(self: object) -> None:
        calls.append(1)
        raise lost_child()

    with pytest.warns(UserWarning), pytest.raises(OSError, match="Internal error"):
        start_again_when_wine_loses_the_child(always_lost)(object())
    assert len(calls) == 3


@pytest.mark.skipif(not UNDER_WINE, reason="the workaround is installed under Wine only")
def test_under_wine_every_process_the_tests_start_is_started_through_it() -> None:
    assert subprocess.Popen.__init__.__name__ == "__init__"
    assert hasattr(subprocess.Popen.__init__, "__wrapped__")


def run_through_wine_run(tmp_path: Path, program: str, *options: str) -> subprocess.CompletedProcess[str]:
    """wine_run.py running a Python program in place of Wine; the program's folder is its working directory."""
    (tmp_path / "program.py").write_text(textwrap.dedent(program))
    return subprocess.run([sys.executable, str(WINE_RUN), *options, "--", sys.executable, "program.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT * 6)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


# The first start hangs as Wine's processes do once their server has crashed: the server's last words (written in
# two parts, as a pipe may carry them), and a child that waits forever; the second start ends well.
CRASHES_THEN_RUNS = f"""
    import os, subprocess, sys, time
    if os.path.exists("started-once"):
        print("all passed")
        sys.exit(0)
    open("started-once", "w").close()
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open("hung.pid", "w").write(str(hung.pid))
    sys.stdout.write("..........s" + {SERVER_CRASH[:30]!r})
    sys.stdout.flush()
    time.sleep(0.2)
    sys.stdout.write({SERVER_CRASH[30:]!r})
    sys.stdout.flush()
    time.sleep(600)
"""


@linux_only
def test_a_run_whose_wine_server_crashes_is_stopped_at_once_and_started_again(tmp_path: Path) -> None:
    result = run_through_wine_run(tmp_path, CRASHES_THEN_RUNS, "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("..........s" + SERVER_CRASH) and result.stdout.endswith("all passed\n")
    assert "Wine's server crashed (wineserver64: server/sock.c:1331" in result.stderr
    assert "starting it again (attempt 2 of 2)" in result.stderr
    wait_until(lambda: not alive(int((tmp_path / "hung.pid").read_text())))


@linux_only
def test_a_wine_server_that_crashes_on_every_attempt_fails_the_run(tmp_path: Path) -> None:
    result = run_through_wine_run(tmp_path, "import sys, time\nsys.stdout.write(" + repr(SERVER_CRASH) + ")\n"
                                  "sys.stdout.flush()\ntime.sleep(600)\n", "--attempts", "2", "--timeout", "60")
    assert result.returncode == wine_run.WINE_CRASHED
    assert result.stdout == SERVER_CRASH * 2
    assert "crashed on every one of 2 attempts" in result.stderr


@linux_only
def test_what_the_command_prints_and_its_status_pass_through(tmp_path: Path) -> None:
    result = run_through_wine_run(tmp_path, "import sys\nprint('1 failed, 3 passed')\nsys.exit(3)\n")
    assert (result.returncode, result.stdout, result.stderr) == (3, "1 failed, 3 passed\n", "")


@linux_only
def test_a_command_past_its_time_is_stopped(tmp_path: Path) -> None:
    result = run_through_wine_run(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(600)\n",
                                  "--timeout", "0.5")
    assert (result.returncode, result.stdout) == (wine_run.TIMED_OUT, "started\n")
    assert "still running after 0.5 s: stopped" in result.stderr


@linux_only
def test_after_a_crash_only_wines_processes_of_that_prefix_are_ended(tmp_path: Path) -> None:
    python = Path(os.path.realpath(sys.executable))

    def sleeper(name: str, prefix: str) -> subprocess.Popen[bytes]:
        (tmp_path / name).write_bytes(python.read_bytes())
        (tmp_path / name).chmod(0o755)
        return subprocess.Popen([str(tmp_path / name), "-c", "import time; time.sleep(600)"], start_new_session=True,
                                env={**os.environ, "WINEPREFIX": prefix})

    ours, other_prefix, not_wine = (sleeper("wine64", str(tmp_path / "prefix")),
                                    sleeper("wine64-other", str(tmp_path / "prefix2")),
                                    sleeper("python-x", str(tmp_path / "prefix")))
    try:
        wait_until(lambda: all(f"WINEPREFIX={tmp_path}".encode() in Path(f"/proc/{each.pid}/environ").read_bytes()
                               for each in (ours, other_prefix, not_wine)))  # each has become the program it runs
        wine_run.end_the_dead_servers_processes(str(tmp_path / "prefix"))
        assert ours.wait(TIMEOUT) == -9
        assert other_prefix.poll() is None and not_wine.poll() is None
    finally:
        for each in (ours, other_prefix, not_wine):
            each.kill()
            each.wait(TIMEOUT)


@linux_only
def test_ctrl_c_stops_the_run_it_started(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_text(textwrap.dedent("""
        import subprocess, sys, time
        hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(hung.pid, flush=True)
        time.sleep(600)
    """))
    runner = subprocess.Popen([sys.executable, str(WINE_RUN), "--", sys.executable, "program.py"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        hung = int(runner.stdout.readline())
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=TIMEOUT * 2)
    finally:
        runner.kill()
        runner.wait(TIMEOUT)
    assert runner.returncode == wine_run.INTERRUPTED
    assert "interrupted: the run is stopped" in err and "Traceback" not in err
    wait_until(lambda: not alive(hung))
