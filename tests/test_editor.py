"""The line editor, key by key."""

import pytest
from readchar import key

from chatroom.client.console.editor import (
    KEYS, Bell, Candidates, LineEditor, Quit, Submit, graphemes, key_help, text_width,
)
from chatroom.client.console.keys import ALT_B, ALT_BACKSPACE, ALT_F, CTRL_LEFT, CTRL_RIGHT, Paste


def typed(editor: LineEditor, *keys: str) -> list:
    outcomes = []
    for pressed in keys:
        for single in ([pressed] if len(pressed) > 1 and not pressed.isprintable() else list(pressed)):
            outcomes.append(editor.feed(single))
    return [outcome for outcome in outcomes if outcome is not None]


def test_typing_and_enter_submits_and_clears():
    editor = LineEditor()
    assert typed(editor, "hello", key.CR) == [Submit("hello")]
    assert editor.text == "" and editor.cursor == 0


def test_lf_is_enter_too_and_an_empty_line_is_submitted_empty_but_not_remembered():
    editor = LineEditor()
    assert typed(editor, "a", key.LF, "   ", key.CR) == [Submit("a"), Submit("")]  # "": retry now, if waiting
    assert editor.history == ["a"]


def test_cursor_moves_and_inserts_in_the_middle():
    editor = LineEditor()
    typed(editor, "hllo", key.HOME, key.RIGHT, "e", key.END, "!", key.LEFT, key.LEFT, key.CTRL_A, ">")
    assert editor.text == ">hello!" and editor.cursor == 1
    typed(editor, key.CTRL_E)
    assert editor.cursor == 7


def test_backspace_and_delete():
    editor = LineEditor()
    typed(editor, "abcd", key.LEFT, key.LEFT, key.BACKSPACE, key.DELETE)
    assert editor.text == "ad" and editor.cursor == 1
    assert typed(editor, key.HOME, key.BACKSPACE) == [Bell()]
    assert typed(editor, key.END, key.DELETE) == [Bell()]
    typed(editor, key.CTRL_H)
    assert editor.text == "a"


def test_ctrl_u_clears_the_line():
    editor = LineEditor()
    typed(editor, "some text", key.LEFT, key.CTRL_U)
    assert editor.text == "" and editor.cursor == 0


def test_ctrl_c_clears_a_line_and_quits_on_an_empty_one():
    editor = LineEditor()
    assert typed(editor, "draft", key.LEFT, key.CTRL_C) == [] and editor.text == "" and editor.cursor == 0
    assert typed(editor, key.CTRL_C) == [Quit()]


def test_ctrl_d_quits_only_on_an_empty_line():
    editor = LineEditor()
    typed(editor, "ab", key.HOME)
    assert typed(editor, key.CTRL_D) == [] and editor.text == "b"
    typed(editor, key.CTRL_U)
    assert typed(editor, key.CTRL_D) == [Quit()]


def test_history_up_and_down_keeps_the_draft():
    editor = LineEditor()
    typed(editor, "one", key.CR, "two", key.CR, "two", key.CR, "dra")
    typed(editor, key.UP)
    assert editor.text == "two"
    typed(editor, key.UP)
    assert editor.text == "one"
    assert typed(editor, key.UP) == [Bell()]
    typed(editor, key.DOWN, key.DOWN)
    assert editor.text == "dra" and editor.cursor == 3
    typed(editor, key.UP, "!", key.CR)
    assert editor.history == ["one", "two", "two!"]


def test_control_characters_and_unknown_keys_are_not_inserted():
    editor = LineEditor()
    typed(editor, "a", key.ESC, key.F1, "\x1b[1;5A", key.CTRL_G, "\u202e", "b")
    assert editor.text == "ab"


def test_unicode_input():
    editor = LineEditor()
    assert typed(editor, "héllo 你好 👋", key.CR) == [Submit("héllo 你好 👋")]


NAMES = ["alice", "albert", "bob"]


@pytest.mark.parametrize("before, after", [
    ("@bo", "@bob "), ("/msg bo", "/msg bob "), ("/dm ALB", "/dm albert "), ("hi there > b", "hi there > bob "),
    ("/he", "/help "), ("/ni", "/nick "), ("*us", "*users "), ("@al", "@al"), ("/msg al", "/msg al"),
    ("thanks b", "thanks bob "), ("bo", "bob: "), ("ask ALBE", "ask albert "), ("/rec", "/reconnect "),
])
def test_tab_completes_names_and_commands(before, after):
    editor = LineEditor(names=lambda: NAMES)
    typed(editor, before, key.TAB)
    assert editor.text == after


def test_ambiguous_completion_extends_then_lists():
    editor = LineEditor(names=lambda: ["alice", "alicia", "bob"])
    typed(editor, "@a", key.TAB)
    assert editor.text == "@alic"
    assert typed(editor, key.TAB) == [Candidates(("@alice", "@alicia"))]


def test_tab_without_candidates_rings():
    editor = LineEditor(names=lambda: NAMES)
    assert typed(editor, "hello wor", key.TAB) == [Bell()]
    assert editor.text == "hello wor"


def test_tab_does_not_offer_the_clients_own_pong():
    assert typed(LineEditor(), "/po", key.TAB) == [Bell()]


def test_completion_in_the_middle_of_the_line():
    editor = LineEditor(names=lambda: NAMES)
    typed(editor, "@b hi", key.HOME, key.RIGHT, key.RIGHT, key.TAB)
    assert editor.text == "@bob  hi"


def test_short_line_is_shown_whole():
    editor = LineEditor()
    typed(editor, "hello", key.LEFT)
    assert editor.view(20) == ("hello", 4, 1)


def test_long_line_scrolls_to_keep_the_cursor_visible():
    editor = LineEditor()
    text = "".join(chr(ord("a") + n % 26) for n in range(100))
    typed(editor, text)
    shown, cursor, _ = editor.view(20)
    assert shown == text[-18:] and cursor == 18
    typed(editor, key.HOME)
    shown, cursor, _ = editor.view(20)
    assert shown == text[:19] and cursor == 0
    typed(editor, *[key.RIGHT] * 30)
    shown, cursor, _ = editor.view(20)
    assert text[30] in shown and shown[cursor] == text[30]
    assert typed(editor, key.CR) == [Submit(text)]


def test_after_a_widening_the_line_scrolls_back_to_show_what_now_fits():
    editor = LineEditor()
    text = "".join(chr(ord("a") + n % 26) for n in range(100))
    typed(editor, text)
    assert editor.view(20)[0] == text[-18:]
    assert editor.view(200) == (text, 100, 0)  # not still scrolled by 82 columns
    typed(editor, key.HOME)
    assert editor.view(20)[0] == text[:19] and editor.view(200)[0] == text


def test_the_keys_help_lists_each_front_ends_keys():
    console, window = key_help(), key_help(window=True)
    assert console[0] == "Keys:" and "  Tab" in console and "  Esc" in console and "  Ctrl+C" in console
    assert "  Ctrl+U" in window and "  Ctrl+C" not in window  # a window's Ctrl+C copies
    assert len(console) == 2 * len(KEYS) + 1


def test_wide_characters_take_two_columns():
    editor = LineEditor()
    typed(editor, "你好世界" * 5)
    shown, cursor, _ = editor.view(11)
    assert text_width(shown) <= 10 and cursor == text_width(shown)
    assert shown == "你好世界你"[:5] or shown.endswith("界")


@pytest.mark.parametrize("delete", [key.CTRL_W, ALT_BACKSPACE])
def test_ctrl_w_and_alt_backspace_delete_the_word_before_the_cursor(delete):
    editor = LineEditor()
    typed(editor, "say hello  world", delete)
    assert editor.text == "say hello  " and editor.cursor == 11
    typed(editor, delete)
    assert editor.text == "say " and editor.cursor == 4
    typed(editor, "big day", key.LEFT, key.LEFT, delete)
    assert editor.text == "say big ay" and editor.cursor == 8
    assert typed(editor, key.HOME, delete) == [Bell()]


@pytest.mark.parametrize("left, right", [(CTRL_LEFT, CTRL_RIGHT), (ALT_B, ALT_F)])
def test_ctrl_arrows_and_alt_b_f_move_by_word(left, right):
    editor = LineEditor()
    typed(editor, "one two  three")
    positions = []
    for _ in range(4):
        typed(editor, left)
        positions.append(editor.cursor)
    assert positions == [9, 4, 0, 0]
    for _ in range(4):
        typed(editor, right)
        positions.append(editor.cursor)
    assert positions[4:] == [3, 7, 14, 14]


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


@pytest.mark.parametrize("text, clusters", [
    (FAMILY + "!", [FAMILY, "!"]),
    ("e\u0301a", ["e\u0301", "a"]),  # e + combining acute
    ("\U0001f44d\U0001f3fd\U0001f44d", ["\U0001f44d\U0001f3fd", "\U0001f44d"]),  # skin tone
    ("\u2764\ufe0fx", ["\u2764\ufe0f", "x"]),  # variation selector
    ("\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7\U0001f1ee",  # flags pair up: DE, FR, and a lone I
     ["\U0001f1e9\U0001f1ea", "\U0001f1eb\U0001f1f7", "\U0001f1ee"]),
    (SCOTLAND + "x", [SCOTLAND, "x"]),  # tags
    ("a\u200db", ["a\u200d", "b"]),  # a joiner joins pictographs only
    ("\u0915\u094d\u0937\u093f", ["\u0915\u094d\u0937\u093f"]),  # Devanagari: a conjunct is one (GB9c)
    ("\u1100\u1161\u11a8", ["\u1100\u1161\u11a8"]),  # Hangul jamo make one syllable
    ("a\nb", ["a", "\n", "b"]),
])
def test_grapheme_clusters(text, clusters):
    assert graphemes(text) == clusters


@pytest.mark.parametrize("text, width", [
    ("abc", 3), ("你好", 4), (FAMILY, 2), ("e\u0301", 1), ("\U0001f44d\U0001f3fd", 2), ("\u2764\ufe0f", 2),
    ("\U0001f1e9\U0001f1ea", 2), ("a\u200bb", 2), ("\u00ad", 1),
])
def test_display_widths_are_the_terminals(text, width):
    # unicodedata's east_asian_width counted a family of three as 6, a red heart as 1, a thumb with its tone as 4
    assert text_width(text) == width


def test_the_cursor_column_counts_emoji_as_two():
    editor = LineEditor()
    typed(editor, *"a" + FAMILY + "\u2764\ufe0fb")
    assert editor.view(20) == ("a" + FAMILY + "\u2764\ufe0fb", 6, 0)


def test_cursor_moves_and_deletes_by_grapheme_cluster():
    editor = LineEditor()
    typed(editor, *"a" + FAMILY + "b", key.LEFT, key.LEFT)
    assert editor.cursor == 1
    typed(editor, "x")  # typed before the family, never inside it
    assert editor.text == "ax" + FAMILY + "b"
    typed(editor, key.RIGHT, "y")
    assert editor.text == "ax" + FAMILY + "yb"
    typed(editor, key.LEFT, key.BACKSPACE)
    assert editor.text == "ax" + "yb"
    typed(editor, "e", "\u0301", key.LEFT, key.DELETE)
    assert editor.text == "axyb" and editor.cursor == 2


def test_a_typed_joiner_or_mark_joins_the_character_before_it():
    editor = LineEditor()
    typed(editor, "\U0001f468", "\u200d", "\U0001f469", "z", key.LEFT, key.LEFT)
    assert editor.chars == ["\U0001f468\u200d\U0001f469", "z"] and editor.cursor == 0


def test_a_one_line_paste_goes_into_the_line_as_it_is():
    editor = LineEditor()
    typed(editor, "say:", key.LEFT)
    assert editor.feed(Paste("  run: git log > out.txt\n")) is None
    assert editor.text == "say  run: git log > out.txt:" and editor.cursor == 27


def test_a_multi_line_paste_is_held_with_the_typed_text_around_it_until_enter_sends_it_as_one():
    editor = LineEditor()
    typed(editor, "look:", key.LEFT)
    block = "@dataclass\nclass A:\n    x: int = 1  # if a > b\n/* c */\x1b[31m"
    sent = "look@dataclass\nclass A:\n    x: int = 1  # if a > b\n/* c */[31m:"  # control characters go
    assert editor.feed(Paste(block)) is None
    assert editor.view(80) == ("[4 lines pasted: Enter sends, Esc discards]", 43, 0)
    assert editor.view(12) == ("[4 lines pa", 11, 0)
    assert typed(editor, "x", key.BACKSPACE) == [Bell(), Bell()] and editor.block == sent  # no typing into it
    assert typed(editor, key.CR) == [Submit(sent, verbatim=True)]
    assert editor.text == "" and editor.block is None and editor.history == []


@pytest.mark.parametrize("discard", [key.ESC, key.CTRL_U, key.CTRL_C])
def test_esc_lets_a_held_paste_go_and_ctrl_c_on_one_does_not_quit(discard):
    editor = LineEditor()
    editor.feed(Paste("one\ntwo"))
    assert editor.feed(discard) is None and editor.block is None and editor.view(80) == ("", 0, 0)
    assert typed(editor, "next", key.CR) == [Submit("next")]


def test_an_oversized_paste_stays_with_the_reason_and_enter_does_not_send_it():
    editor = LineEditor()
    editor.feed(Paste("x" * 3000 + "\n" + "y" * 3000))
    assert editor.placeholder.startswith("[2 lines pasted, too long to send (60")
    assert "the server takes at most 4096 in one message): Esc discards]" in editor.placeholder
    assert typed(editor, key.CR) == [Bell()] and editor.block is not None
    editor.feed(key.ESC)
    assert editor.block is None


def test_a_long_line_typed_key_by_key_is_whole():
    # How fast: python scripts/bench_typing.py (a benchmark, not a timed assertion).
    editor = LineEditor()
    typed(editor, *"abcdefghij" * 400)  # the protocol's line limit is 4096 bytes
    assert editor.cursor == 4000 and editor.text == "abcdefghij" * 400
