"""The console client for real on Windows: `python client.py` in a pseudo console (ConPTY, via pywinpty).

What the test writes into the pseudo console reaches the client as console input records, as a keyboard's
would: the console turns text into key records (EventSynthesis.cpp), and "\\x1b[D" into a VK_LEFT record.
A wrapper reads the console modes before the client starts and after it ends, and prints them with the
client's exit status; pyte plays the terminal that shows them. Runs only on Windows with pywinpty
installed (the windows-latest job of .github/workflows/ci.yml installs it).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient

if sys.platform != "win32":
    pytest.skip("a Windows pseudo console (ConPTY)", allow_module_level=True)
winpty = pytest.importorskip("winpty", reason="pywinpty drives the pseudo console")
pyte = pytest.importorskip("pyte")

ROOT = Path(__file__).resolve().parent.parent
COLUMNS, ROWS = 160, 40
LEFT = "\x1b[D"

# Runs in the pseudo console: the client as its child (sharing the console), the modes around it.
WRAPPER = """
import ctypes, subprocess, sys
from ctypes import wintypes
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
kernel32.GetStdHandle.restype = wintypes.HANDLE
kernel32.GetConsoleMode.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
def modes():
    found = []
    for which in (-10, -11):  # STD_INPUT_HANDLE, STD_OUTPUT_HANDLE
        mode = wintypes.DWORD()
        found.append(mode.value if kernel32.GetConsoleMode(kernel32.GetStdHandle(which), ctypes.byref(mode)) else -1)
    return "%d,%d" % tuple(found)
before = modes()
status = subprocess.call([sys.executable] + sys.argv[1:])
print("MODES before=%s after=%s status=%d" % (before, modes(), status), flush=True)
"""
RESULT = re.compile(r"MODES before=(-?\d+,-?\d+) after=(-?\d+,-?\d+) status=(-?\d+)")


class ConsoleClient:
    """client.py in a pseudo console; a thread keeps reading its output (ConPTY stalls if nobody does)."""

    def __init__(self, wrapper: Path, port: int, name: str) -> None:
        argv = [sys.executable, str(wrapper), str(ROOT / "client.py"), "127.0.0.1", str(port), name]
        self.process = winpty.PtyProcess.spawn(argv, cwd=str(ROOT), dimensions=(ROWS, COLUMNS))
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                text = self.process.read(4096)
            except (EOFError, OSError):
                return
            with self.lock:
                self.stream.feed(text)

    def text(self) -> str:
        with self.lock:
            return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for_prompt(self, timeout: float = TIMEOUT * 3) -> None:
        """The chat's empty input line is drawn: the console is in the client's input mode, keys are read."""
        deadline = time.monotonic() + timeout
        while ">" not in self.text().splitlines():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no prompt on the console:\n{self.text()}")
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.process.write(text)

    def result(self, timeout: float = TIMEOUT * 2) -> tuple[str, str, int]:
        """The console modes before and after the client, and its exit status (from the wrapper)."""
        deadline = time.monotonic() + timeout
        while not (found := RESULT.search(self.text())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result on the console:\n{self.text()}")
            time.sleep(0.05)
        return found.group(1), found.group(2), int(found.group(3))

    def close(self) -> None:
        self.process.close(force=True)


@pytest.fixture
def bob(clients):
    bob = clients(JsonClient)
    bob.login("bob")
    return bob


@pytest.fixture
def console_client(server, tmp_path):
    wrapper = tmp_path / "modes_around.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    started: list[ConsoleClient] = []

    def start(name: str) -> ConsoleClient:
        client = ConsoleClient(wrapper, server.port, name)
        started.append(client)
        return client

    yield start
    for client in started:
        client.close()


@pytest.mark.parametrize("leave", ["/quit\r", "\x03"], ids=["slash-quit", "ctrl-c"])
def test_typed_accents_arrows_and_lines_arrive_and_the_console_is_restored(console_client, bob, leave):
    alice = console_client("alice")
    bob.expect_event("join", name="alice", timeout=TIMEOUT * 3)
    alice.wait_for_prompt()
    alice.type("voilà tout" + LEFT + "_\r")
    assert bob.expect_event("message", sender="alice")["text"] == "voilà tou_t"
    alice.type("à" + LEFT + "b\r")  # getwch read "à" then Left as one key, and inserted a "K"
    assert bob.expect_event("message", sender="alice")["text"] == "bà"
    alice.type(leave)
    before, after, status = alice.result()
    assert status == 0
    assert before == after and not before.startswith("-1")
