"""What the cluster's engine hands the room: the records read from the room's stream, a member's seat, and the
engine's refusals. Pure: `Reading` turns stream entries into records without Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...codecs import event_from_dict
from ...protocol import Event, Private, ProtocolError


class ClusterError(Exception):
    """The cluster cannot be used as configured; the message says why and what to do."""


class ClusterUnavailable(ClusterError):
    """Redis did not answer in time, or is unreachable: nothing was published (never part of the room)."""


class NotMember(ClusterError):
    """The seat is no longer this connection's: taken up by a resume elsewhere, or swept as lost."""


@dataclass(frozen=True)
class NameRefused(Exception):
    """A name cannot be claimed (or taken by a rename): `code` is the protocol's (name_taken, name_lookalike,
    name_reserved, room_full); `holder` the name in the way, `wait` the seconds left of its grace."""
    code: str
    holder: str = ""
    wait: float = 0.0


@dataclass(frozen=True)
class Undeliverable(Exception):
    """A private message that was not sent: `code` unknown_user (nobody by that name) or not_delivered (the
    recipient is reconnecting with the most held messages already); `recipient` its name where known."""
    code: str
    recipient: str = ""


@dataclass(frozen=True)
class Seat:
    """A member's place in the cluster's room; later calls for the member prove with `claim` that it is theirs."""
    key: str
    name: str
    claim: str


@dataclass(frozen=True)
class Claimed:
    """A claim that succeeded: the seat, the id of its join event, whether it took up a reconnecting member's
    seat (`resumed`), and then the private messages that were held for it, oldest first."""
    seat: Seat
    seq: int
    resumed: bool
    held: list[Private] = field(default_factory=list)


@dataclass(frozen=True)
class Whispered:
    """A private message numbered `seq`; `to` is the recipient's name as the room knows it; `held`: it waits for
    a recipient who is reconnecting."""
    seq: int
    to: str
    held: bool


@dataclass(frozen=True)
class Snapshot:
    """The room at event id `seq`: its epoch and its members as (name, reconnecting)."""
    seq: int
    epoch: str
    members: list[tuple[str, bool]]


@dataclass(frozen=True)
class Published:
    """A room event as numbered (`event.seq`), by the server `origin`, with its publisher's `ref`. A private
    message with `held` waits for its reconnecting recipient: only its sender gets it now."""
    event: Event
    origin: str
    ref: str = ""
    held: bool = False


@dataclass(frozen=True)
class Bounced:
    """A private message whose recipient did not come back in time (it follows their leave): tell its sender."""
    private: Private


@dataclass(frozen=True)
class Gap:
    """The ids strictly between `after` and `before` hold no event this reader can have. With `epoch`, Redis lost
    its data and numbering went on above every id known (those ids held no event anyone read after `after`);
    without, the stream no longer had them (trimmed, or a private message's text expired) when this reader came."""
    after: int
    before: int
    epoch: str = ""


Record = Published | Bounced | Gap
Entry = tuple[str, dict[str, str]]  # a stream entry as Redis gives it: its id, its fields


def stream_id(seq: int, sub: int = 0) -> str:
    return f"{seq}-{sub}"


class Reading:
    """A reader's position in the stream: turns its entries, in order, into records, and notices the ids it did
    not see. `privates(entries)` lists the ids whose text the caller must fetch before `records`."""

    def __init__(self, after: int) -> None:
        self.last = after  # the last event id (or epoch entry) this reader has passed
        self.position = stream_id(after, 0)  # where the next read starts (after bounces too)
        self.unreadable: list[str] = []  # why entries were left out, for the caller's log

    @staticmethod
    def privates(entries: Iterable[Entry]) -> list[int]:
        """The ids of the private messages among the entries (sent, held, or bounced)."""
        return [int(fields["s"]) if "b" in fields else int(entry_id.split("-", 1)[0])
                for entry_id, fields in entries if "p" in fields or "b" in fields]

    def records(self, entries: Iterable[Entry], texts: dict[int, str | None]) -> list[Record]:
        found: list[Record] = []
        for entry_id, fields in entries:
            self.position = entry_id
            seq_text, _, sub = entry_id.partition("-")
            seq = int(seq_text)
            if "epoch" in fields:
                found.append(Gap(self.last, seq + 1, fields["epoch"]))
                self.last = seq
            elif "b" in fields:
                bounced = self._event(entry_id, fields["b"], {"text": texts.get(int(fields["s"])) or ""})
                if isinstance(bounced, Private):
                    found.append(Bounced(bounced))
            elif sub == "0" and "e" in fields:
                if seq > self.last + 1:
                    found.append(Gap(self.last, seq))
                self.last = seq
                extra: dict[str, object] = {"seq": seq}
                if "p" in fields:
                    text = texts.get(seq)
                    if text is None:
                        found.append(Gap(seq - 1, seq + 1))
                        continue
                    extra["text"] = text
                event = self._event(entry_id, fields["e"], extra)
                if event is not None:
                    found.append(Published(event, fields.get("o", ""), fields.get("r", ""), fields.get("p") == "held"))
        return found

    def _event(self, entry_id: str, body: str, extra: dict[str, object]) -> Event | None:
        """The event an entry holds (with the fields the entry keeps apart); None, noted, if unreadable. An event
        type this version does not know (a newer server's) is left out quietly, as in the history file."""
        try:
            return completed(body, extra)
        except ProtocolError as exc:
            self.unreadable.append(f"{entry_id}: {exc}")
            return None


def completed(body: str, extra: dict[str, object]) -> Event | None:
    """An event from its JSON and the fields kept apart from it (its id, a private message's text)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {str(exc)[:80]}") from None
    if isinstance(data, dict):
        data.update(extra)
    return event_from_dict(data)
