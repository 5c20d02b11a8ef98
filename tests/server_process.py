"""`python server.py PORT ...` as a real process that a test can kill (-9) and start again on its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import TIMEOUT

from chatroom.server.main import listening_port

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """The server on a port of its own (the first start picks one), with `--history FILE` or none, quiet; with
    `log`, its log goes there (appended to, over restarts), all of it. `started`: its start-up lines."""

    def __init__(self, history: Path | None, *options: str, log: Path | None = None) -> None:
        self.history = history
        self.options = options
        self.log = log
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.started: list[str] = []
        self.start()

    def start(self) -> None:
        where = str(self.history) if self.history else "none"
        with open(self.log or os.devnull, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "server.py"), str(self.port), "--history", where,
                 *([] if self.log else ["-q"]), *self.options],
                stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # the start-up line: listening from now on
        assert " port " in first, first
        self.port = listening_port(first)
        self.started = [first, *(self.proc.stdout.readline() for _ in range(2))]  # the history, the files

    def kill(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        self.proc.send_signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        self.proc.wait(TIMEOUT)
        self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdout is not None
            self.proc.terminate()
            self.proc.wait(TIMEOUT)
            self.proc.stdout.close()
