"""The events the server sends, as small frozen dataclasses (h11's idea), and why a member left. Pure."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

PROTOCOL_VERSION = 1


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
    event, where a client that sees nothing else can ask to catch up from; `epoch`: names the numbering of the
    ids, which only grow within it (a room that starts again without its history starts a new one)."""
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
    epoch: str = ""
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
    """The answer to /history (query None) or /search: public messages, oldest first (on the wire, each a
    `message` object)."""
    TYPE = "found"
    query: str | None
    messages: list[Message]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "query": self.query, "messages": [m.to_dict() for m in self.messages]}


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

# The endings the user did not choose: the client reconnects after them, and the server keeps the name (and the
# private messages sent to it) for the grace period. A server's own error is one: the user did nothing wrong.
UNCHOSEN_ENDINGS = ("lost", "closed", "timeout", "slow", "error")
