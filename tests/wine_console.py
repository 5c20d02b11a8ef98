"""Runs in a Windows console (Wine's, in tmux: tests/wine.py starts it) and does there what a test asks.

It starts programs as its children, which share its console; writes key records into the console's input
as Windows does (WriteConsoleInputW), for the keys a terminal cannot send (Ctrl+C is a signal there, an
Alt+numpad code or a paste is several records); and reports the console's modes before a child starts
and after it ends. The test asks over a loopback connection (argv[1] is its port), one JSON object a
line, and gets one JSON object back:

    {"run": [ARGS...], "legacy": BOOL}  start `python ARGS` (legacy: as in a console without VT processing)
    {"raw": SECONDS}                     wait until the child has switched line input off (it reads keys)
    {"keys": [[down, vk, char, state, repeat], ...]}   write these key records
    {"wait": SECONDS}                    wait for the child: {"status": N, "before": MODES, "after": MODES}

The child is killed when the connection ends. Ctrl+C typed in the terminal is for the child alone.
"""

from __future__ import annotations

import ctypes
import json
import signal
import socket
import subprocess
import sys
import time
from ctypes import wintypes
from typing import Any

from chatroom.client.console.winconsole import INPUT_RECORD, KEY_EVENT

ENABLE_LINE_INPUT = 0x2
STD_INPUT_HANDLE, STD_OUTPUT_HANDLE = -10, -11
# A console without VT processing (Windows 8.1, or Windows 10's "Use legacy console"): colorama cannot switch
# VT processing on, so it converts escape codes into console calls. Wine's console lets it switch it on.
LEGACY = ("import runpy, sys, colorama.ansitowin32 as converter; converter.enable_vt_processing = lambda fd: False; "
          "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")

kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
kernel32.GetStdHandle.restype = wintypes.HANDLE
kernel32.GetConsoleMode.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
kernel32.WriteConsoleInputW.argtypes = [wintypes.HANDLE, ctypes.POINTER(INPUT_RECORD), wintypes.DWORD,
                                        ctypes.POINTER(wintypes.DWORD)]
STDIN, STDOUT = kernel32.GetStdHandle(STD_INPUT_HANDLE), kernel32.GetStdHandle(STD_OUTPUT_HANDLE)


def mode(handle: int) -> int:
    found = wintypes.DWORD()
    if not kernel32.GetConsoleMode(handle, ctypes.byref(found)):
        raise ctypes.WinError(ctypes.get_last_error())
    return found.value


def modes() -> list[int]:
    return [mode(STDIN), mode(STDOUT)]


def write(keys: list[list[int]]) -> int:
    records = (INPUT_RECORD * len(keys))()
    for record, (down, vk, char, state, repeat) in zip(records, keys):
        record.EventType = KEY_EVENT
        event = record.Event.KeyEvent
        (event.bKeyDown, event.wVirtualKeyCode, event.UnicodeChar, event.dwControlKeyState,
         event.wRepeatCount) = down, vk, char, state, repeat
    written = wintypes.DWORD()
    if not kernel32.WriteConsoleInputW(STDIN, records, len(keys), ctypes.byref(written)):
        raise ctypes.WinError(ctypes.get_last_error())
    return written.value


def until_raw(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while mode(STDIN) & ENABLE_LINE_INPUT:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Driver:
    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.before: list[int] = []

    def answer(self, command: dict[str, Any]) -> dict[str, Any]:
        if "run" in command:
            self.before = modes()
            legacy = ["-c", LEGACY] if command.get("legacy") else []
            self.child = subprocess.Popen([sys.executable, *legacy, *command["run"]])
            return {"pid": self.child.pid}
        if "raw" in command:
            return {"raw": until_raw(command["raw"])}
        if "keys" in command:
            return {"written": write(command["keys"])}
        assert self.child is not None, command
        status = self.child.wait(command["wait"])
        return {"status": status, "before": self.before, "after": modes()}

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()


def main() -> None:
    # Ctrl+C typed in the terminal reaches every program in the console: it is for the child (a server).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    driver = Driver()
    with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as connection:
        lines = connection.makefile("rw", encoding="utf-8", newline="\n")
        try:
            for line in lines:
                try:
                    reply = driver.answer(json.loads(line))
                except Exception as exc:  # the test shows it
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                lines.write(json.dumps(reply) + "\n")
                lines.flush()
        finally:
            driver.close()


if __name__ == "__main__":
    main()
