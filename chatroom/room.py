"""Who is here and where a message goes: join, leave (the cleanup hook), say, whisper, list, history.

Socket-free. Every public method changes the room under its lock and returns `Effects`: the outboxes
to hand to the sender and the members who left. The caller performs them after the lock is released,
so nothing that can block (a socket, a log, a callback) ever runs while the room is locked.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from . import commands, names
from .config import Config
from .protocol import (
    Bye, Error, Event, Help, Joined, Left, Message, Private, Renamed, Shutdown, Users, Welcome,
)
from .sender import Outbox


class Codec(Protocol):
    def __call__(self, event: Event, me: str) -> bytes:
        """The bytes one member receives for an event.

        For room-wide events `me` is "", so one encoding serves every member of that codec.
        """


class Member:
    def __init__(self, name: str, codec: Codec, outbox: Outbox) -> None:
        self.name = name
        self.key = names.key(name)
        self.skeleton = names.skeleton(name)
        self.codec = codec
        self.outbox = outbox
        self.gone = False

    def __repr__(self) -> str:
        return f"Member({self.name!r})"


@dataclass
class Effects:
    """What a room call leaves to its caller, to do once the room's lock is released."""
    ready: list[Outbox] = field(default_factory=list)  # outboxes for the sender
    left: list[tuple[Member, str]] = field(default_factory=list)  # members who left, and why


def _history_bytes(message: Message) -> int:
    """An upper bound of a history message's size on the wire (JSON escapes '\\' and '"')."""
    return len(message.text.encode()) + message.text.count("\\") + message.text.count('"') + 160


class Room:
    def __init__(self, config: Config = Config()) -> None:
        self.config = config
        self.lock = threading.RLock()  # the outboxes of its members share it
        self._members: dict[str, Member] = {}  # by name key, in join order
        self._groups: dict[Codec, list[Outbox]] | None = None  # see _audience
        self._history: deque[Message] = deque()
        self._history_size = 0
        self._seq = 0
        self._closed = False
        self._effects: Effects | None = None
        self._handlers: dict[str, Callable[[Member, commands.Command], None]] = {
            "say": self._say, "me": self._act, "msg": self._whisper, "users": self._users,
            "nick": self._nick, "help": self._help, "quit": self._quit, "pong": self._pong,
        }
        assert set(self._handlers) == {spec.kind for spec in commands.TABLE}

    @contextmanager
    def _changing(self) -> Iterator[Effects]:
        """Hold the lock; the Effects collected by this call and the calls it makes."""
        with self.lock:
            outer = self._effects
            effects = self._effects = outer or Effects()
            try:
                yield effects
            finally:
                self._effects = outer

    def new_outbox(self) -> Outbox:
        """An outbox for a connection that may join this room (it shares the room's lock)."""
        return Outbox(self.lock, self.config)

    # --- membership -----------------------------------------------------

    def names(self) -> list[str]:
        with self.lock:
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
        with self.lock:
            if self._closed:
                raise names.NameProblem("shutting_down", "the server is shutting down")
            self._check_free(shown)
            if len(self._members) >= self.config.max_members:
                raise names.NameProblem(
                    "room_full", f"the room is full ({self.config.max_members} users): try again later")
        return shown

    def join(self, name: str, codec: Codec, outbox: Outbox) -> tuple[Member, Effects]:
        """Add a member with its welcome and the history, or raise NameProblem saying why not.

        All or nothing: the newcomer's first bytes are queued in one piece before anyone hears of it.
        """
        with self._changing() as effects:
            shown = self.check_name(name)
            users = [*self.names(), shown]
            welcome = codec(Welcome(name=shown, users=users, rate=self.config.rate, burst=self.config.burst),
                            shown)
            earlier = [codec(dataclasses.replace(message, earlier=True), shown) for message in self._history]
            first = b"".join([welcome, *earlier])
            if outbox.size + len(first) > outbox.cap:
                raise names.NameProblem("too_much_history", "the room's history does not fit your connection")
            member = Member(shown, codec, outbox)
            self._members[member.key] = member
            self._groups = None
            self._put([member], first)
            self._broadcast(Joined(seq=self._next_seq(), name=shown), skip=member)
            return member, effects

    def leave(self, member: Member, reason: str) -> Effects:
        """The disconnect cleanup hook: idempotent; only the first call for a member has effects."""
        with self._changing() as effects:
            if member.gone:
                return effects
            member.gone = True
            del self._members[member.key]
            self._groups = None
            goodbye = b"" if reason == "shutdown" else member.codec(Bye(reason=reason), member.name)
            member.outbox.close(flush=reason != "slow", last=goodbye)
            effects.ready.append(member.outbox)
            effects.left.append((member, reason))
            if not self._closed:
                self._broadcast(Left(seq=self._next_seq(), name=member.name, reason=reason))
            return effects

    def drop(self, outbox: Outbox, reason: str) -> Effects:
        """End the connection an outbox belongs to: its member leaves, or it is simply closed."""
        with self._changing() as effects:
            for member in self._members.values():
                if member.outbox is outbox:
                    return self.leave(member, reason)
            outbox.close(flush=False)
            effects.ready.append(outbox)
            return effects

    def shutdown(self) -> Effects:
        """Tell everybody the server is going, then let each of them go."""
        with self._changing() as effects:
            self._closed = True
            self._broadcast(Shutdown())
            for member in list(self._members.values()):
                self.leave(member, "shutdown")
            return effects

    # --- commands -------------------------------------------------------

    def handle(self, member: Member, command: commands.Command) -> Effects:
        with self._changing() as effects:
            if not member.gone:
                self._handlers[command.kind](member, command)
            return effects

    def send(self, member: Member, event: Event) -> Effects:
        """One event for one member, in order with the room's."""
        with self._changing() as effects:
            if not member.gone:
                self._send(member, event)
            return effects

    def _say(self, member: Member, command: commands.Command, action: bool = False) -> None:
        message = Message(seq=self._next_seq(), sender=member.name, text=command.text, action=action)
        self._remember(message)
        self._broadcast(message)

    def _remember(self, message: Message) -> None:
        self._history.append(message)
        self._history_size += _history_bytes(message)
        while len(self._history) > self.config.history or self._history_size > self.config.history_bytes:
            self._history_size -= _history_bytes(self._history.popleft())

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
        if new == member.name:
            self._send(member, Error(code="same_name", message=f'you are called "{new}" already'))
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
        self._put([member], member.codec(event, member.name))

    def _put(self, members: list[Member], data: bytes) -> None:
        assert self._effects is not None
        over_cap, ready = Outbox.put_all([member.outbox for member in members], data, time.monotonic())
        self._effects.ready += ready
        self._drop_over_cap(over_cap)

    def _audience(self) -> dict[Codec, list[Outbox]]:
        """Every member's outbox, grouped by codec (one encoding per group); kept until members change."""
        if self._groups is None:
            self._groups = {}
            for member in self._members.values():
                self._groups.setdefault(member.codec, []).append(member.outbox)
        return self._groups

    def _broadcast(self, event: Event, skip: Member | None = None) -> None:
        """Queue an event for every member, under the lock: one order for all."""
        assert self._effects is not None
        now = time.monotonic()
        over_cap: list[Outbox] = []
        for codec, boxes in self._audience().items():
            if skip is not None:
                boxes = [box for box in boxes if box is not skip.outbox]
            over, ready = Outbox.put_all(boxes, codec(event, ""), now)
            over_cap += over
            self._effects.ready += ready
        self._drop_over_cap(over_cap)

    def _drop_over_cap(self, boxes: list[Outbox]) -> None:
        # After a delivery loop, never inside one, so everyone keeps the same order.
        if boxes:
            for member in [member for member in self._members.values() if member.outbox in boxes]:
                self.leave(member, "slow")
