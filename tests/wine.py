"""The Windows CPython under Wine, driven from the Linux suite: where scripts/test-windows.sh set it up, why a
test must skip without it, and a Windows console in tmux with tests/wine_console.py inside it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import TIMEOUT
from winrecords import Record, as_json

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / ".windows"
PYTHON = HERE / "py" / "python.exe"
PREFIX = Path(prefix.read_text().strip()) if (prefix := HERE / "wineprefix").is_file() else HERE / "no-prefix"
START = TIMEOUT * 6  # Wine starts a process in 1-3 s, and may first start its wineserver


def missing() -> str | None:
    """Why the Windows CPython under Wine cannot run here, or None if it can."""
    if sys.platform != "linux":
        return "drives a Windows CPython under Wine, from Linux"
    if shutil.which("wine") is None or not PYTHON.is_file() or not (PREFIX / "system.reg").is_file():
        return "no Windows CPython under Wine in .windows/: scripts/test-windows.sh sets it up and runs this"
    if shutil.which("tmux") is None:
        return "needs tmux for the console's terminal (apt-get install tmux)"
    return None


def windows_path(path: Path) -> str:
    """The path as Windows programs under Wine see it: the Linux root is drive Z:."""
    return "Z:" + str(path).replace("/", "\\")


class Console:
    """A Windows console (Wine's conhost, drawing in a tmux window) with tests/wine_console.py in it, which
    starts programs there, writes key records and reports console modes, as the test asks."""

    def __init__(self, columns: int = 100, rows: int = 30) -> None:
        self.tmux = ["tmux", "-L", f"chatroom-wine-{os.getpid()}-{id(self)}"]
        environment = {"WINEPREFIX": str(PREFIX), "WINEDEBUG": "-all"}
        command = shlex.join(["env", *(f"{name}={value}" for name, value in environment.items()), "wine",
                              str(PYTHON), str(ROOT / "tests" / "wine_console.py"), "{port}"])
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(START)
            subprocess.run([*self.tmux, "new-session", "-d", "-x", str(columns), "-y", str(rows), "-c", str(ROOT),
                            command.format(port=listener.getsockname()[1])], check=True, timeout=TIMEOUT)
            try:
                self.connection, _ = listener.accept()
            except TimeoutError:
                screen = self.screen()
                self._end_tmux()
                raise AssertionError(f"the console did not start in {START} s:\n{screen}") from None
        self.connection.settimeout(START)
        self.lines = self.connection.makefile("rw", encoding="utf-8", newline="\n")

    def ask(self, **command: Any) -> dict[str, Any]:
        self.lines.write(json.dumps(command) + "\n")
        self.lines.flush()
        line = self.lines.readline()
        if not line:
            raise AssertionError(f"the console's driver ended:\n{self.screen()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise AssertionError(f"{reply['error']}; the console:\n{self.screen()}")
        return reply

    def run(self, *args: str, legacy: bool = False) -> None:
        """`python ARGS` in this console, under the Windows CPython; returns once it reads keys."""
        self.ask(run=list(args), legacy=legacy)
        if not self.ask(raw=START)["raw"]:
            raise AssertionError(f"the program did not switch the console to reading keys:\n{self.screen()}")

    def start(self, *args: str) -> None:
        """`python ARGS` in this console; returns at once."""
        self.ask(run=list(args))

    def write(self, records: list[Record]) -> None:
        """Key records into the console's input, as the keyboard's arrive."""
        self.ask(keys=json.loads(as_json(records)))

    def type(self, *keys: str, literal: bool = True) -> None:
        """Keys typed in the terminal (tmux send-keys): the console makes key records of them."""
        subprocess.run([*self.tmux, "send-keys", *(["-l"] if literal else []), *keys], check=True, timeout=TIMEOUT)

    def ended(self) -> tuple[int, list[int], list[int]]:
        """Wait for the program to end: its exit status, and the console modes before it and after it."""
        reply = self.ask(wait=TIMEOUT * 2)
        return reply["status"], reply["before"], reply["after"]

    def screen(self) -> str:
        """What the terminal shows."""
        shown = subprocess.run([*self.tmux, "capture-pane", "-p"], capture_output=True, text=True, timeout=TIMEOUT)
        return shown.stdout

    def shows(self, condition: Callable[[str], bool] | str, timeout: float = TIMEOUT * 2) -> str:
        """Wait until the screen shows the text (or meets the condition); the screen."""
        check = condition if callable(condition) else (lambda screen: condition in screen)
        deadline = time.monotonic() + timeout
        while not check(screen := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not on the screen: {condition!r}; it shows:\n{screen}")
            time.sleep(0.1)
        return screen

    def _end_tmux(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=TIMEOUT)

    def close(self) -> None:
        """The driver kills its program when the connection ends, then ends, and tmux with it (killed now, the
        driver could not end its program)."""
        self.lines.close()
        self.connection.close()
        deadline = time.monotonic() + TIMEOUT
        while subprocess.run([*self.tmux, "has-session"], capture_output=True, timeout=TIMEOUT).returncode == 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self._end_tmux()
