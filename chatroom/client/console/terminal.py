"""Terminal and console set-up, and where keys come from. The one module that picks the platform's half, at
import: windows.py (console input records) on Windows, posix.py (a terminal's bytes) everywhere else.

Either way the editor sees the same key names (keys.py), and every console mode is put back on every way out.
"""

from __future__ import annotations

import contextlib
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

from .keys import KeySource  # noqa: E402

if sys.platform == "win32":  # not Cygwin or MSYS2, whose os.name is "posix"
    from . import windows as _platform
else:
    from . import posix as _platform


def _keys_from_lines(stopped: Callable[[], bool]) -> Iterator[str]:
    """Input that is not a terminal (a pipe, a file, NUL): each line is typed, then Enter."""
    for line in sys.stdin:
        yield from line.rstrip("\r\n")
        yield key.CR


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def session() -> Iterator[KeySource]:
    """Set the console up for the chat and restore it on every way out; yields where keys come from."""
    with _platform.modes_kept():  # before colorama, which switches Windows' VT output processing on for good
        colorama.just_fix_windows_console()
        previous = {signum: signal.signal(signum, _exit_on_signal) for signum in _platform.END_SIGNALS}
        try:
            if is_terminal(sys.stdin):
                with _platform.raw_mode() as keys:
                    yield keys
            else:
                yield _keys_from_lines
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def is_terminal(stream: object) -> bool:
    """A terminal or console a person types into or reads (on Windows NUL is a tty, but no console).

    Seen through colorama's AnsiToWin32, which a console without VT processing gets in sys.stdout (it turns
    escape codes into console calls) and which has no isatty of its own."""
    if isinstance(stream, colorama.AnsiToWin32):
        stream = stream.wrapped
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and _platform.is_console(stream)
