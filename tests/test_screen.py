"""Printing above the input line, with and without a terminal."""

import io

from readchar import key

from chatroom.client.editor import LineEditor
from chatroom.client.screen import COLORS, Screen
from chatroom.render import PLAIN


def make(interactive: bool, colors: bool = True, text: str = "") -> tuple[Screen, io.StringIO]:
    editor = LineEditor()
    for ch in text:
        editor.feed(ch)
    out = io.StringIO()
    return Screen(out, editor, interactive, colors), out


def test_message_goes_above_and_the_typed_line_is_redrawn_with_its_cursor():
    screen, out = make(True, text="half typed")
    screen.editor.feed(key.LEFT)
    screen.editor.feed(key.LEFT)
    screen.show("[14:02] <bob> hi")
    assert out.getvalue() == "\r\x1b[2K[14:02] <bob> hi\n\r\x1b[2K> half typed\x1b[2D"


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
    assert make(True, colors=True)[0].theme is COLORS
    assert make(True, colors=False)[0].theme is PLAIN


def test_close_clears_the_input_line_and_resets_colors():
    screen, out = make(True, text="unsent")
    screen.close()
    assert out.getvalue() == "\r\x1b[2K\x1b[0m"
