"""The wire: line framing with a size cap, events to and from JSON lines, text sanitizing.

Pure: bytes and strings in, events and bytes out; the callers do the I/O.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

PROTOCOL_VERSION = 1
LINE_LIMIT = 4096  # bytes a client may send in one line, without the newline
SERVER_LINE_LIMIT = 1 << 20  # a user list or help can be long; clients still stay bounded
BANNER_PREFIX = f"chatroom/{PROTOCOL_VERSION} "
BANNER = BANNER_PREFIX + "Welcome! Choose a username (1-20 letters, digits, _ - .):"
NAME_PROMPT = "Choose another username:"


# --- sanitizing -------------------------------------------------------------

def _unsafe_code_points() -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: None for cp in range(0x20)}
    table[0x09] = " "  # a tab is kept as the space a user meant
    table[0x7F] = None
    table.update({cp: None for cp in range(0x80, 0xA0)})  # C1, which includes the 8-bit CSI
    # Bidi embeddings, overrides, isolates and marks can reorder what others see
    # ("Trojan Source"); line separators can break a terminal line.
    bidi = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]
    table.update({cp: None for cp in bidi})
    return table


_UNSAFE = _unsafe_code_points()


def sanitize(text: str) -> str:
    """Remove everything that could steer a terminal or reorder text; keep the rest."""
    return text.translate(_UNSAFE)


def sanitize_lines(text: str) -> str:
    """`sanitize` for a message of several lines: each line alone, the line breaks kept."""
    return "\n".join(sanitize(line) for line in text.split("\n"))


def parse_structured(line: str) -> str | None:
    """The text of a structured message line (JSON mode, after login): `{"type": "say", "text": "..."}`,
    or None when the line is not one (then it is typed text like any other).

    It carries what one line cannot: a pasted block of several lines, sent verbatim, never a command."""
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("type") != "say":
        return None
    if not isinstance(data.get("text"), str):
        raise ProtocolError('a structured message is {"type": "say", "text": "..."}')
    text = sanitize_lines(data["text"].replace("\r\n", "\n")).strip("\n")
    if not _utf8(text):
        raise ProtocolError("the message holds a lone surrogate, which is not Unicode text")
    if not text.strip():
        raise ProtocolError("the message is empty")
    return text


# --- framing ----------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class LineTooLong:
    limit: int


@dataclass(frozen=True)
class BadEncoding:
    pass


FrameEvent = Line | LineTooLong | BadEncoding


class LineFramer:
    """Split a byte stream into UTF-8 lines of at most `limit` bytes.

    Memory stays bounded whatever the peer sends: the part of a line past the
    limit is dropped as it arrives, and reported once.
    """

    def __init__(self, limit: int = LINE_LIMIT) -> None:
        self.limit = limit
        self._pending = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[FrameEvent]:
        events: list[FrameEvent] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            if self._pending:
                piece = bytes(self._pending) + piece
                self._pending.clear()
            events.append(self._decode(piece))
        rest = data[start:]
        if rest and not self._discarding:
            # One more byte than the limit is allowed for the '\r' of a "\r\n" ending.
            if len(self._pending) + len(rest) > self.limit + 1:
                self._pending.clear()
                self._discarding = True
                events.append(LineTooLong(self.limit))
            else:
                self._pending += rest
        return events

    def _decode(self, piece: bytes) -> FrameEvent:
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if len(piece) > self.limit:
            return LineTooLong(self.limit)
        try:
            return Line(piece.decode("utf-8"))
        except UnicodeDecodeError:
            return BadEncoding()


# --- events -----------------------------------------------------------------

class ProtocolError(ValueError):
    """A line that does not follow the protocol."""


@dataclass(frozen=True)
class Event:
    TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies, and a welcome carries the whole user list.
        return {"type": self.TYPE, **{name: getattr(self, name) for name in _field_names(type(self))}}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return _FIELD_NAMES[cls]


def _now() -> float:
    return round(time.time(), 3)


@dataclass(frozen=True)
class Message(Event):
    """Public chat; `action` for /me, `earlier` for history replayed on join."""
    TYPE = "message"
    seq: int
    sender: str
    text: str
    action: bool = False
    earlier: bool = False
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Private(Event):
    TYPE = "private"
    seq: int
    sender: str
    to: str
    text: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Joined(Event):
    """`back`: a member who was reconnecting is back (no leave was announced)."""
    TYPE = "join"
    seq: int
    name: str
    back: bool = False
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Reconnecting(Event):
    """A member's connection was lost; the name waits for them for the grace period."""
    TYPE = "reconnecting"
    seq: int
    name: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Left(Event):
    TYPE = "leave"
    seq: int
    name: str
    reason: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Renamed(Event):
    TYPE = "rename"
    seq: int
    old: str
    new: str
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Welcome(Event):
    """`rate` and `burst`: the server's message limit (0: none), so a client can pace a paste.
    `token`: proves this name is yours when you reconnect (JSON mode); `away`: the users reconnecting;
    `resumed`: this login took up a session that was waiting for you; `seq`: the id of the room's latest
    event, where a client that sees nothing else can ask to catch up from."""
    TYPE = "welcome"
    name: str
    users: list[str]
    version: int = PROTOCOL_VERSION
    rate: float = 0.0
    burst: int = 0
    token: str = ""
    away: list[str] = field(default_factory=list)
    resumed: bool = False
    seq: int = 0
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Users(Event):
    TYPE = "users"
    users: list[str]
    you: str
    away: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CaughtUp(Event):
    """After a resume's replay: how many events were replayed, and how many older ones could not be."""
    TYPE = "caught_up"
    count: int
    missing: int = 0
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class Found(Event):
    """The answer to /history (query None) or /search: public messages as `message` objects, oldest first."""
    TYPE = "found"
    query: str | None
    messages: list[dict[str, Any]]


@dataclass(frozen=True)
class Help(Event):
    TYPE = "help"
    lines: list[str]


@dataclass(frozen=True)
class Error(Event):
    TYPE = "error"
    code: str
    message: str


@dataclass(frozen=True)
class Bye(Event):
    """The last event a leaving user receives: why the connection ends."""
    TYPE = "bye"
    reason: str


@dataclass(frozen=True)
class Ping(Event):
    """JSON mode, after a silence: the client answers with the line /pong."""
    TYPE = "ping"


@dataclass(frozen=True)
class Shutdown(Event):
    TYPE = "shutdown"
    message: str = "the server is shutting down"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (Message, Private, Joined, Reconnecting, Left, Renamed, Welcome, Users, CaughtUp, Found, Help, Error,
                Bye, Ping, Shutdown)
}

# Why a member left: the stable code on the wire, and how people read it.
LEAVE_REASONS = {
    "quit": "quit",
    "closed": "closed the connection",
    "lost": "connection lost",
    "slow": "dropped for being too slow to read",
    "timeout": "timed out: no answer from the client",
    "shutdown": "server shutdown",
    "error": "dropped after a server error",
}


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
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # as in parse_hello: a hostile server must not crash a client
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


@dataclass(frozen=True)
class Hello:
    """The structured first line that selects JSON-lines mode."""
    name: str
    version: int = PROTOCOL_VERSION
    password: str | None = None
    reconnect: bool = False  # this client reconnects by itself: give it a token and keep its name
    resume: str | None = None  # the token of the welcome, to take up a session after a lost connection
    after: int | None = None  # the last event id seen: the server replays what came after it

    def encode(self) -> bytes:
        data: dict[str, Any] = {"type": "hello", "name": self.name, "version": self.version}
        if self.reconnect:
            data["reconnect"] = True
        for optional in ("password", "resume", "after"):
            if getattr(self, optional) is not None:
                data[optional] = getattr(self, optional)
        return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def is_hello(line: str) -> bool:
    return line.lstrip().startswith("{")


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which a JSON \ud800 escape can carry
        return False
    return True


def parse_hello(line: str) -> Hello:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, nested past the stack, a number past int's digit limit
        raise ProtocolError("the hello is not valid JSON") from None
    if not isinstance(data, dict) or data.get("type") != "hello":
        raise ProtocolError('the hello must be a JSON object with "type": "hello"')
    name, version = data.get("name"), data.get("version", PROTOCOL_VERSION)
    password = data.get("password")
    if not isinstance(name, str):
        raise ProtocolError('the hello needs a "name" string')
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError('"version" must be a whole number')
    if password is not None and not isinstance(password, str):
        raise ProtocolError('"password" must be a string')
    resume, after, reconnect = data.get("resume"), data.get("after"), data.get("reconnect", False)
    if not isinstance(reconnect, bool):
        raise ProtocolError('"reconnect" must be true or false')
    if resume is not None and (not isinstance(resume, str) or len(resume) > 200):
        raise ProtocolError('"resume" must be the token of a welcome')
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise ProtocolError('"after" must be an event id (a whole number from 0)')
    if not _utf8(name) or not _utf8(password or "") or not _utf8(resume or ""):
        raise ProtocolError("the hello holds a lone surrogate, which is not Unicode text")
    return Hello(name=name, version=version, password=password, reconnect=reconnect, resume=resume, after=after)
