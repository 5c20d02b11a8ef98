"""The console client in tmux, which re-flows what it shows when its window changes size (as VTE terminals do):
after a resize the client paints the screen anew, so no half status line stays behind as if it were a message,
wrapped lines keep their indent and the input line shows what fits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.skipif(os.name == "nt", reason="tmux runs on POSIX systems"),
              pytest.mark.skipif(shutil.which("tmux") is None,
                                 reason="needs tmux (Debian/Ubuntu: apt-get install tmux)")]


class Tmux:
    """A tmux server of the test's own, one detached session running the client."""

    def __init__(self, tmp_path: Path, command: list[str], columns: int, rows: int) -> None:
        self.env = {**os.environ, "TMUX_TMPDIR": str(tmp_path), "TERM": "xterm-256color"}
        for name in ("TMUX", "COLUMNS", "LINES"):  # xdist's workers set COLUMNS and LINES, which win over the pty's
            self.env.pop(name, None)
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "chat", "-x", str(columns), "-y", str(rows),
                 " ".join(command))

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, env=self.env, timeout=TIMEOUT,
                              check=True).stdout

    def screen(self) -> list[str]:
        return [row.rstrip() for row in self.run("capture-pane", "-p", "-t", "chat").split("\n")]

    def until(self, holds: Callable[[list[str]], bool]) -> list[str]:
        deadline = time.monotonic() + TIMEOUT
        while not holds(rows := self.screen()):
            assert time.monotonic() < deadline, "\n".join(rows)
            time.sleep(0.05)
        return rows

    def close(self) -> None:
        subprocess.run(["tmux", "kill-server"], env=self.env, timeout=TIMEOUT, capture_output=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., Tmux]]:
    started: list[Tmux] = []

    def start(*args: str, columns: int = 100, rows: int = 16) -> Tmux:
        session = Tmux(tmp_path, [sys.executable, str(ROOT / "client.py"), *args], columns, rows)
        started.append(session)
        return session

    yield start
    for session in started:
        session.close()


LONG = "this is a fairly long message that has to wrap once the window is narrower than it is now, ok?"
DRAFT = "a draft that keeps going and going past the edge of the narrow window: the end"


def test_after_a_resize_the_screen_is_painted_anew_at_its_width(server, clients, tmux):
    amy = tmux("127.0.0.1", str(server.port), "amy")
    amy.until(lambda rows: any("Welcome, amy!" in row for row in rows))
    bob = clients()
    bob.login("bob")
    bob.say(LONG)
    amy.run("send-keys", "-t", "chat", "-l", DRAFT)
    amy.until(lambda rows: any(row.endswith("the end") for row in rows) and any("ok?" in row for row in rows))

    amy.run("resize-window", "-t", "chat", "-x", "50")
    rows = amy.until(lambda rows: any(row.startswith("> ") and row.endswith("the end") for row in rows)
                     and all(len(row) <= 50 for row in rows) and any(row.endswith("ok?") for row in rows))
    assert sum("connected ·" in row for row in rows) == 1, "\n".join(rows)  # no half status line left
    said = next(index for index, row in enumerate(rows) if "<bob> this is" in row)
    indent = rows[said].index("this is")
    assert all(row.startswith(" " * indent) and row[indent] != " "
               for row in rows[said + 1:rows.index(next(row for row in rows if row.endswith("ok?"))) + 1]), rows

    amy.run("resize-window", "-t", "chat", "-x", "100")
    rows = amy.until(lambda rows: f"> {DRAFT}" in rows)  # the whole draft again, not still scrolled
    assert sum("connected ·" in row for row in rows) == 1, "\n".join(rows)
    assert any(row.endswith(LONG[-30:]) for row in rows) or any(LONG.split()[-1] in row for row in rows)
