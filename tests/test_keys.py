"""Decoding terminal input into readchar's key names."""

import pytest
from readchar import key

from chatroom.client.console.keys import ALT_B, ALT_BACKSPACE, ALT_F, CTRL_LEFT, CTRL_RIGHT, KeyDecoder, Paste


@pytest.mark.parametrize("sequence, name", [
    ("\x1b[A", key.UP), ("\x1bOA", key.UP), ("\x1b[B", key.DOWN), ("\x1b[C", key.RIGHT), ("\x1b[D", key.LEFT),
    ("\x1b[H", key.HOME), ("\x1b[1~", key.HOME), ("\x1bOH", key.HOME), ("\x1b[7~", key.HOME),
    ("\x1b[F", key.END), ("\x1b[4~", key.END), ("\x1bOF", key.END), ("\x1b[3~", key.DELETE),
    ("\x1b[1;2D", key.LEFT), ("\x1b[1;2C", key.RIGHT), ("\x1b[1;5A", key.UP),
    ("\x17", key.CTRL_W), ("\x1b\x7f", ALT_BACKSPACE), ("\x1b\x08", ALT_BACKSPACE), ("\x1bb", ALT_B),
    ("\x1bf", ALT_F), ("\x1b[1;5D", CTRL_LEFT), ("\x1b[1;3D", CTRL_LEFT), ("\x1bOd", CTRL_LEFT),
    ("\x1b[1;5C", CTRL_RIGHT), ("\x1b[1;3C", CTRL_RIGHT), ("\x1bOc", CTRL_RIGHT),
    # Any modifiers that hold Ctrl or Alt (xterm's 1 + Shift 1, Alt 2, Ctrl 4) move by word; others do not.
    ("\x1b[1;6D", CTRL_LEFT), ("\x1b[1;7C", CTRL_RIGHT), ("\x1b[1;5H", key.HOME), ("\x1b[1;2F", key.END),
    ("\x1b[3;5~", key.DELETE), ("\x1b[3;3~", key.DELETE), ("\x1b[15;5~", "\x1b[15~"),
])
def test_sequences(sequence, name):
    assert KeyDecoder().feed(sequence) == [name]


def test_text_and_keys_mixed_in_one_read():
    assert KeyDecoder().feed("ab\x1b[Dc\r\x7f") == ["a", "b", key.LEFT, "c", "\r", "\x7f"]


def test_sequence_split_across_reads():
    decoder = KeyDecoder()
    assert decoder.feed("x\x1b") == ["x"] and decoder.waiting
    assert decoder.feed("[") == []
    assert decoder.feed("3") == []
    assert decoder.feed("~y") == [key.DELETE, "y"]
    assert not decoder.waiting


def test_lone_escape_comes_out_on_flush():
    decoder = KeyDecoder()
    assert decoder.feed("\x1b") == []
    assert decoder.flush() == ["\x1b"]
    assert decoder.flush() == []


def test_unknown_sequences_stay_whole():
    assert KeyDecoder().feed("\x1b[15~\x1b[99~z") == ["\x1b[15~", "\x1b[99~", "z"]


def test_alt_key_and_double_escape():
    assert KeyDecoder().feed("\x1bx\x1b\x1b[A") == ["\x1bx", "\x1b", key.UP]


def test_paste_of_500_characters():
    text = "0123456789" * 50
    assert KeyDecoder().feed(text) == list(text)


def test_bracketed_paste_is_one_item_verbatim_with_tabs_as_spaces_and_newlines_for_cr():
    pasted = KeyDecoder().feed("a\x1b[200~@dataclass\rclass A:\r\n    x: int = 1  # if a > b\r\t/* c */\x1b[201~b")
    assert pasted == ["a", "@dataclass\nclass A:\n    x: int = 1  # if a > b\n        /* c */", "b"]
    assert isinstance(pasted[1], Paste) and not isinstance(pasted[0], Paste)


def test_bracketed_paste_split_across_reads_and_holding_escapes():
    decoder = KeyDecoder()
    chunks = ["x\x1b[2", "00~/quit\x1b[A ", "\x1b[20", "", "1~", "y"]
    keys = [pressed for chunk in chunks for pressed in decoder.feed(chunk)]
    assert keys == ["x", "/quit\x1b[A ", "y"] and isinstance(keys[1], Paste)
    assert decoder.flush() == []


def test_an_unfinished_paste_waits_for_its_end_through_idle_flushes():
    decoder = KeyDecoder()
    assert decoder.feed("\x1b[200~half") == [] and decoder.flush() == [] and not decoder.waiting
    assert decoder.feed(" done\x1b[201~") == ["half done"]


def test_a_large_paste_in_many_reads():
    text = "0123456789\n" * 10_000
    decoder = KeyDecoder()
    data = "\x1b[200~" + text + "\x1b[201~"
    keys = [pressed for start in range(0, len(data), 4096) for pressed in decoder.feed(data[start:start + 4096])]
    assert keys == [text]


def test_a_failing_key_source_is_reported_not_taken_for_the_end_of_input():
    from chatroom.client.console.keys import KeyboardFailed, KeyReader

    def source(stopped):
        yield "a"
        raise OSError(6, "The handle is invalid")

    reader = KeyReader(source)
    reader.start()
    reader._thread.join(5)
    try:
        with pytest.raises(KeyboardFailed, match="reading the keyboard failed: OSError: .*handle is invalid"):
            reader.drain()
    finally:
        reader.stop()


def test_the_end_of_input_is_none():
    from chatroom.client.console.keys import KeyReader
    reader = KeyReader(lambda stopped: iter("ab"))
    reader.start()
    reader._thread.join(5)
    try:
        assert reader.drain() == ["a", "b", None]
    finally:
        reader.stop()
