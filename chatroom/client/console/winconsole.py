"""Windows console input records -> the editor's key names (keys.py). Pure: windows.py reads the records.

The console reports every key press and release as a KEY_EVENT_RECORD: a virtual-key code (which key),
the character it typed (uChar, a UTF-16 code unit, 0 for none) and the modifier state. A typed "à" and
the Up arrow differ by virtual-key code (VK_0 on a French layout against VK_UP), which the C runtime's
_getwch, and so readchar's Windows reader, folds into the same 0xE0 prefix. Characters normally come
with the key-down; Alt+numpad codes and the console's synthesized paste deliver theirs on the Alt
key-up instead. A key held with Ctrl or Alt is named through keys.modified, as a terminal's is. The record
layout (INPUT_RECORD) is defined here on every OS, so its size is tested everywhere. See docs/design.md,
"Windows console input".
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass

from readchar import key

from .keys import ESC, RESIZE, Modifiers, modified

# INPUT_RECORD.EventType
KEY_EVENT, MOUSE_EVENT, WINDOW_BUFFER_SIZE_EVENT, MENU_EVENT, FOCUS_EVENT = 0x1, 0x2, 0x4, 0x8, 0x10

# KEY_EVENT_RECORD.dwControlKeyState
RIGHT_ALT_PRESSED, LEFT_ALT_PRESSED, RIGHT_CTRL_PRESSED, LEFT_CTRL_PRESSED = 0x1, 0x2, 0x4, 0x8
SHIFT_PRESSED, NUMLOCK_ON, ENHANCED_KEY = 0x10, 0x20, 0x100
ALT_PRESSED = RIGHT_ALT_PRESSED | LEFT_ALT_PRESSED
CTRL_PRESSED = RIGHT_CTRL_PRESSED | LEFT_CTRL_PRESSED

# Virtual-key codes (winuser.h)
VK_CANCEL, VK_BACK, VK_MENU = 0x03, 0x08, 0x12
VK_PRIOR, VK_NEXT, VK_END, VK_HOME, VK_LEFT, VK_UP, VK_RIGHT, VK_DOWN = range(0x21, 0x29)
VK_INSERT, VK_DELETE, VK_F1 = 0x2D, 0x2E, 0x70

# Keys the editor knows by name, not by the character they type (Backspace types BS, or DEL with Ctrl).
SPECIAL_KEYS = {
    VK_BACK: key.BACKSPACE,
    VK_UP: key.UP, VK_DOWN: key.DOWN, VK_LEFT: key.LEFT, VK_RIGHT: key.RIGHT,
    VK_HOME: key.HOME, VK_END: key.END, VK_INSERT: key.INSERT, VK_DELETE: key.DELETE,
    VK_PRIOR: key.PAGE_UP, VK_NEXT: key.PAGE_DOWN,
    # The console turns Ctrl+Break into a signal and keeps the key; should one arrive, it quits like Ctrl+C.
    VK_CANCEL: key.CTRL_C,
    **{VK_F1 + number: getattr(key, f"F{number + 1}") for number in range(12)},
}
# With Num Lock off the numpad digits are these navigation keys (not ENHANCED_KEY, unlike the grey ones):
# held with Alt they spell an Alt+numpad code, not a cursor movement.
NUMPAD_NAVIGATION = {VK_INSERT, VK_END, VK_DOWN, VK_NEXT, VK_LEFT, VK_RIGHT, VK_HOME, VK_UP, VK_PRIOR, VK_DELETE}


@dataclass(frozen=True)
class KeyRecord:
    """A KEY_EVENT_RECORD as plain values."""
    down: bool
    virtual_key: int
    char: int = 0  # uChar.UnicodeChar: one UTF-16 code unit, 0 when the key types nothing
    state: int = 0  # dwControlKeyState
    repeat: int = 1


@dataclass(frozen=True)
class OtherRecord:
    """A mouse, window-size, menu or focus record: only its EventType matters here."""
    kind: int


Record = KeyRecord | OtherRecord


def _held(state: int) -> Modifiers:
    held = Modifiers.NONE
    if state & SHIFT_PRESSED:
        held |= Modifiers.SHIFT
    if state & ALT_PRESSED:
        held |= Modifiers.ALT
    if state & CTRL_PRESSED:
        held |= Modifiers.CTRL
    return held


class ConsoleDecoder:
    """Turns console input records into key names: characters, or readchar's names for special keys."""

    def __init__(self) -> None:
        self._high = ""  # the first half of a surrogate pair, waiting for the second

    def feed(self, records: Iterable[Record]) -> list[str]:
        keys: list[str] = []
        for record in records:
            if isinstance(record, OtherRecord):
                if record.kind == WINDOW_BUFFER_SIZE_EVENT:
                    keys.append(RESIZE)
                continue  # mouse, menu and focus records are not keys
            for _ in range(max(1, record.repeat)):
                keys += self._key(record)
        return keys

    def _key(self, record: KeyRecord) -> list[str]:
        if not record.down:
            # Alt+numpad and the console's paste synthesis put the character on the Alt key-up only.
            return self._char(record.char) if record.virtual_key == VK_MENU and record.char else []
        if record.virtual_key in SPECIAL_KEYS:
            typing_a_code = (record.state & ALT_PRESSED and not record.state & ENHANCED_KEY
                             and record.virtual_key in NUMPAD_NAVIGATION)
            return [] if typing_a_code else [modified(SPECIAL_KEYS[record.virtual_key], _held(record.state))]
        if not record.char:
            return []  # Shift, Ctrl, Alt, a dead key, Caps Lock...: nothing typed yet
        typed = self._char(record.char)
        if record.state & ALT_PRESSED and not record.state & CTRL_PRESSED:
            # Alt+key, written as terminals write it (ESC, then the key); Ctrl+Alt is AltGr and types the char.
            return [ESC + ch for ch in typed]
        return typed

    def _char(self, unit: int) -> list[str]:
        """One UTF-16 code unit in; the characters it completes out (a lone half becomes U+FFFD)."""
        ch = chr(unit)
        high, self._high = self._high, ""
        if "\ud800" <= ch <= "\udbff":
            self._high = ch
            return ["\ufffd"] if high else []
        if "\udc00" <= ch <= "\udfff":
            if not high:
                return ["\ufffd"]
            return [(high + ch).encode("utf-16-le", "surrogatepass").decode("utf-16-le")]
        return ["\ufffd", ch] if high else [ch]


# The Win32 input record layout (wincontypes.h).
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
