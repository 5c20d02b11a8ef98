"""Console input records shaped as Windows produces them, for the decoder's tests and for writing into a real
console (WriteConsoleInputW, tests/wine_console.py).

The shapes follow the Win32 KEY_EVENT_RECORD documentation and microsoft/terminal's EventSynthesis.cpp
(SynthesizeKeyboardEvents, SynthesizeNumpadEvents): a key-down and a key-up per key, modifiers as keys of their
own, Alt+numpad characters on the Alt key-up.
"""

from __future__ import annotations

import json

from chatroom.client.console.winconsole import (
    ENHANCED_KEY, LEFT_ALT_PRESSED, LEFT_CTRL_PRESSED, NUMLOCK_ON, SHIFT_PRESSED, VK_MENU, KeyRecord, Record,
)

VK_BACK, VK_RETURN, VK_SHIFT, VK_CONTROL, VK_ESCAPE = 0x08, 0x0D, 0x10, 0x11, 0x1B
VK_END, VK_HOME, VK_LEFT, VK_UP, VK_RIGHT, VK_DOWN, VK_DELETE = 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x2E
VK_0, VK_B, VK_C, VK_F, VK_Q, VK_W, VK_NUMPAD0, VK_F1, VK_OEM_2 = 0x30, 0x42, 0x43, 0x46, 0x51, 0x57, 0x60, 0x70, 0xBF


def press(vk: int, char: str = "", state: int = 0) -> list[KeyRecord]:
    """One key down and up, as the console reports a typed key (the key-up repeats the character)."""
    unit = ord(char) if char else 0
    return [KeyRecord(True, vk, unit, state), KeyRecord(False, vk, unit, state)]


def shifted(vk: int, char: str) -> list[KeyRecord]:
    return [KeyRecord(True, VK_SHIFT, 0, SHIFT_PRESSED), *press(vk, char, SHIFT_PRESSED),
            KeyRecord(False, VK_SHIFT, 0, 0)]


def alt_numpad(unit: int, digits: str) -> list[KeyRecord]:
    """SynthesizeNumpadEvents: Alt down, the digits down and up with no character, the character on Alt up."""
    records = [KeyRecord(True, VK_MENU, 0, LEFT_ALT_PRESSED)]
    for digit in digits:
        records += press(VK_NUMPAD0 + int(digit), state=LEFT_ALT_PRESSED | NUMLOCK_ON)
    return records + [KeyRecord(False, VK_MENU, unit, NUMLOCK_ON)]


def pasted(text: str) -> list[KeyRecord]:
    """A paste of characters the layout cannot type: each UTF-16 unit synthesized as Alt+numpad.
    The digits are the OEM code page's byte for the character ('?' = 63 when it has none)."""
    units = text.encode("utf-16-le", "surrogatepass")
    return [record for index in range(0, len(units), 2)
            for record in alt_numpad(int.from_bytes(units[index:index + 2], "little"), "63")]


def typed(text: str) -> list[KeyRecord]:
    """Lower-case letters and spaces on a US layout; "à" is the 0 key on a French AZERTY layout."""
    records = []
    for ch in text:
        vk = VK_0 if ch == "à" else 0x20 if ch == " " else ord(ch.upper())
        records += press(vk, ch)
    return records


def held(modifier: int, records: list[KeyRecord]) -> list[KeyRecord]:
    """The records of a key pressed while Ctrl or Alt is held down, as the console reports them."""
    vk, state = (VK_CONTROL, LEFT_CTRL_PRESSED) if modifier == LEFT_CTRL_PRESSED else (VK_MENU, LEFT_ALT_PRESSED)
    return [KeyRecord(True, vk, 0, state), *records, KeyRecord(False, vk, 0, 0)]


# Whole keys, as record sequences.
ENTER = press(VK_RETURN, "\r")
LEFT = press(VK_LEFT, state=ENHANCED_KEY)
UP = press(VK_UP, state=ENHANCED_KEY)
CTRL_C = held(LEFT_CTRL_PRESSED, press(VK_C, "\x03", LEFT_CTRL_PRESSED))
CTRL_LEFT = held(LEFT_CTRL_PRESSED, press(VK_LEFT, state=LEFT_CTRL_PRESSED | ENHANCED_KEY))
CTRL_RIGHT = held(LEFT_CTRL_PRESSED, press(VK_RIGHT, state=LEFT_CTRL_PRESSED | ENHANCED_KEY))
ALT_BACKSPACE = held(LEFT_ALT_PRESSED, press(VK_BACK, "\b", LEFT_ALT_PRESSED))


def as_json(records: list[Record]) -> str:
    """[down, vk, char, state, repeat] for a key record, [event type] for another: what the console stand-ins read."""
    return json.dumps([[int(r.down), r.virtual_key, r.char, r.state, r.repeat] if isinstance(r, KeyRecord)
                       else [r.kind] for r in records])
