"""Printing above the input line, with and without a terminal."""

import io

import pytest
from readchar import key

from chatroom.client.console.editor import LineEditor, text_width
from chatroom.client.console.screen import COLORS_16, COLORS_256, Screen, color_theme, wrap
from chatroom.protocol import Message
from chatroom.render import PLAIN, render


def make(interactive: bool, colors: bool = True, text: str = "") -> tuple[Screen, io.StringIO]:
    editor = LineEditor()
    for ch in text:
        editor.feed(ch)
    out = io.StringIO()
    return Screen(out, editor, interactive, colors, environ={"TERM": "xterm"}), out


def test_message_goes_above_and_the_typed_line_is_redrawn_with_its_cursor():
    screen, out = make(True, text="half typed")
    screen.editor.feed(key.LEFT)
    screen.editor.feed(key.LEFT)
    screen.show("[14:02] <bob> hi")
    assert out.getvalue() == "\r\x1b[0J[14:02] <bob> hi\n\r\x1b[2K> half typed\x1b[2D"


def test_bell_only_when_asked():
    screen, out = make(True)
    screen.show("x", bell=True)
    assert "\a" in out.getvalue()
    screen, out = make(True)
    screen.show("x")
    assert "\a" not in out.getvalue()


def test_not_a_terminal_means_plain_lines_and_no_escape_codes():
    screen, out = make(False, text="typed")
    screen.show("line one\nline two", bell=True)
    screen.redraw()
    screen.bell()
    screen.close()
    assert out.getvalue() == "line one\nline two\n"
    assert screen.theme is PLAIN


def test_colors_on_and_off():
    assert make(True, colors=True)[0].theme.palette == COLORS_16.palette
    assert make(True, colors=False)[0].theme is PLAIN


@pytest.mark.parametrize("environ, theme", [
    ({"TERM": "xterm-256color"}, COLORS_256), ({"TERM": "tmux-256color"}, COLORS_256),
    ({"TERM": "xterm", "COLORTERM": "truecolor"}, COLORS_256), ({"TERM": "xterm"}, COLORS_16), ({}, COLORS_16),
])
def test_256_colors_when_the_terminal_has_them(environ, theme):
    assert color_theme(environ) is theme
    assert len(COLORS_256.palette) > 30 and len(COLORS_16.palette) >= 10


LONG = "see " + "lorem ipsum dolor sit amet " * 4 + "x" * 30


def test_a_long_message_wraps_at_spaces_with_continuation_rows_under_its_text():
    line = render(Message(seq=1, sender="alice", text=LONG, ts=0), "bob")
    assert wrap(line, 41)[0].endswith("<alice> see lorem ipsum dolor sit")  # full right before a space
    rows = wrap(line, 40)
    assert rows[0].endswith("<alice> see lorem ipsum dolor") and rows[0].index("see") == 16
    assert all(row.startswith(" " * 16) and not row[16].isspace() for row in rows[1:])
    assert all(text_width(row) <= 40 for row in rows)
    assert " ".join(row.strip() for row in rows[:-2]).endswith(LONG[:-31])
    assert rows[-2].strip() + rows[-1].strip() == "x" * 30  # a word longer than a row breaks
    assert wrap("short", 40) == ["short"]


def test_wrapping_ends_and_renews_open_styles_at_each_break():
    line = render(Message(seq=1, sender="alice", text="hey bob " + LONG, ts=0), "bob", COLORS_256)
    rows = wrap(line, 40)
    assert len(rows) > 2
    for row in rows[1:]:
        assert row.startswith(" " * 16 + COLORS_256.mention) and row.endswith(COLORS_256.reset)


def test_wide_characters_and_clusters_never_split_and_long_words_break():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    rows = wrap("-- " + "你" * 30 + family * 5, 20)
    assert all(text_width(row) <= 20 for row in rows)
    assert "".join(row.strip() for row in rows) == "--" + "你" * 30 + family * 5
    assert rows[1].startswith("   ") and not rows[1][3].isspace()


def test_close_clears_the_input_line_and_resets_colors():
    screen, out = make(True, text="unsent")
    screen.close()
    assert out.getvalue() == "\r\x1b[0J\x1b[0m"


def test_a_changed_size_paints_the_latest_text_anew_at_the_new_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "6")
    screen, out = make(True, text="draft")
    screen.status = "amy · connected · 2 users · 127.0.0.1:9100 · clear text"
    for number in range(3):
        screen.show(render(Message(seq=number, sender="alice", text=f"{number} " + "word " * 10, ts=0), "bob"))
    monkeypatch.setenv("COLUMNS", "30")  # narrowed: the next draw, whatever asks for it, paints it all anew
    out.seek(0)
    out.truncate()
    screen.redraw()
    painted = out.getvalue()
    assert painted.startswith("\x1b[1;1H") and painted.count("amy · connected") == 1
    rows = [row.removeprefix("\x1b[2K") for row in painted.removeprefix("\x1b[1;1H").split("\n")]
    body = rows[:4]  # six rows: four of text (the latest), the status line, the input line
    assert len(rows) == 6 and body[0].startswith("[00:00] <alice> 2 ") and rows[-1].endswith("> draft")
    assert all(row.startswith(" " * 14) and row[14] != " " for row in body[1:])  # indented (half the width)
    assert all(text_width(row) <= 29 for row in body)
