"""A POSIX terminal (Cygwin and MSYS2 included): its mode, and keys read as bytes and decoded by keys.py.

The terminal stays in non-canonical, no-echo mode for the whole session and keys are read with os.read, never
with readchar.readkey(), whose per-key TCSAFLUSH mode switch drops and echoes keys typed between calls
(magmax/python-readchar#73). Imported by terminal.py everywhere but Windows.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import select
import signal
import sys
import termios
from collections.abc import Callable, Iterator

from .keys import RESIZE, KeyDecoder, KeySource

assert sys.platform != "win32"  # and so mypy checks this module as POSIX code, or skips it on Windows

LONE_ESC_WAIT = 0.05  # seconds after an Esc before it counts as the Esc key, not a sequence
PASTE_ON, PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"  # xterm's bracketed-paste mode
END_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)


def is_console(stream: object) -> bool:
    return True  # a tty is a terminal here


@contextlib.contextmanager
def modes_kept() -> Iterator[None]:
    yield  # raw_mode restores the one mode it changes


@contextlib.contextmanager
def raw_mode() -> Iterator[KeySource]:
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
