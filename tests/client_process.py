"""The client as a process: `PtyClient` runs client.py in a pseudo-terminal and reads its screen as a person
would (pyte plays the terminal); `run_client` runs it with pipes. POSIX only for the pseudo-terminal."""

from __future__ import annotations

import codecs
import os
import re
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyte
from conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
COLUMNS, ROWS = 80, 24


class PtyClient:
    """client.py in a pseudo-terminal; after it exits the shell prints its status and the tty mode.

    subprocess starts it (no fork of this multi-threaded test process in Python code), on the slave side of
    os.openpty(); pyte reads the master side like a terminal would.
    """

    def __init__(self, port: int, *args: str, env: dict[str, str] | None = None) -> None:
        command = " ".join([sys.executable, str(ROOT / "client.py"), "127.0.0.1", str(port), *args])
        script = f'stty sane; {command}; echo "EXIT=$?"; stty -a'
        environment = {**os.environ, "TERM": "xterm"}
        environment.pop("NO_COLOR", None)
        environment.pop("COLORTERM", None)
        environment.update(env or {})
        import fcntl  # POSIX: here, so that run_client imports on Windows too
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(["bash", "--norc", "-c", script], stdin=slave, stdout=slave, stderr=slave,
                                     env=environment, start_new_session=True)
        os.close(slave)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.raw = ""
        self.ended = False

    def _pump(self, wait: float) -> bool:
        """Read what the terminal got within `wait` seconds; False once the other side is gone."""
        if self.ended:
            return False
        if not select.select([self.master], [], [], wait)[0]:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every process on the slave side has ended
            data = b""
        if not data:
            self.ended = True
            return False
        text = self.decoder.decode(data)
        self.raw += text
        self.stream.feed(text)
        return True

    def until(self, condition: Callable[[PtyClient], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; screen:\n{self.text()}")
            if not self._pump(0.05) and not condition(self):
                raise AssertionError(f"client ended; screen:\n{self.text()}")

    def shows(self, text: str, timeout: float = TIMEOUT) -> None:
        self.until(lambda client: text in client.text(), timeout)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def input_line(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> tuple[int, str]:
        """Wait for the client to end; its exit status and the shell's `stty -a` output."""
        self.until(lambda client: re.search(r"EXIT=\d+", client.raw) is not None)
        deadline = time.monotonic() + TIMEOUT
        while self._pump(0.05) and time.monotonic() < deadline:
            pass
        self.proc.wait(TIMEOUT)
        match = re.search(r"EXIT=(\d+)", self.raw)
        return int(match.group(1)), self.raw[match.end():]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        os.close(self.master)


def run_client(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """client.py with pipes for its input and output; its environment plus `env`."""
    return subprocess.run([sys.executable, str(ROOT / "client.py"), *args], input=stdin, capture_output=True,
                          text=True, timeout=TIMEOUT * 3, cwd=ROOT, env={**os.environ, **(env or {})})
