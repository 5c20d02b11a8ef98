"""The Windows console record decoder, fed record sequences shaped as Windows produces them (winrecords.py).
They run on every OS."""

import pytest
from readchar import key
from winrecords import (
    ALT_BACKSPACE, CTRL_LEFT, CTRL_RIGHT, UP, VK_B, VK_BACK, VK_C, VK_CONTROL, VK_DELETE, VK_DOWN, VK_END, VK_ESCAPE,
    VK_F, VK_F1, VK_HOME, VK_LEFT, VK_OEM_2, VK_Q, VK_RETURN, VK_RIGHT, VK_SHIFT, VK_UP, VK_W, alt_numpad, held,
    pasted, press, shifted, typed,
)

from chatroom.client.console.editor import LineEditor
from chatroom.client.console.keys import RESIZE, KeyDecoder
from chatroom.client.console.winconsole import (
    ENHANCED_KEY, FOCUS_EVENT, LEFT_ALT_PRESSED, LEFT_CTRL_PRESSED, MENU_EVENT, MOUSE_EVENT, RIGHT_ALT_PRESSED,
    SHIFT_PRESSED, VK_CANCEL, VK_MENU, WINDOW_BUFFER_SIZE_EVENT, ConsoleDecoder, KeyRecord, OtherRecord,
)


def decode(records) -> list[str]:
    return ConsoleDecoder().feed(records)


def test_a_typed_a_grave_is_a_character_and_up_is_up():
    assert decode(typed("à")) == ["à"]
    assert decode(UP) == [key.UP]
    assert decode(typed("à") + UP) == ["à", key.UP]


def test_voila_tout_loses_nothing():
    assert "".join(decode(typed("voilà tout"))) == "voilà tout"
    assert decode(typed("déjà")[-2:] + press(VK_RETURN, "\r")) == ["à", key.CR]


def test_alt_numpad_0233_gives_e_acute_from_the_alt_key_up():
    assert decode(alt_numpad(0xE9, "0233")) == ["é"]


def test_alt_numpad_with_num_lock_off_spells_the_code_on_navigation_keys():
    # Num Lock off: numpad 0 2 3 3 are Insert, Down, Page Down, Page Down, without ENHANCED_KEY.
    records = [KeyRecord(True, VK_MENU, 0, LEFT_ALT_PRESSED)]
    for vk in (0x2D, VK_DOWN, 0x22, 0x22):
        records += press(vk, state=LEFT_ALT_PRESSED)
    records.append(KeyRecord(False, VK_MENU, 0xE9, 0))
    assert decode(records) == ["é"]
    # The grey arrows carry ENHANCED_KEY: Alt+Up is still Up.
    assert decode(press(VK_UP, state=LEFT_ALT_PRESSED | ENHANCED_KEY)) == [key.UP]


def test_a_synthesized_paste_of_typography_and_an_emoji():
    assert "".join(decode(pasted("’—…😀"))) == "’—…😀"
    assert decode(pasted("😀")) == ["😀"]  # one key: the surrogate pair joined


def test_surrogate_pairs_typed_as_key_downs_are_joined():
    # An IME or on-screen keyboard (VK_PACKET) sends each half as a key-down.
    records = [KeyRecord(True, 0xE7, 0xD83D), KeyRecord(False, 0xE7, 0xD83D),
               KeyRecord(True, 0xE7, 0xDE00), KeyRecord(False, 0xE7, 0xDE00)]
    assert decode(records) == ["😀"]


def test_a_lone_surrogate_half_becomes_a_replacement_character():
    assert decode([KeyRecord(True, 0xE7, 0xD83D), *typed("a")]) == ["\ufffd", "a"]
    assert decode([KeyRecord(True, 0xE7, 0xDE00)]) == ["\ufffd"]
    assert decode([KeyRecord(True, 0xE7, 0xD83D), KeyRecord(True, 0xE7, 0xD83D), KeyRecord(True, 0xE7, 0xDE00)]) \
        == ["\ufffd", "😀"]


def test_a_surrogate_pair_split_across_two_reads():
    decoder = ConsoleDecoder()
    assert decoder.feed(pasted("😀")[:4]) == []
    assert decoder.feed(pasted("😀")[4:]) == ["😀"]


def test_ctrl_c_is_the_key_the_editor_quits_on():
    records = [KeyRecord(True, VK_CONTROL, 0, LEFT_CTRL_PRESSED), *press(VK_C, "\x03", LEFT_CTRL_PRESSED),
               KeyRecord(False, VK_CONTROL, 0, 0)]
    assert decode(records) == [key.CTRL_C]


def test_ctrl_break_if_it_reaches_the_buffer_quits_like_ctrl_c():
    # The console normally raises CTRL_BREAK_EVENT and drops the key-down; the key-up may remain.
    assert decode(press(VK_CANCEL, state=LEFT_CTRL_PRESSED | ENHANCED_KEY)) == [key.CTRL_C]
    assert decode([KeyRecord(False, VK_CANCEL, 0, LEFT_CTRL_PRESSED | ENHANCED_KEY)]) == []


@pytest.mark.parametrize("records, name", [
    (press(VK_RETURN, "\r"), key.CR),
    (press(VK_RETURN, "\r", ENHANCED_KEY), key.CR),  # the numpad's Enter
    (press(VK_BACK, "\b"), key.BACKSPACE),
    (press(VK_DELETE, state=ENHANCED_KEY), key.DELETE),
    (press(VK_HOME, state=ENHANCED_KEY), key.HOME),
    (press(VK_END, state=ENHANCED_KEY), key.END),
    (press(VK_LEFT, state=ENHANCED_KEY), key.LEFT),
    (press(VK_F1), key.F1),
    (press(VK_F1 + 11), key.F12),
    (press(0x09, "\t"), key.TAB),
    (press(VK_ESCAPE, "\x1b"), key.ESC),
])
def test_editing_keys(records, name):
    assert decode(records) == [name]


def test_backspace_is_one_of_the_editors_backspace_keys():
    from chatroom.client.console.editor import BACKSPACE_KEYS
    assert decode(press(VK_BACK, "\b"))[0] in BACKSPACE_KEYS


def test_arrow_names_are_those_the_editor_acts_on():
    from chatroom.client.console.editor import LineEditor
    editor = LineEditor()
    for pressed in decode(typed("ab") + press(VK_LEFT, state=ENHANCED_KEY) + typed("x")):
        editor.feed(pressed)
    assert editor.text == "axb"


def test_shifted_characters_come_once():
    assert decode(shifted(VK_OEM_2, "?") + shifted(0x41, "A")) == ["?", "A"]


def test_altgr_characters_on_a_german_layout():
    # AltGr+Q is "@": the console reports Left Ctrl and Right Alt held, and the character.
    altgr = LEFT_CTRL_PRESSED | RIGHT_ALT_PRESSED
    records = [KeyRecord(True, VK_CONTROL, 0, LEFT_CTRL_PRESSED),
               KeyRecord(True, VK_MENU, 0, altgr | ENHANCED_KEY),
               *press(VK_Q, "@", altgr),
               KeyRecord(False, VK_MENU, 0, LEFT_CTRL_PRESSED | ENHANCED_KEY),
               KeyRecord(False, VK_CONTROL, 0, 0)]
    assert decode(records) == ["@"]


def test_alt_with_a_letter_is_written_as_terminals_write_it():
    assert decode(press(0x58, "x", LEFT_ALT_PRESSED)) == ["\x1bx"]


def test_a_held_key_repeats():
    assert decode([KeyRecord(True, 0x41, ord("a"), 0, repeat=3)]) == ["a", "a", "a"]
    assert decode([KeyRecord(True, VK_LEFT, 0, ENHANCED_KEY, repeat=2)]) == [key.LEFT, key.LEFT]


def test_modifier_and_dead_keys_alone_type_nothing():
    assert decode([*press(VK_SHIFT, state=SHIFT_PRESSED), *press(VK_CONTROL, state=LEFT_CTRL_PRESSED),
                   *press(0xDE)]) == []  # 0xDE: the dead-key ^ before its letter


def test_mouse_focus_and_menu_records_are_ignored_and_a_resize_asks_for_a_redraw():
    records = [OtherRecord(MOUSE_EVENT), OtherRecord(FOCUS_EVENT), OtherRecord(MENU_EVENT), *typed("a"),
               OtherRecord(WINDOW_BUFFER_SIZE_EVENT)]
    assert decode(records) == ["a", RESIZE]
    from chatroom.client.console.editor import LineEditor
    editor = LineEditor()
    assert editor.feed(RESIZE) is None and editor.text == ""


def edited(records: list[KeyRecord]) -> tuple[str, int]:
    """What the editor holds after these records, and where its cursor is."""
    editor = LineEditor()
    for pressed in decode(records):
        editor.feed(pressed)
    return editor.text, editor.cursor


def test_ctrl_left_and_right_move_by_word():
    assert edited(typed("abc def") + CTRL_LEFT + press(0x58, "X", SHIFT_PRESSED))[0] == "abc Xdef"
    assert edited(typed("abc def") + press(VK_HOME, state=ENHANCED_KEY) + CTRL_RIGHT) == ("abc def", 3)


def test_alt_backspace_deletes_a_word():
    assert edited(typed("abc def") + ALT_BACKSPACE) == ("abc ", 4)


# The same key from a terminal (xterm's bytes) and from the console (its records): one name for the editor.
SAME_KEYS = [
    ("\x1b[1;5D", CTRL_LEFT),
    ("\x1b[1;5C", CTRL_RIGHT),
    ("\x1b[1;3D", held(LEFT_ALT_PRESSED, press(VK_LEFT, state=LEFT_ALT_PRESSED | ENHANCED_KEY))),
    ("\x1b[1;3C", held(LEFT_ALT_PRESSED, press(VK_RIGHT, state=LEFT_ALT_PRESSED | ENHANCED_KEY))),
    ("\x1b\x7f", ALT_BACKSPACE),
    ("\x1bb", held(LEFT_ALT_PRESSED, press(VK_B, "b", LEFT_ALT_PRESSED))),
    ("\x1bf", held(LEFT_ALT_PRESSED, press(VK_F, "f", LEFT_ALT_PRESSED))),
    ("\x17", held(LEFT_CTRL_PRESSED, press(VK_W, "\x17", LEFT_CTRL_PRESSED))),
    ("\x1b[1;2D", [KeyRecord(True, VK_SHIFT, 0, SHIFT_PRESSED), *press(VK_LEFT, state=SHIFT_PRESSED | ENHANCED_KEY)]),
    ("\x1b[1;5A", held(LEFT_CTRL_PRESSED, press(VK_UP, state=LEFT_CTRL_PRESSED | ENHANCED_KEY))),
    ("\x1b[3~", press(VK_DELETE, state=ENHANCED_KEY)),
    ("\x1b[H", press(VK_HOME, state=ENHANCED_KEY)),
]


@pytest.mark.parametrize("sequence, records", SAME_KEYS, ids=[repr(sequence) for sequence, _ in SAME_KEYS])
def test_a_key_has_one_name_from_a_terminal_and_from_the_console(sequence, records):
    assert decode(records) == KeyDecoder().feed(sequence)
