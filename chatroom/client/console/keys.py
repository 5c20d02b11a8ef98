"""Keystrokes: the names the editor knows keys by, decoding terminal input into them, and the thread that hands
them over.

One name per key on every platform: readchar's names, and the few below that it has none for. Both decoders
produce them, `KeyDecoder` here from a terminal's escape sequences and winconsole.ConsoleDecoder from Windows'
console records, and both give a key pressed with Ctrl or Alt its name through one table (`modified`).
`KeyDecoder` is pure; besides keys it yields a bracketed paste as one `Paste`. `KeyReader` runs the platform's
key source (terminal.py picks it) in a thread and wakes the client's select loop through a socket, so one
thread owns the terminal output.
"""

from __future__ import annotations

import enum
import queue
import re
import threading
from collections.abc import Callable, Iterator

from readchar import key

from ...waker import Waker

ESC = "\x1b"
# Keys readchar has no name for; like readchar's, each name is the sequence an xterm sends.
ALT_BACKSPACE = "\x1b\x7f"
ALT_B = "\x1bb"
ALT_F = "\x1bf"
CTRL_LEFT = "\x1b[1;5D"
CTRL_RIGHT = "\x1b[1;5C"

RESIZE = "<resize>"  # not a key: the editor ignores it, and the redraw after every batch of keys fits the new width

KeySource = Callable[[Callable[[], bool]], Iterator[str]]
"""Where keys come from: called with `stopped`, it yields key names until the input ends or stopped()."""


class Modifiers(enum.IntFlag):
    """Keys held with another; the bits of xterm's modifier parameter (which is 1 + these)."""
    NONE = 0
    SHIFT = 1
    ALT = 2
    CTRL = 4


# A key that does something else with Ctrl or Alt held: with either, Left and Right move by word, as in most
# editors; Alt+Backspace deletes a word. Any other key with modifiers is the key alone (Shift+Left is Left).
_MODIFIED = {
    (key.LEFT, Modifiers.CTRL): CTRL_LEFT, (key.LEFT, Modifiers.ALT): CTRL_LEFT,
    (key.RIGHT, Modifiers.CTRL): CTRL_RIGHT, (key.RIGHT, Modifiers.ALT): CTRL_RIGHT,
    (key.BACKSPACE, Modifiers.ALT): ALT_BACKSPACE,
}


def modified(name: str, held: Modifiers) -> str:
    """The name of the key `name` pressed with the modifiers `held`, the same from a terminal and a console."""
    for modifier in (Modifiers.CTRL, Modifiers.ALT):
        if held & modifier and (name, modifier) in _MODIFIED:
            return _MODIFIED[name, modifier]
    return name


# The sequences terminals send for the same key differ (xterm, VT220, rxvt, application mode); each is the
# key's one name here. With modifiers, xterm sends ESC [ 1 ; M X for the key ESC [ X, and ESC [ N ; M ~ for
# ESC [ N ~ (M = 1 + Modifiers).
_ALIASES = {
    "\x1bOA": key.UP, "\x1bOB": key.DOWN, "\x1bOC": key.RIGHT, "\x1bOD": key.LEFT,
    "\x1bOH": key.HOME, "\x1bOF": key.END, "\x1b[1~": key.HOME, "\x1b[7~": key.HOME,
    "\x1b[4~": key.END, "\x1b[8~": key.END, "\x1b[H": key.HOME, "\x1b[F": key.END,
    "\x1b[A": key.UP, "\x1b[B": key.DOWN, "\x1b[C": key.RIGHT, "\x1b[D": key.LEFT,
    "\x1b[3~": key.DELETE,
    # Alt+Backspace: ESC, then the terminal's Backspace (DEL or BS).
    "\x1b\x7f": modified(key.BACKSPACE, Modifiers.ALT), "\x1b\x08": modified(key.BACKSPACE, Modifiers.ALT),
    # rxvt's Ctrl+Left and Ctrl+Right.
    "\x1bOd": modified(key.LEFT, Modifiers.CTRL), "\x1bOc": modified(key.RIGHT, Modifiers.CTRL),
}
_WITH_MODIFIERS = re.compile(r"\x1b\[(\d+);(\d+)([~A-Z])")
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"


class Paste(str):
    """Text pasted into a terminal in bracketed-paste mode: one item, never read as keys.

    Verbatim but for line ends (a terminal sends CR) and tabs, which become spaces.
    """

    @classmethod
    def of(cls, raw: str) -> Paste:
        return cls(raw.replace("\r\n", "\n").replace("\r", "\n").expandtabs())


def _escape_end(text: str, start: int) -> int | None:
    """Where the escape sequence at `start` ends, or None if more input is needed."""
    if start + 1 >= len(text):
        return None
    kind = text[start + 1]
    if kind == "[":
        for index in range(start + 2, len(text)):
            if "\x40" <= text[index] <= "\x7e":
                return index + 1
            if not "\x20" <= text[index] <= "\x3f":
                return index  # malformed: end it here rather than swallow the next key
        return None
    if kind == "O":
        return start + 3 if start + 2 < len(text) else None
    if kind == ESC:
        return start + 1
    return start + 2  # Alt+key


def _name(sequence: str) -> str:
    if sequence in _ALIASES:
        return _ALIASES[sequence]
    if found := _WITH_MODIFIERS.fullmatch(sequence):
        number, modifiers, final = found.groups()
        plain = "\x1b[" + (number + final if final == "~" else final)
        return modified(_ALIASES.get(plain, plain), Modifiers(max(int(modifiers) - 1, 0) & 7))
    return sequence


class KeyDecoder:
    """Split decoded terminal input into keys (one character, or one whole escape sequence) and pastes."""

    def __init__(self) -> None:
        self._pending = ""
        self._paste: str | None = None  # the text of a bracketed paste whose end has not come yet

    @property
    def waiting(self) -> bool:
        """An escape sequence has started; `flush` it if nothing follows soon (a lone Esc)."""
        return bool(self._pending)

    def feed(self, text: str) -> list[str]:
        text, self._pending = self._pending + text, ""
        keys: list[str] = []
        index = 0
        while index < len(text):
            if self._paste is not None:
                index = self._feed_paste(text, index, keys)
                continue
            if text[index] != ESC:
                keys.append(text[index])
                index += 1
                continue
            end = _escape_end(text, index)
            if end is None:
                self._pending = text[index:]
                break
            if text[index:end] == PASTE_START:
                self._paste = ""
            else:
                keys.append(_name(text[index:end]))
            index = end
        return keys

    def _feed_paste(self, text: str, index: int, keys: list[str]) -> int:
        """Collect pasted text up to its end marker; where the input after the paste starts."""
        collected = self._paste or ""
        # The end marker may have started in an earlier read: look a marker's length back, not further.
        start = max(0, len(collected) - len(PASTE_END) + 1)
        collected += text[index:]
        end = collected.find(PASTE_END, start)
        if end < 0:
            self._paste = collected
            return len(text)
        keys.append(Paste.of(collected[:end]))
        self._paste = None
        return len(text) - (len(collected) - end - len(PASTE_END))

    def flush(self) -> list[str]:
        """A pending lone Esc (an unfinished paste waits for its end marker instead)."""
        pending, self._pending = self._pending, ""
        return [pending] if pending else []


class KeyboardFailed(Exception):
    """The key thread died of an exception: the client ends with this one-line error, not a silent quit."""


class KeyReader:
    """Reads keys in a daemon thread; `drain` returns them in the select loop's thread."""

    def __init__(self, source: KeySource) -> None:
        self._source = source
        self._keys: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._waker = Waker()
        self.wakeup = self._waker.sock
        self._stopping = threading.Event()
        self._failure: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="keys", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for pressed in self._source(self._stopping.is_set):
                self._keys.put(pressed)
                self._waker.wake()
        except Exception as exc:  # reported by drain() in the loop's thread, which restores the terminal
            self._failure = exc
        finally:
            self._keys.put(None)  # the input ended (EOF), or failed
            self._waker.wake()

    def drain(self) -> list[str | None]:
        """Every key read so far; None marks the end of input. Raises KeyboardFailed if reading failed."""
        self._waker.drain()
        keys: list[str | None] = []
        while True:
            try:
                pressed = self._keys.get_nowait()
            except queue.Empty:
                return keys
            if pressed is None and self._failure is not None:
                raise KeyboardFailed(f"reading the keyboard failed: {type(self._failure).__name__}: "
                                     f"{self._failure}")
            keys.append(pressed)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(0.5)
        self._waker.close()  # the thread may still be reading: a wake after this does nothing
