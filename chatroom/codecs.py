"""An event as bytes for each mode: JSON lines (structured clients) and plain text (nc, telnet); and a JSON
line read back into an event. Pure: what a room encodes under its lock never blocks."""

from __future__ import annotations

import dataclasses
import json

from . import render
from .protocol.events import EVENT_TYPES, Event, ProtocolError
from .protocol.jsonline import parse_json


def encode_json(event: Event) -> bytes:
    """The event as one JSON line; kept on the event, so the history writer does not encode it again."""
    cached: bytes | None = event.__dict__.get("_json")
    if cached is None:
        cached = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        object.__setattr__(event, "_json", cached)  # frozen for its fields, not for this cache
    return cached


def decode_event(text: str) -> Event | None:
    """An event from one JSON line; None for a type this client does not know yet."""
    try:
        data = parse_json(text)
    except ValueError as exc:  # as in parse_hello: a hostile server must not crash a client
        raise ProtocolError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("an event must be a JSON object with a type")
    cls = EVENT_TYPES.get(data["type"])
    if cls is None:
        return None
    known = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ProtocolError(f"bad {data['type']} event: {exc}") from None



def json_codec(event: Event, me: str) -> bytes:
    return encode_json(event)


def plain_codec(event: Event, me: str) -> bytes:
    text = render.render(event, me)
    return (text + "\n").encode() if text else b""
