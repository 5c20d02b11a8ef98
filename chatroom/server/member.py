"""A member as the room keeps it: its name, how its events are encoded, its outbox, and what a reconnect needs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

from .. import names
from ..protocol import Event, Private
from .outbox import Outbox


class Codec(Protocol):
    def __call__(self, event: Event, me: str) -> bytes:
        """The bytes one member receives for an event.

        For room-wide events `me` is "", so one encoding serves every member of that codec.
        """


_sessions = itertools.count(1)


@dataclass(frozen=True)
class Reservation:
    """A name kept for its owner across a restart: the token's hash, as stored."""
    name: str
    token_hash: str


@dataclass(frozen=True)
class Held:
    """A private message waiting for a reconnecting member, and the session that sent it: its bounce goes to
    that session under whatever name it has by then, never to another holder of the name it was sent under."""
    sender: int
    message: Private


class Member:
    def __init__(self, name: str, codec: Codec, outbox: Outbox, token_digest: str = "", address: str = "",
                 session: int | None = None) -> None:
        self.name = name
        # Who this is across renames and resumes (a resume passes the session it takes up).
        self.session = next(_sessions) if session is None else session
        self.address = address  # the IP address it came from: its names count against it (--max-per-ip)
        self.key = names.key(name)
        self.skeleton = names.skeleton(name)
        self.codec = codec
        self.outbox = outbox
        self.gone = False  # this connection has ended (the member may still be reconnecting)
        self.token_digest = token_digest  # the resume token's hash; "" for plain-text members
        self.away_until: float | None = None  # reconnecting until then (grace.py)
        self.held: list[Held] = []  # private messages waiting for a reconnecting member
        self.resumed = False  # this connection took up a session that waited for it

    def __repr__(self) -> str:
        return f"Member({self.name!r})"
