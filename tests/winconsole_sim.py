"""Runs the client's main() down its Windows path on any OS, against a scripted console (test_terminal.py).

sys.platform says "win32"; msvcrt and kernel32 are stand-ins that behave as the Win32 documentation says:
GetConsoleMode fails on what is no console, WaitForSingleObject on the input handle times out until input
is there, ReadConsoleInputW fills INPUT_RECORDs. The input records (argv[1], JSON: [down, vk, char, state,
repeat] for a key, [event_type] for another record) become readable once the client has switched line
input off. At exit every console mode is written to argv[2] as JSON. The rest of argv goes to main().
This checks windows.py and terminal.py, not Windows: test_wine_client.py (a Windows CPython under Wine) and
the CI's ConPTY test do that.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
import threading
import time
import types
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# What looks at the platform when imported is imported as what it is (ssl would look for Windows' certificate
# store, colorama for kernel32); only chatroom.client, imported last, sees "win32".
import getpass  # noqa: E402,F401
import ssl  # noqa: E402,F401

import colorama  # noqa: E402,F401

import chatroom.tls  # noqa: E402,F401

STDIN, STDOUT, STDERR = 100, 101, 102
ENABLE_LINE_INPUT = 0x2
modes = {STDIN: 0x1F7, STDOUT: 0x7}  # a new console's modes; stderr is a pipe here
pending = deque(json.loads(sys.argv[1]))
lock = threading.Lock()


def get_mode(handle, mode_ref) -> int:
    with lock:
        if handle not in modes:
            return 0
        mode_ref._obj.value = modes[handle]
    return 1


def set_mode(handle, mode) -> int:
    with lock:
        if handle not in modes:
            return 0
        modes[handle] = mode
    return 1


def readable() -> bool:
    with lock:
        return bool(pending) and not modes[STDIN] & ENABLE_LINE_INPUT


def wait(handle, milliseconds) -> int:
    if handle == STDIN and readable():
        return 0  # WAIT_OBJECT_0
    time.sleep(milliseconds / 1000)
    return 0x102  # WAIT_TIMEOUT


def read_input(handle, records, length, count_ref) -> int:
    count = 0
    with lock:
        while pending and count < length:
            fields = pending.popleft()
            record = records[count]
            record.EventType = 1 if len(fields) > 1 else fields[0]
            if len(fields) > 1:
                key = record.Event.KeyEvent
                (key.bKeyDown, key.wVirtualKeyCode, key.UnicodeChar, key.dwControlKeyState,
                 key.wRepeatCount) = fields
            count += 1
    count_ref._obj.value = count
    return 1


class Entry:
    """A kernel32 function: the caller sets argtypes and restype on it."""

    def __init__(self, body) -> None:
        self.body = body

    def __call__(self, *args):
        return self.body(*args)


kernel32 = types.SimpleNamespace(GetConsoleMode=Entry(get_mode), SetConsoleMode=Entry(set_mode),
                                 WaitForSingleObject=Entry(wait), ReadConsoleInputW=Entry(read_input))
ctypes.WinDLL = lambda name, use_last_error=False: kernel32  # type: ignore[attr-defined]
ctypes.WinError = lambda code=None: OSError(code, "simulated")  # type: ignore[attr-defined]
ctypes.get_last_error = lambda: 6  # type: ignore[attr-defined]
sys.modules["msvcrt"] = types.SimpleNamespace(get_osfhandle=lambda fd: {0: STDIN, 1: STDOUT, 2: STDERR}[fd])
if not hasattr(signal, "SIGBREAK"):  # Windows' Ctrl+Break, which the client ends on: another signal elsewhere
    signal.SIGBREAK = signal.SIGUSR2  # type: ignore[attr-defined]


class Console:
    """stdin: the console's input buffer, read through kernel32 only."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 0


sys.stdin = Console()  # type: ignore[assignment]
sys.platform = "win32"
from chatroom.client import main as app  # noqa: E402

try:
    status = app.main(sys.argv[3:])
finally:
    Path(sys.argv[2]).write_text(json.dumps({str(handle): mode for handle, mode in modes.items()}))
sys.exit(status)
