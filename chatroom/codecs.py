"""An event as bytes for each mode: JSON lines (structured clients) and plain text (nc, telnet); and a JSON
line read back into an event, the one decoder for what a server sends and what the history file stores.
Pure: what a room encodes under its lock never blocks."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, TypeVar

from . import render
from .protocol.events import EVENT_TYPES, Event, Found, Message, ProtocolError
from .protocol.files import FileList, FileShared
from .protocol.jsonline import parse_json


TIME_FIELDS = ("ts",)  # seconds since 1970 (UTC), the protocol's one name for a time
# The last time every platform can show (Windows' localtime stops in the year 3000): a time past it, before
# 1970 or not a number is refused here, rather than raising where an event is drawn.
LATEST_TIME = 32503680000.0  # 3000-01-01 00:00 UTC
E = TypeVar("E", bound=Event)

# What a plain-text member reads under a share notice: nc and telnet have no way to fetch a file.
FILES_NEED_CLIENT = "   (files need the chatroom client: nc and telnet cannot fetch them)"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # json.dumps makes one per call
# A message, the event of every line said, spelled out: a third of the time of the encoder's dict.
# Its fields in their order, as Message declares them (tests/test_protocol.py holds the two together).
MESSAGE_FIELDS = ("seq", "sender", "text", "action", "earlier", "ts")
_MESSAGE = '{"type":"message","seq":%r,"sender":%s,"text":%s,"action":%s,"earlier":%s,"ts":%r}\n'
_BOOLEAN = {False: "false", True: "true"}


def encode_json(event: Event) -> bytes:
    """The event as one JSON line; kept on the event, so the history writer does not encode it again."""
    cached: bytes | None = event.__dict__.get("_json")
    if cached is None:
        if type(event) is Message and _plain_message(event):
            cached = (_MESSAGE % (event.seq, encode_basestring(event.sender), encode_basestring(event.text),
                                  _BOOLEAN[event.action], _BOOLEAN[event.earlier], event.ts)).encode()
        else:
            cached = (_ENCODER.encode(event.to_dict()) + "\n").encode()
        object.__setattr__(event, "_json", cached)  # frozen for its fields, not for this cache
    return cached


def _plain_message(message: Message) -> bool:
    """The fields of the types the spelled-out form is written for (a finite ts: no NaN, which repr spells
    differently); anything else takes the encoder's way."""
    return (type(message.seq) is int and type(message.sender) is str and type(message.text) is str
            and type(message.action) is bool and type(message.earlier) is bool
            and type(message.ts) in (float, int) and message.ts - message.ts == 0)


def decode_event(text: str) -> Event | None:
    """An event from one JSON line; None for a type this version does not know yet."""
    try:
        data = parse_json(text)
    except ValueError as exc:  # as in parse_hello: a hostile server must not crash a client
        raise ProtocolError(f"not JSON: {str(exc)[:80]}") from None
    return event_from_dict(data)


def event_from_dict(data: object) -> Event | None:
    """An event from its JSON object (`to_dict` read back); None for a type this version does not know.

    Fields this version does not know are left out: a newer one may add some. A field missing or of the
    wrong type is a ProtocolError, so nothing downstream meets a timestamp that is a string."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("an event must be a JSON object with a type")
    cls = EVENT_TYPES.get(data["type"])
    if cls is None:
        return None
    kinds = _field_kinds(cls)
    fields = {name: value for name, value in data.items() if name in kinds}
    if cls is Found and "messages" in fields:
        fields["messages"] = _nested(fields["messages"], Message)
    elif cls is FileList and "files" in fields:
        fields["files"] = _nested(fields["files"], FileShared)
    for name, value in fields.items():
        if not kinds[name].fits(value):
            raise ProtocolError(f"bad {cls.TYPE} event: {name} is not {kinds[name]}")
        if name in TIME_FIELDS and not 0 <= value <= LATEST_TIME:
            raise ProtocolError(f"bad {cls.TYPE} event: {name} is not a time from 1970 to 3000")
    try:
        return cls(**fields)
    except TypeError as exc:  # a required field is missing
        raise ProtocolError(f"bad {cls.TYPE} event: {exc}") from None


def _nested(value: object, cls: type[E]) -> list[E]:
    """The events listed in another (a `found` answer's messages, a `files` answer's files); one that is not
    of the kind is left out (a server's mistake is not shown)."""
    if not isinstance(value, list):
        raise ProtocolError(f"bad event: its list of {cls.TYPE} events is not a list")
    found = []
    for data in value:
        try:
            event = event_from_dict(data)
        except ProtocolError:
            continue
        if isinstance(event, cls):
            found.append(event)
    return found


@dataclass(frozen=True)
class _Kind:
    """What a field takes, as isinstance wants it: `types`, and for a list the types of its `items`."""
    types: tuple[type, ...]
    items: tuple[type, ...] = ()
    hint: str = ""

    def fits(self, value: object) -> bool:
        if not _instance(value, self.types) or (isinstance(value, float) and not math.isfinite(value)):
            return False  # Python's json reads NaN, Infinity and 1e999, which no field of ours means
        return not (self.items and isinstance(value, list)) or all(_instance(item, self.items) for item in value)

    def __str__(self) -> str:
        return self.hint


def _instance(value: object, types: tuple[type, ...]) -> bool:
    # JSON's true is no number, though bool is an int to isinstance.
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _kind(hint: Any) -> _Kind:
    """The few field types events use: a class, float (an int will do), list[X], and unions of these."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    accepted: list[type] = []
    items: tuple[type, ...] = ()
    for option in options:
        if typing.get_origin(option) is list:
            accepted.append(list)
            items = typing.get_args(option)
        else:
            accepted += [int, float] if option is float else [option]
    return _Kind(tuple(accepted), items, getattr(hint, "__name__", None) or str(hint))


_FIELD_KINDS: dict[type[Event], dict[str, _Kind]] = {}


def _field_kinds(cls: type[Event]) -> dict[str, _Kind]:
    if cls not in _FIELD_KINDS:
        hints = typing.get_type_hints(cls)
        _FIELD_KINDS[cls] = {field.name: _kind(hints[field.name]) for field in dataclasses.fields(cls)}
    return _FIELD_KINDS[cls]


def json_codec(event: Event, me: str) -> bytes:
    return encode_json(event)


# Plain text (nc, telnet) indents each further line of a block by this many spaces: a line break then costs 3
# bytes, no more than the 2 of its JSON escape plus 1, so a block is never much bigger in plain text than in
# JSON and the limits that count JSON bytes (config.EVENT_BYTES, the history's) hold in both modes.
PLAIN_BLOCK_INDENT = 2


def plain_codec(event: Event, me: str) -> bytes:
    text = render.render(event, me, indent=PLAIN_BLOCK_INDENT)
    if isinstance(event, FileShared):
        text += "\n" + FILES_NEED_CLIENT
    return (text + "\n").encode() if text else b""
