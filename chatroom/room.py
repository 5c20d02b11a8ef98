"""Who is here and where a message goes: join, leave (the cleanup hook), say, whisper, list, history.

Thread-safe and socket-free: each member has a bounded outbox of encoded bytes
that its connection drains, and a `disconnect` callback the room calls to drop it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from . import commands, names
from .protocol import (
    Bye, Error, Event, Help, Joined, Left, Message, Private, Renamed, Shutdown, Users, Welcome,
)

DEFAULT_MAX_MEMBERS = 100
DEFAULT_HISTORY = 50
DEFAULT_OUTBOX_LIMIT = 256 * 1024


class Codec(Protocol):
    def __call__(self, event: Event, me: str) -> bytes:
        """The bytes one member receives for an event.

        For room-wide events `me` is "", so one encoding serves every member of that codec.
        """


class Outbox:
    """A member's queue of encoded events, bounded in bytes.

    `on_ready` is called when the outbox goes from empty to not empty, and when it is closed, so one
    sender can drain every outbox without a thread for each. Outboxes share their room's lock: a broadcast
    fills them all under one acquisition, and the sender empties many under one.
    """

    def __init__(self, limit: int = DEFAULT_OUTBOX_LIMIT, on_ready: Callable[[], None] = lambda: None,
                 lock: threading.RLock | None = None) -> None:
        self.limit = limit
        self.on_ready = on_ready
        self.lock = lock or threading.RLock()
        self.owner: object = None  # whatever the I/O layer attaches (the server's Link)
        self._chunks: list[bytes] = []
        self._size = 0
        self._closed = False

    def put(self, data: bytes) -> bool:
        """Queue data; False if that would overflow the limit (the member is too slow)."""
        with self.lock:
            too_slow, ready = Outbox.put_all([self], data)
        if ready:
            self.on_ready()
        return not too_slow

    @staticmethod
    def put_all(boxes: Iterable[Outbox], data: bytes) -> tuple[list[Outbox], list[Outbox]]:
        """Queue data in every box, the caller holding their lock: (the boxes too slow, the boxes now ready).

        The delivery loop of every broadcast, so it touches the fields directly.
        """
        size = len(data)
        too_slow, ready = [], []
        for box in boxes:
            if box._closed:
                continue
            if box._size and box._size + size > box.limit:
                too_slow.append(box)
                continue
            box._chunks.append(data)
            box._size += size
            if box._size == size:
                ready.append(box)
        return too_slow, ready

    def close(self, flush: bool = True) -> None:
        """No more puts; what is queued is still sent unless not `flush`."""
        with self.lock:
            self._closed = True
            if not flush:
                self._chunks.clear()
                self._size = 0
        self.on_ready()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return self._size

    def take(self) -> bytes:
        """Everything queued, as one send's worth (b"" if nothing)."""
        with self.lock:
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._size = 0
            return data


class Member:
    def __init__(self, name: str, codec: Codec, outbox: Outbox, disconnect: Callable[[], None]) -> None:
        self.name = name
        self.key = names.key(name)
        self.skeleton = names.skeleton(name)
        self.codec = codec
        self.outbox = outbox
        self.disconnect = disconnect
        self.gone = False

    def __repr__(self) -> str:
        return f"Member({self.name!r})"


class Room:
    def __init__(
        self,
        max_members: int = DEFAULT_MAX_MEMBERS,
        history: int = DEFAULT_HISTORY,
        on_leave: Callable[[Member, str], None] | None = None,
        on_join: Callable[[Member], None] | None = None,
    ) -> None:
        self.max_members = max_members
        self.rate, self.burst = 0.0, 0  # the server's message limit, announced in the welcome
        self._lock = threading.RLock()
        # Called with the outboxes a broadcast made ready; by default each one's own on_ready.
        self.on_ready_many: Callable[[list[Outbox]], None] = self._notify_each
        self._members: dict[str, Member] = {}  # by name key, in join order
        self._groups: dict[Codec, list[Outbox]] | None = None  # see _audience
        self._history: deque[Message] = deque(maxlen=history)
        self._seq = 0
        self._closed = False
        self._on_leave = on_leave
        self._on_join = on_join
        self._handlers: dict[str, Callable[[Member, commands.Command], None]] = {
            "say": self._say, "me": self._act, "msg": self._whisper, "users": self._users,
            "nick": self._nick, "help": self._help, "quit": self._quit, "pong": self._pong,
        }
        assert set(self._handlers) == {spec.kind for spec in commands.TABLE}

    @staticmethod
    def _notify_each(boxes: list[Outbox]) -> None:
        for box in boxes:
            box.on_ready()

    def new_outbox(self, limit: int = DEFAULT_OUTBOX_LIMIT, on_ready: Callable[[], None] = lambda: None) -> Outbox:
        """An outbox for a connection that will join this room (it shares the room's lock)."""
        return Outbox(limit, on_ready, lock=self._lock)

    # --- membership -----------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return [member.name for member in self._members.values()]

    def _check_free(self, shown: str, me: Member | None = None) -> None:
        key, look = names.key(shown), names.skeleton(shown)
        for other in self._members.values():
            if other is me:
                continue
            if other.key == key:
                raise names.NameProblem("name_taken", f'the username "{shown}" is taken')
            if other.skeleton == look:
                raise names.NameProblem(
                    "name_lookalike", f'the username "{shown}" looks like "{other.name}", who is here')

    def check_name(self, name: str) -> str:
        """The display form of a name that could join now, or NameProblem saying why not."""
        shown = names.check(name)
        with self._lock:
            if self._closed:
                raise names.NameProblem("shutting_down", "the server is shutting down")
            self._check_free(shown)
            if len(self._members) >= self.max_members:
                raise names.NameProblem(
                    "room_full", f"the room is full ({self.max_members} users): try again later")
        return shown

    def join(self, name: str, codec: Codec, outbox: Outbox, disconnect: Callable[[], None]) -> Member:
        """Add a member, or raise NameProblem saying why not."""
        with self._lock:
            shown = self.check_name(name)
            member = Member(shown, codec, outbox, disconnect)
            self._members[member.key] = member
            self._groups = None
            self._send(member, Welcome(name=shown, users=self.names(), rate=self.rate, burst=self.burst))
            for message in self._history:
                self._send(member, dataclasses.replace(message, earlier=True))
            self._broadcast(Joined(seq=self._next_seq(), name=shown), skip=member)
            if self._on_join:
                self._on_join(member)
            return member

    def leave(self, member: Member, reason: str) -> bool:
        """The disconnect cleanup hook: idempotent, True only the first time for a member."""
        with self._lock:
            if member.gone:
                return False
            member.gone = True
            if self._members.get(member.key) is member:
                del self._members[member.key]
                self._groups = None
            if reason not in ("slow", "shutdown"):
                self._send(member, Bye(reason=reason))
            member.outbox.close(flush=reason != "slow")
            if not self._closed:
                self._broadcast(Left(seq=self._next_seq(), name=member.name, reason=reason))
            if self._on_leave:
                self._on_leave(member, reason)
            return True

    def shutdown(self) -> None:
        """Tell everybody the server is going, then let each of them go."""
        with self._lock:
            self._closed = True
            self._broadcast(Shutdown())
            for member in list(self._members.values()):
                self.leave(member, "shutdown")

    # --- commands -------------------------------------------------------

    def handle(self, member: Member, command: commands.Command | commands.CommandError) -> None:
        if isinstance(command, commands.CommandError):
            self.error(member, command.code, command.message)
            return
        with self._lock:
            if not member.gone:
                self._handlers[command.kind](member, command)

    def error(self, member: Member, code: str, message: str) -> None:
        self.send(member, Error(code=code, message=message))

    def send(self, member: Member, event: Event) -> None:
        """One event for one member, in order with the room's."""
        with self._lock:
            self._send(member, event)

    def _say(self, member: Member, command: commands.Command, action: bool = False) -> None:
        message = Message(seq=self._next_seq(), sender=member.name, text=command.text, action=action)
        self._history.append(message)
        self._broadcast(message)

    def _act(self, member: Member, command: commands.Command) -> None:
        self._say(member, command, action=True)

    def _whisper(self, member: Member, command: commands.Command) -> None:
        target = self._members.get(names.key(command.target))
        if target is None:
            self._send(member, Error(
                code="unknown_user",
                message=f'no user named "{command.target}" is here: your message was not sent'))
            return
        message = Private(seq=self._next_seq(), sender=member.name, to=target.name, text=command.text)
        self._send(target, message)
        if target is not member:
            self._send(member, message)

    def _users(self, member: Member, command: commands.Command) -> None:
        self._send(member, Users(users=self.names(), you=member.name))

    def _help(self, member: Member, command: commands.Command) -> None:
        self._send(member, Help(lines=commands.help_lines()))

    def _nick(self, member: Member, command: commands.Command) -> None:
        try:
            new = names.check(command.target)
            self._check_free(new, me=member)
        except names.NameProblem as problem:
            self._send(member, Error(code=problem.code, message=problem.message))
            return
        new_key = names.key(new)
        old = member.name
        member.name, member.key, member.skeleton = new, new_key, names.skeleton(new)
        self._members = {(new_key if m is member else k): m for k, m in self._members.items()}
        self._broadcast(Renamed(seq=self._next_seq(), old=old, new=new))

    def _quit(self, member: Member, command: commands.Command) -> None:
        self.leave(member, "quit")

    def _pong(self, member: Member, command: commands.Command) -> None:
        pass  # the line itself showed the connection is alive

    # --- delivery -------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _send(self, member: Member, event: Event) -> None:
        if not member.outbox.put(member.codec(event, member.name)):
            self._drop([member])

    def _audience(self) -> dict[Codec, list[Outbox]]:
        """Every member's outbox, grouped by codec (one encoding per group); kept until members change."""
        if self._groups is None:
            self._groups = {}
            for member in self._members.values():
                self._groups.setdefault(member.codec, []).append(member.outbox)
        return self._groups

    def _broadcast(self, event: Event, skip: Member | None = None) -> None:
        """Queue an event for every member, under the lock: one order for all."""
        too_slow: list[Outbox] = []
        ready: list[Outbox] = []
        for codec, boxes in self._audience().items():
            if skip is not None:
                boxes = [box for box in boxes if box is not skip.outbox]
            slow_boxes, ready_boxes = Outbox.put_all(boxes, codec(event, ""))
            too_slow += slow_boxes
            ready += ready_boxes
        if ready:
            self.on_ready_many(ready)
        if too_slow:
            self._drop([member for member in self._members.values() if member.outbox in too_slow])

    def _drop(self, members: list[Member]) -> None:
        # Called after a delivery loop, never inside one, so everyone keeps the same order.
        for member in members:
            member.disconnect()
            self.leave(member, "slow")
