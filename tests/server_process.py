"""`python server.py PORT ARGS` as a test runs it: a process of its own, which can be killed (no goodbye) and
started again on its port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """The server with `args`; its log goes to `log` (appended to, over restarts), or nowhere. `started`: its
    start-up lines (listening, history, files)."""

    def __init__(self, *args: str, log: Path | None = None) -> None:
        self.args, self.log, self.port = args, log, 0
        self.proc: subprocess.Popen[str] | None = None
        self.started: list[str] = []
        self.start()

    def start(self) -> None:
        with open(self.log or os.devnull, "a") as log:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), str(self.port), *self.args],
                                         stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # listening from now on
        assert " port " in first, first + (self.log.read_text() if self.log else "")
        self.port = int(first.split(" port ")[1].split(";")[0].split()[0])
        self.started = [first, self.proc.stdout.readline(), self.proc.stdout.readline()]

    def kill(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        self.proc.kill()  # SIGKILL; TerminateProcess on Windows
        self.proc.wait(TIMEOUT)
        self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdout is not None
            self.proc.terminate()
            self.proc.wait(TIMEOUT)
            self.proc.stdout.close()
