"""Terminal and console set-up, and where keys come from: the one module that knows the platform.

POSIX (Cygwin and MSYS2 included): the terminal stays in non-canonical, no-echo mode for the whole session
and keys are read with os.read, never with readchar.readkey(), whose per-key TCSAFLUSH mode switch drops
and echoes keys typed between calls (magmax/python-readchar#73). Windows: console input records are read
with ReadConsoleInputW and decoded by winconsole.py, never with readchar.readkey() (msvcrt.getwch), which
cannot tell "à" from Up, drops Alt+numpad and pasted characters and leaves the console in raw mode.
Either way the editor sees readchar's key names. Every console mode is put back on every way out.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator


def _load_readchar() -> None:
    """Cygwin's and MSYS2's Pythons have termios but no msvcrt, which readchar imports on their platform:
    load readchar's POSIX half there. chatroom/client/__init__.py runs this module before anything else
    can import readchar."""
    if not sys.platform.startswith(("cygwin", "msys")) or "readchar" in sys.modules:
        return
    platform, sys.platform = sys.platform, "linux"
    try:
        import readchar  # noqa: F401
    finally:
        sys.platform = platform


_load_readchar()

import colorama  # noqa: E402
from readchar import key  # noqa: E402

from .winconsole import KEY_EVENT, RESIZE, ConsoleDecoder, KeyRecord, OtherRecord, Record  # noqa: E402

KeySource = Callable[[Callable[[], bool]], Iterator[str]]


# The Win32 input record layout (wincontypes.h), defined on every OS so its size is tested everywhere.
class KEY_EVENT_RECORD(ctypes.Structure):
    _fields_ = [("bKeyDown", ctypes.c_int32), ("wRepeatCount", ctypes.c_uint16),
                ("wVirtualKeyCode", ctypes.c_uint16), ("wVirtualScanCode", ctypes.c_uint16),
                ("UnicodeChar", ctypes.c_uint16),  # a WCHAR, kept as a number: it may be half a surrogate pair
                ("dwControlKeyState", ctypes.c_uint32)]


class _Event(ctypes.Union):
    # KEY_EVENT_RECORD is the largest member (16 bytes, as MOUSE_EVENT_RECORD); of the other records only
    # EventType is read.
    _fields_ = [("KeyEvent", KEY_EVENT_RECORD)]


class INPUT_RECORD(ctypes.Structure):
    _fields_ = [("EventType", ctypes.c_uint16), ("Event", _Event)]


def plain_record(record: INPUT_RECORD) -> Record:
    """An INPUT_RECORD as the plain values winconsole decodes."""
    if record.EventType != KEY_EVENT:
        return OtherRecord(record.EventType)
    event = record.Event.KeyEvent
    return KeyRecord(bool(event.bKeyDown), event.wVirtualKeyCode, event.UnicodeChar, event.dwControlKeyState,
                     event.wRepeatCount)


def _keys_from_lines(stopped: Callable[[], bool]) -> Iterator[str]:
    """Input that is not a terminal (a pipe, a file, NUL): each line is typed, then Enter."""
    for line in sys.stdin:
        yield from line.rstrip("\r\n")
        yield key.CR


if sys.platform == "win32":  # not Cygwin or MSYS2, whose os.name is "posix"
    import msvcrt
    from ctypes import wintypes

    ENABLE_PROCESSED_INPUT, ENABLE_LINE_INPUT, ENABLE_ECHO_INPUT, ENABLE_WINDOW_INPUT = 0x1, 0x2, 0x4, 0x8
    ENABLE_VIRTUAL_TERMINAL_INPUT = 0x200
    WAIT_OBJECT_0, WAIT_TIMEOUT = 0x0, 0x102
    POLL_MS = 100  # how often the key thread looks up from the console to see whether it should stop

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

    def _is_console(stream: object) -> bool:
        return _console_mode(_handle(stream)) is not None  # NUL is a tty to isatty, but no console

    @contextlib.contextmanager
    def _modes_kept() -> Iterator[None]:
        """Put the console's input and output modes back as they were, whatever happens inside."""
        handles = {handle for handle in map(_handle, (sys.stdin, sys.stdout, sys.stderr)) if handle is not None}
        saved = {handle: mode for handle in handles if (mode := _console_mode(handle)) is not None}
        try:
            yield
        finally:
            for handle, mode in saved.items():
                _kernel32.SetConsoleMode(handle, mode)

    @contextlib.contextmanager
    def _raw_mode() -> Iterator[KeySource]:
        # Keys come as records, not lines; Ctrl+C is a key record (the editor quits cleanly), not a signal;
        # arrows come as virtual keys, not VT sequences; a resize is reported. _modes_kept restores.
        handle = _handle(sys.stdin)
        mode = _console_mode(handle) or 0
        raw = mode & ~(ENABLE_PROCESSED_INPUT | ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT
                       | ENABLE_VIRTUAL_TERMINAL_INPUT) | ENABLE_WINDOW_INPUT
        _kernel32.SetConsoleMode(handle, raw)
        yield _keys_from_terminal

    def _keys_from_terminal(stopped: Callable[[], bool]) -> Iterator[str]:
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

    _END_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGBREAK)
else:
    import codecs
    import select
    import termios

    from .keys import KeyDecoder

    LONE_ESC_WAIT = 0.05  # seconds after an Esc before it counts as the Esc key, not a sequence
    PASTE_ON, PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"  # xterm's bracketed-paste mode

    def _is_console(stream: object) -> bool:
        return True

    @contextlib.contextmanager
    def _modes_kept() -> Iterator[None]:
        yield  # _raw_mode restores the one mode it changes

    @contextlib.contextmanager
    def _raw_mode() -> Iterator[KeySource]:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        raw = termios.tcgetattr(fd)
        raw[0] &= ~(termios.IXON | termios.ICRNL)  # Ctrl+S/Ctrl+Q and Enter arrive as keys
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, raw)  # not TCSAFLUSH: keep what was typed already
        try:
            with _bracketed_paste(), _window_changes() as resized:
                yield functools.partial(_keys_from_terminal, resized=resized)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    @contextlib.contextmanager
    def _bracketed_paste() -> Iterator[None]:
        """The terminal marks a paste (ESC[200~ ... ESC[201~), so a pasted block is one message, not lines
        typed with Enter. Switched off on every way out: a shell would otherwise see the marks around its
        pastes. Windows needs none of this: its console gives a paste as key records."""
        _write_to_terminal(PASTE_ON)
        try:
            yield
        finally:
            _write_to_terminal(PASTE_OFF)

    def _write_to_terminal(code: str) -> None:
        if not sys.stdout.isatty():
            return
        try:
            sys.stdout.write(code)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass  # the terminal is gone (SIGHUP) or stdout closed: nothing left to switch

    @contextlib.contextmanager
    def _window_changes() -> Iterator[int]:
        """A pipe that gets a byte when the window's size changes: SIGWINCH is handled in the main thread,
        the key thread waits on the pipe and hands the loop RESIZE, as Windows' resize records do."""
        resized, resizing = os.pipe()
        os.set_blocking(resizing, False)

        def nudge(signum: int, frame: object) -> None:
            try:
                os.write(resizing, b"\0")
            except OSError:
                pass  # a nudge is waiting already

        previous = signal.signal(signal.SIGWINCH, nudge)
        try:
            yield resized
        finally:
            signal.signal(signal.SIGWINCH, previous)
            os.close(resized)
            os.close(resizing)

    def _keys_from_terminal(stopped: Callable[[], bool], resized: int) -> Iterator[str]:
        fd = sys.stdin.fileno()
        decoder = KeyDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while not stopped():
            ready, _, _ = select.select([fd, resized], [], [], LONE_ESC_WAIT if decoder.waiting else 0.2)
            if resized in ready:
                os.read(resized, 4096)
                yield RESIZE
            if fd not in ready:
                if not ready:
                    yield from decoder.flush()
                continue
            data = os.read(fd, 4096)
            if not data:
                return
            yield from decoder.feed(utf8.decode(data))

    _END_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def session() -> Iterator[KeySource]:
    """Set the console up for the chat and restore it on every way out; yields where keys come from."""
    with _modes_kept():  # before colorama, which switches Windows' VT output processing on for good
        colorama.just_fix_windows_console()
        previous = {signum: signal.signal(signum, _exit_on_signal) for signum in _END_SIGNALS}
        try:
            if is_terminal(sys.stdin):
                with _raw_mode() as keys:
                    yield keys
            else:
                yield _keys_from_lines
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def is_terminal(stream: object) -> bool:
    """A terminal or console a person types into or reads (on Windows NUL is a tty, but no console)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and _is_console(stream)
