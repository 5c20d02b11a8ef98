"""Framing, sanitizing and the JSON events, without sockets."""

import dataclasses
import json

import pytest

from chatroom.codecs import MESSAGE_FIELDS, decode_event, encode_json
from chatroom.protocol import (
    BadEncoding, Error, Found, Hello, Line, LineFramer, LineTooLong, Message, Private, ProtocolError, Users, is_hello,
    parse_hello, parse_structured, sanitize,
)


def feed_all(framer: LineFramer, *chunks: bytes) -> list:
    return [event for chunk in chunks for event in framer.feed(chunk)]


def test_lines_split_across_reads_and_several_in_one_read():
    framer = LineFramer()
    assert feed_all(framer, b"hel", b"lo\nwor", b"ld\r\n", b"a\nb\nc") == [
        Line("hello"), Line("world"), Line("a"), Line("b")]
    assert framer.feed(b"\n") == [Line("c")]


def test_utf8_split_inside_a_character():
    data = "héllo ✓\n".encode()
    framer = LineFramer()
    assert feed_all(framer, *[data[i:i + 1] for i in range(len(data))]) == [Line("héllo ✓")]


def test_line_at_the_cap_passes_and_one_byte_more_is_refused():
    framer = LineFramer(limit=10)
    assert framer.feed(b"x" * 10 + b"\n") == [Line("x" * 10)]
    assert framer.feed(b"x" * 11 + b"\n") == [LineTooLong(10)]
    assert framer.feed(b"next\n") == [Line("next")]


def test_crlf_at_the_cap_is_not_too_long():
    assert LineFramer(limit=4).feed(b"abcd\r\n") == [Line("abcd")]


def test_endless_line_keeps_memory_bounded_and_is_reported_once():
    framer = LineFramer(limit=100)
    events = feed_all(framer, *[b"y" * 64 for _ in range(1000)])
    assert events == [LineTooLong(100)]
    assert len(framer._pending) <= 101
    assert framer.feed(b"tail\nok\n") == [Line("ok")]


def test_invalid_utf8_is_an_event_not_an_exception():
    framer = LineFramer()
    assert framer.feed(b"\xff\xfe bad\ngood\n") == [BadEncoding(), Line("good")]


@pytest.mark.parametrize("dirty, clean", [
    ("\x1b[2Jhello", "[2Jhello"),
    ("bell\x07 and \x00nul", "bell and nul"),
    ("c1 \x9b31m csi", "c1 31m csi"),
    ("del\x7f", "del"),
    ("tab\there", "tab here"),
    ("\u202eevil\u202c", "evil"),
    ("\u2066isolate\u2069 \u200fmark", "isolate mark"),
])
def test_sanitize_removes_controls(dirty, clean):
    assert sanitize(dirty) == clean


def test_sanitize_keeps_ordinary_unicode():
    text = "Grüße, 你好, مرحبا, 👋🏽, e\u0301"
    assert sanitize(text) == text


def test_events_round_trip_through_json():
    for event in [Message(seq=1, sender="al", text="hi ✓"), Private(seq=2, sender="a", to="b", text="x"),
                  Users(users=["a", "b"], you="a"), Error(code="c", message="m")]:
        data = encode_json(event)
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        assert decode_event(data.decode()) == event


@pytest.mark.parametrize("message", [
    Message(seq=1, sender="al", text="hi ✓"),
    Message(seq=2**40, sender='q"uo\\te', text='say "x" \\ y\n\t\x00 \u2028 👋🏽', action=True, earlier=True, ts=0.1),
    Message(seq=3, sender="b", text="", ts=1700000000),
    Message(seq=4, sender="b", text="a", ts=float("nan")),  # not spelled out: JSON's NaN is not repr's
])
def test_a_message_spelled_out_is_what_the_encoder_writes(message):
    expected = json.dumps(message.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
    assert encode_json(message) == expected.encode()


def test_the_spelled_out_message_has_every_field_in_order():
    assert tuple(field.name for field in dataclasses.fields(Message)) == MESSAGE_FIELDS


def test_decode_rejects_garbage_and_skips_unknown_types():
    with pytest.raises(ProtocolError):
        decode_event("not json")
    with pytest.raises(ProtocolError):
        decode_event('{"no": "type"}')
    with pytest.raises(ProtocolError):
        decode_event('{"type": "message"}')
    assert decode_event('{"type": "from-the-future", "x": 1}') is None


def test_one_decoder_reads_what_a_newer_version_adds_and_refuses_wrong_types():
    assert decode_event('{"type":"message","seq":1,"sender":"a","text":"b","ts":5,"reactions":[]}') == Message(
        seq=1, sender="a", text="b", ts=5)
    for bad in ['{"type":"message","seq":"1","sender":"a","text":"b"}', '{"type":"message","seq":true,'
                '"sender":"a","text":"b"}', '{"type":"message","seq":1,"sender":"a","text":"b","ts":"noon"}',
                '{"type":"users","users":["a",2],"you":"a"}', '{"type":"found","query":null,"messages":5}']:
        with pytest.raises(ProtocolError):
            decode_event(bad)


@pytest.mark.parametrize("ts", ["1e30", "NaN", "Infinity", "-Infinity", "1e999", "-1", "32503680001", "1" + "0" * 400])
def test_a_time_that_cannot_be_shown_is_refused(ts):
    """Python's json reads NaN, Infinity and 1e999; a time out of range passed the type check and then raised
    where it was drawn (time.localtime), killing the console's loop and freezing the window."""
    with pytest.raises(ProtocolError, match="ts is not"):
        decode_event('{"type": "message", "seq": 7, "sender": "mallory", "text": "hi", "ts": ' + ts + "}")
    assert decode_event('{"type": "message", "seq": 7, "sender": "a", "text": "hi", "ts": 0}').ts == 0


def test_a_number_that_is_not_finite_is_refused_in_every_field():
    with pytest.raises(ProtocolError, match="rate is not"):
        decode_event('{"type": "welcome", "name": "a", "users": ["a"], "rate": NaN}')


def test_a_found_answer_carries_messages_and_leaves_out_what_is_not_one():
    found = Found(query="lunch", messages=[Message(seq=3, sender="a", text="lunch?", ts=1.5)])
    assert decode_event(encode_json(found).decode()) == found
    mixed = ('{"type":"found","query":null,"messages":[{"type":"message","seq":1,"sender":"a","text":"x","ts":1},'
             '{"type":"join","seq":2,"name":"b"},{"type":"message"},7]}')
    assert decode_event(mixed) == Found(query=None, messages=[Message(seq=1, sender="a", text="x", ts=1)])


def test_hello():
    assert is_hello('{"type":"hello"}') and not is_hello("alice")
    assert parse_hello(Hello("zoë").encode().decode()) == Hello("zoë")
    for bad in ['{"type":"hello"}', '{"type":"hi","name":"a"}', "{", '{"type":"hello","name":"a","version":"1"}']:
        with pytest.raises(ProtocolError):
            parse_hello(bad)


@pytest.mark.parametrize("bad", [
    # Nested deeper than the protocol ever does: refused by our bound, not by the interpreter's recursion
    # limit (3.11 refuses 2,000 levels with RecursionError, 3.13 parses them; both parse 100).
    '{"type":"hello","name":"a","x":' + "[" * 100 + "]" * 100 + "}",
    '{"type":"hello","name":"a","x":' + "[" * 2000 + "]" * 2000 + "}",
    '{"type":"hello","name":"a","x":' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}",
    '{"type":"hello","name":"a","password":"\\ud800"}',  # a lone surrogate: not UTF-8, cannot be hashed
    '{"type":"hello","name":"\\udfff"}',
    '{"type":"hello","name":"a","version":true}',  # a bool is an int to isinstance
    '{"type":"hello","name":"a","version":' + "9" * 5000 + "}",  # past int's digit limit
])
def test_malformed_hello_is_a_protocol_error(bad):
    with pytest.raises(ProtocolError):
        parse_hello(bad)


def test_hello_password_of_the_wrong_type_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="password"):
        parse_hello('{"type":"hello","name":"a","password":5}')


@pytest.mark.parametrize("line", [
    "[" * 100_000, '{"type": "message", "seq": ' + "9" * 5000 + "}",
    '{"type": "message", "seq": 1, "sender": "a", "text": "b", "x": ' + "[" * 100 + "]" * 100 + "}",
    '{"type": "message", "x": ' + "[" * 2000 + "]" * 2000 + "}",
])
def test_a_hostile_servers_event_is_a_protocol_error_not_a_crash(line):
    with pytest.raises(ProtocolError):
        decode_event(line)


def test_brackets_in_text_are_not_nesting():
    text = "[[[{{{" * 100 + '\\"' + "]]]" * 50
    line = json.dumps({"type": "hello", "name": "a", "password": text, "x": [[[[{"y": [1]}]]]]})
    assert parse_hello(line).password == text
    assert parse_structured(json.dumps({"type": "say", "text": text})) == text
    with pytest.raises(ProtocolError):  # an unfinished string's brackets count: it is no JSON anyway
        parse_hello('{"type":"hello","name":"a","x":"' + "[" * 100)
