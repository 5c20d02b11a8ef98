"""The cluster's engine: what a room on several servers asks of Redis. Claims, renames and leaves of names, the
numbering of every event, the stream the room follows, the heartbeat and the sweep (docs/design.md, "One room
on several servers").

Every call may block on the network, within `timeout`: never call one under the room's lock. A call that
returns has written; one that raises `ClusterUnavailable` has written nothing.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import names
from ...protocol import Event, Private
from ..grace import HELD_PRIVATES
from .follower import Follower
from .keeper import Keeper
from .link import UNREACHABLE, Link
from .records import (
    Claimed, ClusterError, ClusterUnavailable, NameRefused, NotMember, Reading, Record, Seat, Snapshot, Undeliverable,
    Whispered, completed, stream_id,
)

ALIVE = 10.0  # seconds a server's heartbeat lasts: after that, its members are reconnecting
BEAT_EVERY = 1.0  # seconds between heartbeats (and sweeps)
TRIM = 5000  # events the stream keeps (about: Redis trims whole nodes)
PRIVATE_EXTRA = 60.0  # seconds a private message's text is kept beyond the grace (readers fetch it at once)
SWEEP_MOST = 500  # ended graces settled per sweep (the rest at the next)


def _payload(event: Event, *without: str) -> str:
    """An event as the stream keeps it: its JSON without the fields Redis sets or keeps apart."""
    fields = {name: value for name, value in event.to_dict().items() if name not in ("seq", *without)}
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


class Engine:
    """One server's part in the cluster. `start` joins it (checks Redis, first heartbeat, the keeper thread),
    `follow` starts the reader, `stop` leaves: this server's members are then reconnecting, for another server."""

    def __init__(self, url: str, *, room: str = "room", grace: float = 60.0, timeout: float = 1.0,
                 trim: int = TRIM, alive: float = ALIVE, beat_every: float = BEAT_EVERY, floor: int = 0,
                 check_persistence: bool = True) -> None:
        self.server_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.link = Link(url, room, self.server_id, timeout=timeout, trim=trim, grace=grace)
        self.link.saw(floor)
        self.alive = alive
        self.beat_every = beat_every
        self.check_persistence = check_persistence
        self.private_ttl = int((grace + PRIVATE_EXTRA) * 1000)
        self._claims = itertools.count(1)
        self._keeper: Keeper | None = None
        self._follower: Follower | None = None
        self._on_failure: Callable[[BaseException], None] = lambda exc: None
        self._stopped = False
        self._lock = threading.Lock()  # for the leaves that wait for Redis
        self._leaving: list[tuple[Seat, str, bool]] = []

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self, on_swept: Callable[[], None], on_failure: Callable[[BaseException], None]) -> Snapshot:
        """Join the cluster: check Redis, the first heartbeat, the keeper thread; the room as it is now.

        `on_swept` is called (from the keeper's thread) when this server finds it was taken for dead: its
        members' seats are no longer theirs, and their connections should end so that their clients resume.
        `on_failure` when a thread of the engine meets the unexpected: the server should stop. A start that fails
        (ClusterError, saying why) has closed what it opened."""
        self._on_failure = on_failure
        try:
            self.link.check(self.check_persistence)
            self.beat(register=True)
            now = self.snapshot()
        except ClusterError:
            self._stopped = True
            self.link.close()
            raise
        self._keeper = Keeper(self.beat_every, self.beat, self.sweep, on_swept, on_failure)
        self._keeper.start()
        return now

    def follow(self, after: int, deliver: Callable[[list[Record]], None]) -> None:
        """Start the reader: every record after the id `after`, in order, to `deliver` (from the reader's thread,
        in batches; no lock of the engine held)."""
        assert self._follower is None, "one reader per engine"
        self._follower = Follower(self.link, after, deliver, self._on_failure)
        self._follower.start()

    def stop(self) -> None:
        """Leave the cluster: the threads end, this server's members are reconnecting (or leave, without a
        resume token), the connections close. Redis unreachable: the others sweep them in `alive` seconds."""
        if self._stopped:
            return
        self._stopped = True
        threads = [thread for thread in (self._keeper, self._follower) if thread is not None]
        for thread in threads:
            thread.halt()
        for thread in threads:
            thread.stop()
        try:
            self._leave_waiting()
            self.link.call("sweep", [self.server_id, "shutdown", SWEEP_MOST], deadline=False)
        except ClusterUnavailable:
            pass  # said once by the link
        self.link.close()

    def beat(self, register: bool) -> bool:
        """The heartbeat; False if this server is not one of the cluster's (with `register`, it joins)."""
        answer = self.link.timed("heartbeat", [int(register), int(self.alive * 1000)])
        return bool(answer[0])

    def sweep(self) -> int:
        """The leaves that waited for Redis first; then members of dead servers become reconnecting, and ended
        graces leave (lost): how many changed."""
        self._leave_waiting()
        return int(self.link.call("sweep", ["", "lost", SWEEP_MOST], deadline=False))

    def _leave_waiting(self) -> None:
        """The leaves that Redis could not take when they were asked, in their order."""
        with self._lock:
            waiting, self._leaving = self._leaving, []
        for n, (seat, reason, keep) in enumerate(waiting):
            try:
                self._leave(seat, reason, keep)
            except ClusterUnavailable:
                with self._lock:
                    self._leaving[:0] = waiting[n:]
                raise

    # --- reading --------------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The room at one id: its members then. Follow from `seq` to keep the picture."""
        seq, epoch, entries = self.link.call("snapshot", [], deadline=False)
        members = [(entry["n"], entry["st"] == "away") for entry in map(json.loads, entries)]
        self.link.saw(int(seq))
        return Snapshot(int(seq), epoch.partition(" ")[0], members)

    def recent(self, after: int, count: int = TRIM) -> list[Record]:
        """At most `count` records after the id `after`, as the stream has them now (for a resume's catch-up)."""
        asked = time.monotonic()
        try:
            entries = self.link.entries(self.link.redis, stream_id(after), count)
            texts = self.link.texts(self.link.redis, entries)
        except UNREACHABLE as exc:
            raise self.link.availability.failed(exc) from None
        self.link.availability.ok(asked)
        return Reading(after).records(entries, texts)

    # --- names ----------------------------------------------------------------------------------------------

    def claim(self, name: str, token_hash: str = "", presented: str = "", max_members: int = 100) -> Claimed:
        """Take the name `name` (a valid display form, names.check) for a member of this server, and append its
        join. With `presented`, the hash of a resume token: the seat of that name's member, if the token is
        theirs, with the private messages held for it. `token_hash`: the new token's hash ("" for none)."""
        key, skeleton = names.key(name), names.skeleton(name)
        claim = f"{self.server_id}/{next(self._claims)}"
        answer = self.link.call("claim", [key, skeleton, name, claim, token_hash, presented, max_members])
        status = answer[0]
        if status == "unregistered":
            raise ClusterUnavailable("this server is not one of the cluster's at the moment (it joins again "
                                     f"within {self.beat_every:g} s)")
        if status in ("joined", "resumed"):
            seq = int(answer[1])
            self.link.saw(seq)
            kept = zip(answer[3], answer[4]) if status == "resumed" else []
            held = [event for event in (completed(body, {"text": text}) for body, text in kept)
                    if isinstance(event, Private)]
            return Claimed(Seat(key, answer[2], claim), seq, status == "resumed", held)
        raise NameRefused(status, *answer[1:2], *[int(ms) / 1000 for ms in answer[2:3]])

    def rename(self, seat: Seat, name: str) -> tuple[Seat, int]:
        """Give the seat the name `name` (a valid display form) and append the rename: the new seat and its id."""
        key, skeleton = names.key(name), names.skeleton(name)
        answer = self._seated(self.link.call("rename", [seat.key, seat.claim, key, skeleton, name]))
        if answer[0] != "renamed":
            raise NameRefused(answer[0], answer[1])
        return Seat(key, name, seat.claim), int(answer[1])

    def leave(self, seat: Seat, reason: str, keep: bool) -> int | None:
        """The member leaves (`reason`), or with `keep` is reconnecting for the grace if it has a resume token:
        the id of what was appended; None if the seat was no longer this member's (nothing to say), or if Redis
        is unreachable: then the leave waits, and the keeper makes it as soon as Redis answers again (a seat
        must never outlive its connection)."""
        try:
            return self._leave(seat, reason, keep)
        except ClusterUnavailable:
            with self._lock:
                self._leaving.append((seat, reason, keep))
            return None

    def _leave(self, seat: Seat, reason: str, keep: bool) -> int | None:
        answer = self.link.call("leave", [seat.key, seat.claim, reason, int(keep)])
        return None if answer[0] == "gone" else self._seen(answer[1])

    # --- events ---------------------------------------------------------------------------------------------

    def publish(self, seat: Seat, event: Event, ref: str = "") -> int:
        """Number a public event of the seat's member (a message) and append it: its id."""
        answer = self._seated(self.link.call("publish", [seat.key, seat.claim, _payload(event)], ref=ref))
        return self._seen(answer[1])

    def whisper(self, seat: Seat, private: Private, ref: str = "") -> Whispered:
        """Number a private message and append it; held for a recipient who is reconnecting, or Undeliverable."""
        answer = self._seated(self.link.call(
            "whisper", [seat.key, seat.claim, names.key(private.to), _payload(private, "to", "text"), private.text,
                        self.private_ttl, HELD_PRIVATES], ref=ref))
        if answer[0] not in ("sent", "held"):
            raise Undeliverable(answer[0], *answer[1:2])
        return Whispered(self._seen(answer[1]), answer[2], answer[0] == "held")

    def _seated(self, answer: Any) -> Any:
        if answer[0] == "not_member":
            raise NotMember("this member's seat in the cluster is no longer theirs")
        return answer

    def _seen(self, seq: Any) -> int:
        self.link.saw(int(seq))
        return int(seq)
