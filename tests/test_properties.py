"""Property-based tests: any input in, no exception out, nothing unsafe out, exact round trips."""

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom import commands
from chatroom.codecs import decode_event, encode_json
from chatroom.protocol import BadEncoding, Line, LineFramer, LineTooLong, Message, Private, sanitize
from chatroom.protocol.text import _UNSAFE
from chatroom.render import render

LIMIT = 64


def unsafe(ch: str) -> bool:
    return ord(ch) in _UNSAFE and _UNSAFE[ord(ch)] is None or unicodedata.category(ch) == "Cc"


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_framing_never_raises_and_never_yields_a_line_over_the_cap(chunks):
    framer = LineFramer(LIMIT)
    for chunk in chunks:
        for event in framer.feed(chunk):
            assert isinstance(event, (Line, LineTooLong, BadEncoding))
            if isinstance(event, Line):
                assert len(event.text.encode()) <= LIMIT and "\n" not in event.text
    assert len(framer._pending) <= LIMIT + 1


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                             max_size=20), max_size=10),
       st.data())
def test_valid_lines_round_trip_exactly_however_they_are_split(lines, data):
    stream = "".join(line + "\n" for line in lines).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = LineFramer(limit=10_000)
    events = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        events += framer.feed(stream[start:end])
    assert events == [Line(line) for line in lines]


@given(st.text())
def test_sanitize_leaves_no_control_character_and_is_idempotent(text):
    clean = sanitize(text)
    assert not any(unsafe(ch) for ch in clean)
    assert sanitize(clean) == clean


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp"))))
def test_sanitize_keeps_ordinary_text_untouched(text):
    assert sanitize(text) == text


@given(st.text(max_size=300))
def test_parse_never_raises(text):
    result = commands.parse(text)
    assert result is None or isinstance(result, (commands.Command, commands.CommandError))
    if isinstance(result, commands.Command):
        assert result.kind in {spec.kind for spec in commands.TABLE}


@given(st.text(alphabet="ab /*?@>\t", max_size=12))
def test_a_line_without_a_form_is_said_as_it_is(text):
    line = text.strip()
    if line and line[0] not in "/*?@" and " > " not in line:
        assert commands.parse(text) == commands.Command(commands.Kind.SAY, text=line)
    elif line.startswith("/"):
        assert commands.parse(text) != commands.Command(commands.Kind.SAY, text=line)


@settings(max_examples=200)
@given(st.text(), st.text(), st.text())
def test_rendered_network_text_carries_no_control_characters(sender, to, text):
    for event in (Message(seq=1, sender=sender, text=text), Private(seq=1, sender=sender, to=to, text=text)):
        out = render(event, me=to)
        assert not any(unsafe(ch) for ch in out.replace("\n", ""))


@given(st.text(), st.text(), st.integers(0, 2**53))
def test_events_round_trip_through_json(sender, text, seq):
    event = Message(seq=seq, sender=sender, text=text)
    assert decode_event(encode_json(event).decode()) == event
