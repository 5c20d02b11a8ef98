"""The room on several servers (--cluster): every change of the room is decided and numbered by the engine (Redis),
from the connection's own thread and outside the room's lock; what the stream says is delivered to this server's
own members, into Recent and into the history file, in the stream's order (docs/design.md, "The flow of a message").
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
from collections.abc import Callable

from ... import names, render
from ...commands import Command, Kind
from ...protocol import Error, Event, Joined, Left, Message, Private, Reconnecting, Renamed, Welcome
from .. import grace
from ..config import Config
from ..history import History, KEPT_GAPS, token_hash
from ..member import Codec, Member
from ..outbox import Feed, Outbox
from ..room import Effects, Room, lookalike, room_full, same_name, shutting_down, taken, unknown_user
from .engine import Engine
from .records import (
    Bounced, Claimed, ClusterUnavailable, Gap, NameRefused, NotMember, Published, Record, Seat, Undeliverable,
)
from .worker import Worker

log = logging.getLogger("chatroom.server")

THROUGH_REDIS = (Kind.SAY, Kind.ME, Kind.MSG, Kind.NICK)  # the commands the cluster numbers (Room.waits)
SEEN_WAIT = 5.0  # seconds a join or a rename waits for its own event to come back from the stream
UNSURE_KEPT = 1000  # refused lines remembered, in case Redis ran them before its answer was too late
UNAVAILABLE = "the room's servers cannot reach their Redis right now"


def _refusal(refused: NameRefused, shown: str, max_members: int) -> names.NameProblem:
    """The cluster's no to a name, worded as a single server words it."""
    if refused.code == "name_taken":
        return taken(shown)
    if refused.code == "name_lookalike":
        return lookalike(shown, refused.holder)
    if refused.code == "name_reserved":
        return grace.reserved_for(refused.holder or shown, refused.wait)
    if refused.code == "room_full":
        return room_full(max_members)
    return names.NameProblem(refused.code, f'the username "{shown}" cannot be taken ({refused.code})')


class Departures(Worker):
    """The leaves the room asks for under its lock (a member's connection ended, however), told to Redis in their
    order from this thread: a leave waits for the network, never under the lock nor in the reader."""
    failure = "the cluster's departures thread failed"

    def __init__(self, engine: Engine, on_failure: Callable[[BaseException], None]) -> None:
        super().__init__("cluster departures", on_failure)
        self.engine = engine
        self._queue: queue.SimpleQueue[tuple[Seat, str, bool] | None] = queue.SimpleQueue()

    def put(self, seat: Seat, reason: str, keep: bool) -> None:
        self._queue.put((seat, reason, keep))

    def run(self) -> None:
        while (leave := self._queue.get()) is not None:
            self.engine.leave(*leave)  # Redis away: the engine's keeper makes it when Redis is back

    def close(self) -> None:
        """The leaves asked for so far are made (or left to the engine), then the thread ends."""
        self._queue.put(None)
        self.stop()


class ClusterRoom(Room):
    """The room's memory and delivery as a single server has them, for its own members; the names, the numbering
    and everyone's presence come from the cluster. `start` joins the cluster and follows the room's stream."""

    def __init__(self, config: Config, history: History, engine: Engine) -> None:
        super().__init__(config, history)
        self._members.clear()  # names kept across a restart: Redis keeps them for the whole cluster
        self.engine = engine
        # What the history file stores up to (not the ids it reserved): the stream is followed from there.
        self.floor = max((seq for event in history.loaded if isinstance(seq := getattr(event, "seq", None), int)),
                         default=0)
        self._seq = self.floor
        self._roster: dict[str, tuple[str, bool]] = {}  # everyone in the room across servers: key -> (name, away)
        self._roster_at = 0  # the roster is the room at this id: older events do not change it
        # This server's members' seats, and the id of the join that gave each its seat.
        self._seats: dict[Member, tuple[Seat, int]] = {}
        self._gaps: list[tuple[int, int]] = []  # ids that hold no event this server could have (records.Gap)
        # Notified when delivered events moved `_seq` on; on the room's lock, so that a newcomer is added in the same
        # hold of the lock as it finds its join delivered, and misses nothing delivered in between.
        self._progress = threading.Condition(self.lock)
        self._apply: Callable[[Effects], None] = lambda effects: None
        self._departures: Departures | None = None
        self._attempts = itertools.count(1)  # each line's reference (`ref`) in Redis, as this server sent it
        # Lines whose senders were told cluster_unavailable, by reference: Redis may have run one and answered too
        # late (a pause between the two); if it comes back from the stream, its sender is told (in order).
        self._unsure: dict[str, Member] = {}

    # --- the cluster's side ---------------------------------------------------------------------------------

    def start(self, apply: Callable[[Effects], None], on_failure: Callable[[BaseException], None]) -> None:
        """Join the cluster (ClusterError says why not) and follow the room's stream; `apply` performs what the
        engine's threads leave to do, `on_failure` stops the server."""
        self._apply = apply
        snapshot = self.engine.start(self._swept, on_failure)
        with self.lock:
            self.epoch = snapshot.epoch  # the cluster's ids, the same on every server: a resume may go anywhere
            self._roster = {names.key(name): (name, away) for name, away in snapshot.members}
            self._roster_at = snapshot.seq
            # A counter below the file's ids: the file is another room's (without a counter, numbering starts
            # above the file's ids).
            foreign = 0 < snapshot.seq < self.floor
            after = self._seq = snapshot.seq if foreign else self.floor
        if foreign:
            log.warning("the history file %s holds ids above the cluster's (%d > %d): it is another room's; the "
                        "cluster's events are stored among them", self.history.path, self.floor, snapshot.seq)
        self._departures = Departures(self.engine, on_failure)
        self._departures.start()
        self.engine.follow(after, self._deliver)

    def close(self) -> None:
        """Leave the cluster (this server's members become reconnecting, for another server), then the file."""
        if self._departures is not None:
            self._departures.close()
        self.engine.stop()
        super().close()

    def _deliver(self, records: list[Record]) -> None:
        """The stream's records, in order (the engine's reader thread): into this server's outboxes, Recent, History."""
        with self._changing() as effects:
            for record in records:
                self._record(record)
            self._progress.notify_all()
        self._apply(effects)

    def _record(self, record: Record) -> None:
        if isinstance(record, Gap):
            if record.before - record.after > 1:
                self._gaps = [*self._gaps, (record.after + 1, record.before - 1)][-KEPT_GAPS:]
            if record.epoch:  # a new numbering (Redis had none yet, or lost its data): the ids still only grow
                self.epoch = record.epoch
                if record.before - 1 > self._roster_at:  # after the snapshot: the claims made anew fill it again
                    self._roster.clear()
            self._seq = max(self._seq, record.before - 1)
        elif isinstance(record, Bounced):
            sender = self._here(record.private.sender)
            if sender is not None:
                self._send(sender, grace.undelivered(f"{record.private.to} did not come back in time", record.private))
        elif isinstance(record, Published):
            event = record.event
            seq = getattr(event, "seq", 0)
            self._seq = max(self._seq, seq)
            if isinstance(event, Private):
                self._private(event, record.held)
            else:
                if seq > self._roster_at:
                    self._roster_change(event)
                self._public(event)
            if record.ref and record.origin == self.engine.server_id:
                self._sent_after_all(record.ref, event)

    def _roster_change(self, event: Event) -> None:
        if isinstance(event, Joined):
            self._roster[names.key(event.name)] = (event.name, False)
            old = self._members.get(names.key(event.name))
            if old is not None and self._older(old, event.seq):  # its seat was taken up by a resume (anywhere)
                assert self._effects is not None
                self._take_over(old, self._effects)
        elif isinstance(event, Renamed):
            _, away = self._roster.pop(names.key(event.old), (event.old, False))
            self._roster[names.key(event.new)] = (event.new, away)
            if (member := self._members.get(names.key(event.old))) is not None:
                self._rekey(member, event.new)
        elif isinstance(event, (Left, Reconnecting)):
            if isinstance(event, Left):
                self._roster.pop(names.key(event.name), None)
            else:
                self._roster[names.key(event.name)] = (event.name, True)
            member = self._here(event.name)
            if member is not None and self._older(member, event.seq):  # swept while its connection lives
                self._end(member, "lost")

    def _private(self, message: Private, held: bool) -> None:
        """A private message reaches its sender and its recipient, wherever each is; held, only its sender now."""
        sender, recipient = self._here(message.sender), self._here(message.to)
        if recipient is not None and not held:
            self._send(recipient, message)
        if sender is not None and sender is not recipient:
            self._send(sender, message)
        if sender is not None and held:
            self._send(sender, grace.held_notice(message.to))

    def _sent_after_all(self, ref: str, event: Event) -> None:
        """A line whose sender was told it was not sent reached the room all the same: its sender hears so."""
        sender = self._unsure.pop(ref, None)
        if sender is not None and not sender.gone and isinstance(event, (Message, Private)):
            self._send(sender, Error(code="sent_after_all", message=f'your message "{render.preview(event.text)}" '
                                     "reached the room after all (Redis answered too late)"))

    def _swept(self) -> None:
        """This server was taken for dead: its members' seats are gone, so their connections end (`lost`), and
        their clients resume, here or on another server."""
        with self._changing() as effects:
            for member in list(self._members.values()):
                self._end(member, "lost")
        self._apply(effects)

    def _end(self, member: Member, reason: str) -> None:
        """End a member's connection whose seat is no longer its own: nothing to tell Redis."""
        self._seats.pop(member, None)
        self.leave(member, reason)

    def _take_over(self, old: Member, effects: Effects) -> None:
        self._seats.pop(old, None)  # its seat is the newcomer's now
        super()._take_over(old, effects)

    def _older(self, member: Member, seq: int) -> bool:
        """Whether the member had its seat before the event `seq` (a newer one is not what that event speaks of)."""
        return self._seats.get(member, (None, 0))[1] < seq

    def _wait_for(self, seq: int) -> bool:
        """Wait (a connection's own thread: the lock is released while it waits) until the stream has delivered
        the event `seq` here; False if it did not within SEEN_WAIT."""
        with self._progress:
            return self._progress.wait_for(lambda: self._seq >= seq, SEEN_WAIT)

    # --- what the room is asked -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self._roster.values()]

    def away(self) -> list[str]:
        with self.lock:
            return [name for name, away in self._roster.values() if away]

    def join(self, name: str, codec: Codec, outbox: Outbox, resumable: bool = False, token: str | None = None,
             after: int | None = None, address: str = "", epoch: str | None = None) -> tuple[Member, Effects]:
        """The name is claimed across the cluster (which appends the join) from this connection's thread; the
        newcomer then gets its welcome and what it should see first once this server has delivered its join."""
        shown = names.check(name)
        with self.lock:
            if self._closed:
                raise shutting_down()
            if not token:
                self._check_address(address)
        new_token = secrets.token_urlsafe(24) if resumable else ""
        digest = token_hash(new_token) if new_token else ""
        try:
            claimed = self.engine.claim(shown, digest, token_hash(token) if token else "", self.config.max_members)
        except NameRefused as refused:
            raise _refusal(refused, shown, self.config.max_members) from None
        except ClusterUnavailable:
            raise names.NameProblem("cluster_unavailable", f"{UNAVAILABLE}: try again in a moment") from None
        try:
            with self._progress:  # released while it waits; held from the join's delivery to the newcomer's place
                if not self._wait_for(claimed.seq):
                    # Its own join has not come back from Redis: seated now, it would see it and be welcomed
                    # before it.
                    raise names.NameProblem("cluster_unavailable", f"{UNAVAILABLE}: try again in a moment")
                return self._seat(claimed, codec, outbox, (new_token, digest), address, after, epoch)
        except names.NameProblem:
            self._leave_cluster(claimed.seat, "closed", keep=claimed.resumed)
            raise

    def _seat(self, claimed: Claimed, codec: Codec, outbox: Outbox, token: tuple[str, str], address: str,
              after: int | None, epoch: str | None) -> tuple[Member, Effects]:
        """The newcomer's place here, its welcome and what it sees first, in one piece (Room.join's rules);
        `token`: its new resume token and that token's hash."""
        new_token, digest = token
        with self._changing() as effects:
            if self._closed:
                raise shutting_down()
            shown = claimed.seat.name
            member = Member(shown, codec, outbox, digest, address)
            member.resumed = claimed.resumed
            users = [name for name, _ in self._roster.values()]
            welcome = Welcome(name=shown, users=users if member.key in self._roster else [*users, shown],
                              rate=self.config.rate, burst=self.config.burst, token=new_token,
                              away=[name for name, away in self._roster.values() if away and name != shown],
                              resumed=claimed.resumed, seq=self._seq, epoch=self.epoch)
            data = self._first_bytes(codec, outbox, welcome, claimed.held, after, epoch, self._gaps)
            if (old := self._members.get(member.key)) is not None:
                self._take_over(old, effects)
            self._members[member.key] = member
            self._seats[member] = (claimed.seat, claimed.seq)
            self._put(member, data)
            self._feeds.setdefault(codec, Feed()).add(outbox)
            return member, effects

    def leave(self, member: Member, reason: str) -> Effects:
        """The one cleanup hook, as a single server's: this server forgets the member at once, and the cluster
        hears of it from the departures thread (reconnecting, if the ending was not chosen and it can resume)."""
        with self._changing() as effects:
            if not self._disconnect(member, reason, effects):
                return effects
            if self._members.get(member.key) is member:
                del self._members[member.key]
            keep = grace.keeps_name(member, reason, self.config.grace)
            effects.left.append((member, f"{reason}, reconnecting" if keep else reason))
            seated = self._seats.pop(member, None)
            if seated is not None and reason != "shutdown":  # at a shutdown the engine's stop moves them all
                self._leave_cluster(seated[0], reason, keep)
            return effects

    def _leave_cluster(self, seat: Seat, reason: str, keep: bool) -> None:
        if self._departures is not None:
            self._departures.put(seat, reason, keep)

    def waits(self, command: Command) -> bool:
        return command.kind in THROUGH_REDIS

    def perform(self, member: Member, command: Command) -> Effects:
        """A message, a private message or a rename, through Redis (this connection's own thread, no lock held):
        it reaches the room, this member's echo included, when the stream delivers it."""
        with self.lock:
            seated = self._seats.get(member)
        if seated is None or member.gone:
            return Effects()
        seat, ref = seated[0], str(next(self._attempts))
        try:
            if command.kind is Kind.NICK:
                return self._rename(member, seat, command.target)
            if command.kind is Kind.MSG:
                private = Private(seq=0, sender=seat.name, to=command.target, text=command.text)
                try:
                    self.engine.whisper(seat, private, ref)
                except Undeliverable as refused:
                    return self.send(member, unknown_user(command) if refused.code == "unknown_user"
                                     else grace.too_many_held(refused.recipient or command.target))
                return Effects()
            self.engine.publish(seat, Message(seq=0, sender=seat.name, text=command.text,
                                              action=command.kind is Kind.ME), ref)
        except ClusterUnavailable:
            if command.kind is Kind.NICK:
                return self.send(member, Error(code="cluster_unavailable",
                                               message=f"{UNAVAILABLE}: your name was not changed"))
            with self._changing() as effects:
                self._unsure[ref] = member
                if len(self._unsure) > UNSURE_KEPT:
                    del self._unsure[next(iter(self._unsure))]
                if not member.gone:
                    self._send(member, Error(code="cluster_unavailable",
                                             message=f'{UNAVAILABLE}: your message was not sent: "{command.text}"'))
                return effects
        except NotMember:
            with self._changing() as effects:
                self._end(member, "lost")  # its client resumes, and takes its seat up again
                return effects
        return Effects()

    def _rename(self, member: Member, seat: Seat, target: str) -> Effects:
        try:
            new = names.check(target)
        except names.NameProblem as problem:
            return self.send(member, Error(code=problem.code, message=problem.message))
        if new == member.name:
            return self.send(member, same_name(new))
        try:
            renamed, seq = self.engine.rename(seat, new)
        except NameRefused as refused:
            refusal = _refusal(refused, new, self.config.max_members)
            return self.send(member, Error(code=refusal.code, message=refusal.message))
        with self.lock:
            if member in self._seats:
                self._seats[member] = (renamed, self._seats[member][1])
        self._wait_for(seq)  # the next line goes under the new name
        return Effects()

