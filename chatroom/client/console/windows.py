"""The Windows console: its modes, and keys read as console input records (ReadConsoleInputW, through ctypes).

Never readchar.readkey() (msvcrt.getwch), which cannot tell "à" from Up, drops Alt+numpad and pasted
characters and leaves the console in raw mode: winconsole.py decodes the records. Imported by terminal.py on
Windows only (not Cygwin or MSYS2, whose Pythons are POSIX ones).
"""

from __future__ import annotations

import contextlib
import ctypes
import msvcrt
import signal
import sys
from collections.abc import Callable, Iterator
from ctypes import wintypes

from .keys import KeySource
from .winconsole import INPUT_RECORD, ConsoleDecoder, plain_record

assert sys.platform == "win32"  # and so mypy checks this module as Windows code, or skips it elsewhere

ENABLE_PROCESSED_INPUT, ENABLE_LINE_INPUT, ENABLE_ECHO_INPUT, ENABLE_WINDOW_INPUT = 0x1, 0x2, 0x4, 0x8
ENABLE_VIRTUAL_TERMINAL_INPUT = 0x200
WAIT_OBJECT_0, WAIT_TIMEOUT = 0x0, 0x102
POLL_MS = 100  # how often the key thread looks up from the console to see whether it should stop
END_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGBREAK)  # the console's Ctrl+Break and window close

_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
_kernel32.GetConsoleMode.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
_kernel32.SetConsoleMode.argtypes = [wintypes.HANDLE, wintypes.DWORD]
_kernel32.WaitForSingleObject.argtypes = [wintypes.HANDLE, wintypes.DWORD]
_kernel32.WaitForSingleObject.restype = wintypes.DWORD
_kernel32.ReadConsoleInputW.argtypes = [wintypes.HANDLE, ctypes.POINTER(INPUT_RECORD), wintypes.DWORD,
                                        ctypes.POINTER(wintypes.DWORD)]


def _handle(stream: object) -> int | None:
    try:
        return msvcrt.get_osfhandle(stream.fileno())  # type: ignore[attr-defined]  # any stream with one
    except (AttributeError, OSError, ValueError):
        return None


def _console_mode(handle: int | None) -> int | None:
    """The handle's console mode, or None if it is no console (a pipe, a file, NUL)."""
    mode = wintypes.DWORD()
    if handle is None or not _kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
        return None
    return mode.value


def is_console(stream: object) -> bool:
    return _console_mode(_handle(stream)) is not None  # NUL is a tty to isatty, but no console


@contextlib.contextmanager
def modes_kept() -> Iterator[None]:
    """Put the console's input and output modes back as they were, whatever happens inside."""
    handles = {handle for handle in map(_handle, (sys.stdin, sys.stdout, sys.stderr)) if handle is not None}
    saved = {handle: mode for handle in handles if (mode := _console_mode(handle)) is not None}
    try:
        yield
    finally:
        for handle, mode in saved.items():
            _kernel32.SetConsoleMode(handle, mode)


@contextlib.contextmanager
def raw_mode() -> Iterator[KeySource]:
    # Keys come as records, not lines; Ctrl+C is a key record (the editor quits cleanly), not a signal;
    # arrows come as virtual keys, not VT sequences; a resize is reported. modes_kept restores.
    handle = _handle(sys.stdin)
    mode = _console_mode(handle) or 0
    raw = mode & ~(ENABLE_PROCESSED_INPUT | ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT
                   | ENABLE_VIRTUAL_TERMINAL_INPUT) | ENABLE_WINDOW_INPUT
    _kernel32.SetConsoleMode(handle, raw)
    yield _keys_from_console


def _keys_from_console(stopped: Callable[[], bool]) -> Iterator[str]:
    handle = _handle(sys.stdin)
    decoder = ConsoleDecoder()
    records = (INPUT_RECORD * 64)()
    count = wintypes.DWORD()
    while not stopped():
        # A timed wait, so the thread notices `stopped` and is never inside a read at exit.
        waited = _kernel32.WaitForSingleObject(handle, POLL_MS)
        if waited == WAIT_TIMEOUT:
            continue
        if waited != WAIT_OBJECT_0 or not _kernel32.ReadConsoleInputW(handle, records, len(records),
                                                                       ctypes.byref(count)):
            raise ctypes.WinError(ctypes.get_last_error())
        yield from decoder.feed(plain_record(record) for record in records[:count.value])
