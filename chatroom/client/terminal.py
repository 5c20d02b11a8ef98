"""Terminal and console set-up, and where keys come from: the one module that knows the platform.

POSIX: the terminal stays in non-canonical, no-echo mode for the whole session and keys are read with
os.read, never with readchar.readkey(), whose per-key TCSAFLUSH mode switch drops and echoes keys typed
between calls (magmax/python-readchar#73). Windows: readchar.readkey() (msvcrt) reads without echo.
Either way the editor sees readchar's key names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

import colorama
from readchar import key

KeySource = Callable[[Callable[[], bool]], Iterator[str]]


def _keys_from_lines(stopped: Callable[[], bool]) -> Iterator[str]:
    """Input that is not a terminal (a pipe, a file): each line is typed, then Enter."""
    for line in sys.stdin:
        yield from line.rstrip("\r\n")
        yield key.CR


if os.name == "nt":
    import readchar

    @contextlib.contextmanager
    def _raw_mode() -> Iterator[None]:
        yield  # msvcrt already reads unbuffered and without echo

    def _keys_from_terminal(stopped: Callable[[], bool]) -> Iterator[str]:
        readchar.config.INTERRUPT_KEYS = []  # Ctrl+C is a key the editor turns into a clean quit
        while not stopped():
            yield readchar.readkey()

    _END_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGBREAK)  # type: ignore[attr-defined]
else:
    import codecs
    import select
    import termios

    from .keys import KeyDecoder

    LONE_ESC_WAIT = 0.05  # seconds after an Esc before it counts as the Esc key, not a sequence

    @contextlib.contextmanager
    def _raw_mode() -> Iterator[None]:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        raw = termios.tcgetattr(fd)
        raw[0] &= ~(termios.IXON | termios.ICRNL)  # Ctrl+S/Ctrl+Q and Enter arrive as keys
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, raw)  # not TCSAFLUSH: keep what was typed already
        try:
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _keys_from_terminal(stopped: Callable[[], bool]) -> Iterator[str]:
        fd = sys.stdin.fileno()
        decoder = KeyDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while not stopped():
            ready, _, _ = select.select([fd], [], [], LONE_ESC_WAIT if decoder.waiting else 0.2)
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
    colorama.just_fix_windows_console()
    previous = {signum: signal.signal(signum, _exit_on_signal) for signum in _END_SIGNALS}
    try:
        if sys.stdin.isatty():
            with _raw_mode():
                yield _keys_from_terminal
        else:
            yield _keys_from_lines
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
