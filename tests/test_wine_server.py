"""The server under a genuine Windows CPython (in Wine's console, in tmux): a Linux client and a Windows client
chat through it, its history survives a restart by Ctrl+C, and /search finds what was said before it.

Runs where scripts/test-windows.sh has set the Windows CPython up (and runs this after the suite under it).
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient
from wine import ROOT, Console, missing, windows_path
from winrecords import CTRL_C

if reason := missing():
    pytest.skip(reason, allow_module_level=True)

LISTENING = re.compile(r"listening on 127\.0\.0\.1 port (\d+)")


class PipedClient:
    """The Linux console client with its input and output piped: each line written is typed, then Enter; what
    it shows comes as plain lines."""

    def __init__(self, port: int, name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "client.py"), "127.0.0.1", str(port), name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=ROOT)
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def shows(self, text: str, timeout: float = TIMEOUT * 2) -> str:
        """The next line that holds the text."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}; the last: {self.seen[-8:]}") from None
            self.seen.append(line)
            if text in line:
                return line

    def close(self) -> int:
        """End of input: the client leaves; its exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(TIMEOUT)
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def consoles() -> Iterator[list[Console]]:
    opened: list[Console] = []
    yield opened
    for console in opened:
        console.close()


def start_server(console: Console, history: Path, port: int = 0) -> int:
    console.start("server.py", "127.0.0.1", str(port), "--history", windows_path(history))
    found = LISTENING.search(console.shows(lambda screen: LISTENING.search(screen) is not None))
    assert found
    return int(found.group(1))


def test_a_windows_server_a_linux_and_a_windows_client(consoles, tmp_path):
    consoles.append(server := Console())
    history = tmp_path / "room.sqlite3"
    port = start_server(server, history)
    linus = PipedClient(port, "linus")
    try:
        linus.shows("Welcome, linus!")
        consoles.append(windows := Console())
        windows.run("client.py", "127.0.0.1", str(port), "winnie")
        linus.shows("winnie joined")
        windows.type("hello from windows\r")
        linus.shows("<winnie> hello from windows")
        linus.say("hello from linux")
        windows.shows("<linus> hello from linux")
        # Ctrl+C stops the server (a console control event, as in any Windows console); its history is on disk.
        server.type("C-c", literal=False)
        status, _, _ = server.ended()
        assert status == 0
        linus.shows("reconnecting")
        assert start_server(server, history, port) == port
        linus.shows("reconnected", timeout=TIMEOUT * 4)
        windows.shows("reconnected", timeout=TIMEOUT * 4)
        late = JsonClient(port)
        try:
            late.login("late")
            earlier = [late.expect_event("message", earlier=True)["text"] for _ in range(2)]
        finally:
            late.close()
        assert earlier == ["hello from windows", "hello from linux"]
        linus.say("/search windows")
        linus.shows('Messages with "windows" (1):')
        linus.shows("<winnie> hello from windows")
        windows.write(CTRL_C)
        status, before, after = windows.ended()
        assert status == 0 and before == after
    finally:
        assert linus.close() == 0
