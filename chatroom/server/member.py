"""A member as the room keeps it: its name, how its events are encoded, its outbox, and what a reconnect needs."""

from __future__ import annotations

from typing import Protocol

from .. import names
from ..protocol import Event, Private
from .outbox import Outbox


class Codec(Protocol):
    def __call__(self, event: Event, me: str) -> bytes:
        """The bytes one member receives for an event.

        For room-wide events `me` is "", so one encoding serves every member of that codec.
        """


class Member:
    def __init__(self, name: str, codec: Codec, outbox: Outbox, token_digest: str = "", address: str = "") -> None:
        self.name = name
        self.address = address  # the IP address it came from: its names count against it (--max-per-ip)
        self.key = names.key(name)
        self.skeleton = names.skeleton(name)
        self.codec = codec
        self.outbox = outbox
        self.gone = False  # this connection has ended (the member may still be reconnecting)
        self.token_digest = token_digest  # the resume token's hash; "" for plain-text members
        self.away_until: float | None = None  # reconnecting until then (grace.py)
        self.held: list[Private] = []  # private messages waiting for a reconnecting member
        self.resumed = False  # this connection took up a session that waited for it

    def __repr__(self) -> str:
        return f"Member({self.name!r})"
