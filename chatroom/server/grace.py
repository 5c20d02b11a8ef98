"""The grace period: a member whose connection ended without their choice (`UNCHOSEN_ENDINGS`) stays in the
room as reconnecting for `Config.grace` seconds. Its name waits for the holder of its resume token, and
private messages to it wait too (at most `HELD_PRIVATES`); when the grace ends they bounce to their senders.

Memory only: the room calls these under its lock and sends what they return.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from .. import render
from ..names import NameProblem
from ..protocol import UNCHOSEN_ENDINGS, Error, Event, Private
from .member import Held, Member, Reservation
from .outbox import Outbox

HELD_PRIVATES = 100  # private messages that may wait for a reconnecting member


def keeps_name(member: Member, reason: str, seconds: float) -> bool:
    """Whether this ending starts a grace period: the user did not choose it and their client can resume."""
    return reason in UNCHOSEN_ENDINGS and bool(member.token_digest) and seconds > 0


def waiting(kept: Reservation, outbox: Outbox, until: float) -> Member:
    """A name kept across a restart: a member whose connection was lost just now, reconnecting `until` then."""
    member = Member(kept.name, _no_codec, outbox, kept.token_hash)
    member.gone, member.away_until = True, until
    outbox.close(flush=False)
    return member


def _no_codec(event: Event, me: str) -> bytes:
    return b""


def away(members: Iterable[Member]) -> list[str]:
    """The names of the members who are reconnecting."""
    return [member.name for member in members if member.away_until is not None]


def reserved(member: Member, now: float) -> NameProblem:
    """Why someone without the token cannot take a reconnecting member's name."""
    assert member.away_until is not None
    return reserved_for(member.name, member.away_until - now)


def reserved_for(name: str, wait: float) -> NameProblem:
    """The same, for a member reconnecting with `wait` seconds of grace left."""
    return NameProblem("name_reserved",
                       f'"{name}" is reconnecting: the name is kept for them for {math.ceil(wait)} more seconds')


def cannot_hold(target: Member) -> Error | None:
    """Why a private message for a reconnecting member cannot wait (None: it can, or the member is here)."""
    if target.away_until is None or len(target.held) < HELD_PRIVATES:
        return None
    return too_many_held(target.name)


def too_many_held(name: str) -> Error:
    return Error(code="not_delivered", message=f"{name} is reconnecting and has {HELD_PRIVATES} "
                                               "messages waiting already: your message was not sent")


def hold(target: Member, sender: Member, message: Private) -> Error:
    """Keep a private message for a reconnecting member; what its sender is told."""
    target.held.append(Held(sender.session, message))
    return held_notice(target.name)


def held_notice(name: str) -> Error:
    return Error(code="held", message=f"{name} is reconnecting: your message will be delivered when they are back")


def expired(members: Iterable[Member], now: float) -> list[Member]:
    """The reconnecting members whose grace has ended."""
    return [member for member in members if member.away_until is not None and member.away_until <= now]


def bounced(member: Member, why: str) -> Iterator[tuple[int, Error]]:
    """For each private message that waited in vain for `member`: the session that sent it and what it is told
    (`why` it was not delivered). They wait no more."""
    held, member.held = member.held, []
    for waiting in held:
        yield waiting.sender, undelivered(why, waiting.message)


def undelivered(why: str, message: Private) -> Error:
    """What the sender of a private message that waited in vain is told."""
    return Error(code="not_delivered", message=f'{why}: your message "{render.preview(message.text)}" was not '
                                               "delivered")
