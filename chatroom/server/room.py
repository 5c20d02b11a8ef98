"""Who is here and where an event goes: join, leave (the one cleanup hook), the commands, and the delivery
of every event into the members' outboxes in one order.

Socket-free. Every public method changes the room under its lock and returns `Effects`: the outboxes to
hand to the sender, the members who left and the history questions to ask the disk. The caller performs
them after the lock is released, so nothing that can block (a socket, a log, the disk, a callback) ever
runs while the room is locked. Beside it, under the same lock: `catchup.Recent` (the public events in
memory) and `grace` (members who are reconnecting).
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import NoReturn

from .. import commands, names
from ..commands import Kind
from ..protocol import (
    Bye, Error, Event, FileShared, Found, Help, Joined, Left, Message, Private, Reconnecting, Renamed, Shutdown, Users,
    Welcome,
)
from . import grace
from .catchup import Recent, latest, merged, search_words
from .config import Config
from .history import History, Stored, token_hash
from .member import Codec, Member
from .outbox import Feed, Outbox

HISTORY_DEFAULT, HISTORY_MAX, SEARCH_RESULTS = 20, 500, 20
SEARCH_WORDS = 8  # distinct words in one /search, at most
ANSWER_BYTES = 1024 * 1024  # one /history or /search answer, at most: more is cut, with a note (never a drop)


class Effects:
    """What a room call leaves to its caller, to do once the room's lock is released."""
    __slots__ = ("ready", "left", "questions")

    def __init__(self) -> None:
        self.ready: list[Outbox | Feed] = []  # for the sender: outboxes, and feeds whose readers all have more
        self.left: list[tuple[Member, str]] = []  # members who left, and why
        self.questions: list[Question] = []  # /history and /search, for the disk


@dataclass(frozen=True)
class Question:
    member: Member
    words: tuple[str, ...] | None  # case-folded, each once (catchup.search_words); None: the latest messages
    count: int
    text: str | None = None  # the search as typed, for its answer


class _Changing:
    """`with room._changing() as effects`: the lock held, and the Effects of this call and the calls it makes.
    A class rather than a generator: it runs for every message."""
    __slots__ = ("room", "outer")

    def __init__(self, room: Room) -> None:
        self.room = room

    def __enter__(self) -> Effects:
        room = self.room
        room.lock.acquire()
        self.outer = room._effects
        if self.outer is None:
            room._effects = Effects()
        return room._effects  # type: ignore[return-value]  # set just above when it was None

    def __exit__(self, *exc: object) -> None:
        self.room._effects = self.outer
        self.room.lock.release()


def taken(shown: str) -> names.NameProblem:
    return names.NameProblem("name_taken", f'the username "{shown}" is taken')


def room_full(most: int) -> names.NameProblem:
    return names.NameProblem("room_full", f"the room is full ({most} users): try again later")


def shutting_down() -> names.NameProblem:
    return names.NameProblem("shutting_down", "the server is shutting down")


def lookalike(shown: str, other: str) -> names.NameProblem:
    return names.NameProblem("name_lookalike", f'the username "{shown}" looks like "{other}", who is here')


def unknown_user(command: commands.Command) -> Error:
    """A private message to nobody of that name: not sent (with how to send the line as text, if it was one)."""
    hint = ""
    if command.line:
        quoted = command.line.replace("\\", "\\\\").replace('"', '\\"')
        hint = f' (to send the line as text: /bc "{quoted}")'
    return Error(code="unknown_user",
                 message=f'no user named "{command.target}" is here: your message was not sent{hint}')


def same_name(new: str) -> Error:
    return Error(code="same_name", message=f'you are called "{new}" already')


def _unhandled(kind: NoReturn) -> NoReturn:
    """typing.assert_never, which Python 3.10 lacks: mypy refuses a call that a kind can reach."""
    raise AssertionError(f"no handler for {kind!r}")


class Room:
    def __init__(self, config: Config = Config(), history: History | None = None) -> None:
        self.config = config
        self.history = history or History(None)
        self.lock = threading.RLock()  # the outboxes of its members share it
        self._members: dict[str, Member] = {}  # by name key, in join order
        self._feeds: dict[Codec, Feed] = {}  # the room's events, encoded once per codec (outbox.py)
        self._recent = Recent(config, self.history.loaded)
        self._seq = self.history.last_id
        self.epoch = self.history.epoch  # names this numbering of the ids (docs/protocol.md)
        self._closed = False
        self._effects: Effects | None = None
        self._over_cap: list[Member] = []
        self._dropping = False
        # Names kept across a restart wait for their owners as if their connections had just been lost.
        until = time.monotonic() + config.grace
        for kept in self.history.reservations if config.grace else ():
            member = grace.waiting(kept, self.new_outbox(), until)
            self._members[member.key] = member

    def _changing(self) -> _Changing:
        """Hold the lock; the Effects collected by this call and the calls it makes."""
        return _Changing(self)

    def new_outbox(self) -> Outbox:
        """An outbox for a connection that may join this room (it shares the room's lock)."""
        return Outbox(self.lock, self.config)

    # --- membership -----------------------------------------------------

    def names(self) -> list[str]:
        with self.lock:
            return [member.name for member in self._members.values()]

    def away(self) -> list[str]:
        """The names of the members who are reconnecting."""
        with self.lock:
            return grace.away(self._members.values())

    def _check_free(self, shown: str, me: Member | None = None) -> None:
        key, look = names.key(shown), names.skeleton(shown)
        for other in self._members.values():
            if other is me:
                continue
            if other.key == key:
                raise taken(shown)
            if other.skeleton == look:
                raise lookalike(shown, other.name)

    def check_name(self, name: str) -> str:
        """The display form of a name that could join now, or NameProblem saying why not."""
        shown = names.check(name)
        with self.lock:
            if self._closed:
                raise shutting_down()
            self._check_free(shown)
            if len(self._members) >= self.config.max_members:
                raise room_full(self.config.max_members)
        return shown

    def join(self, name: str, codec: Codec, outbox: Outbox, resumable: bool = False, token: str | None = None,
             after: int | None = None, address: str = "", epoch: str | None = None) -> tuple[Member, Effects]:
        """Add a member with its welcome and what it should see first, or raise NameProblem saying why not.

        With the resume `token` of a member who is reconnecting (or whose old connection has not ended yet)
        the name is taken up again. With `after`, the client catches up (catchup.py); an `after` of another
        `epoch` (the ids of a room that has since started again without its history) counts as 0: everything
        in memory is new to it. All or nothing: the newcomer's first bytes are queued in one piece before
        anyone hears of it."""
        with self._changing() as effects:
            names.check(name)
            existing = self._members.get(names.key(name))
            resumed = bool(existing and token and existing.token_digest
                           and hmac.compare_digest(token_hash(token), existing.token_digest))
            if resumed and existing is not None:
                if self._closed:
                    raise shutting_down()
                shown = existing.name
            else:
                if existing is not None and existing.away_until is not None:
                    raise grace.reserved(existing, time.monotonic())
                self._check_address(address)
                shown = self.check_name(name)
            new_token = secrets.token_urlsafe(24) if resumable else ""
            member = Member(shown, codec, outbox, token_hash(new_token) if new_token else "", address,
                            existing.session if resumed and existing is not None else None)
            users = [other.name for other in self._members.values()]
            if not resumed:
                users.append(shown)
            welcome = Welcome(name=shown, users=users, rate=self.config.rate, burst=self.config.burst,
                              token=new_token, away=[n for n in grace.away(self._members.values()) if n != shown],
                              resumed=resumed, seq=self._seq, epoch=self.epoch)
            # The private messages that waited for a resumed member are delivered once, with or without `after`.
            held = [waiting.message for waiting in existing.held] if resumed and existing is not None else []
            data = self._first_bytes(codec, outbox, welcome, held, after, epoch, self.history.gaps)
            if resumed and existing is not None:
                member.resumed = True
                self._take_over(existing, effects)
            self._members[member.key] = member
            self._put(member, data)
            self._public(Joined(seq=self._next_seq(), name=shown, back=resumed))
            # From the entry after its join on: its welcome and first messages came first, in its own queue.
            self._feeds.setdefault(codec, Feed()).add(outbox)
            self.history.reserve(member.key, shown, member.token_digest or None)
            return member, effects

    def _first_bytes(self, codec: Codec, outbox: Outbox, welcome: Welcome, held: list[Private], after: int | None,
                     epoch: str | None, gaps: list[tuple[int, int]]) -> bytes:
        """A newcomer's welcome and what it sees first (the latest messages, or its catch-up from `after`), in
        one piece; too_much_history when its connection cannot take them. Under the lock."""
        shown = welcome.name
        if after is None:
            first: list[Event] = [*self._recent.for_newcomer(), *held]
        else:
            after = after if epoch in (None, self.epoch) else 0
            first = self._recent.catch_up(after, shown, held, self._seq, gaps)
        data = b"".join([codec(welcome, shown), *(codec(event, shown) for event in first)])
        if outbox.size + len(data) > outbox.cap:
            raise names.NameProblem("too_much_history", "the room's history does not fit your connection")
        return data

    def _check_address(self, address: str) -> None:
        """A new name from an address that holds `max_per_address` already, here or kept for a lost connection,
        is refused: otherwise one address could fill the room with names it keeps by dropping connections."""
        most = self.config.max_per_address
        if address and sum(member.address == address for member in self._members.values()) >= most:
            raise names.NameProblem("address_full", f"your address holds {most} names already, here or kept for "
                                                    f"lost connections (at most {most})")

    def _take_over(self, old: Member, effects: Effects) -> None:
        """A resume: the old connection, if it has not ended yet, ends without a word to the room."""
        if not old.gone:
            old.gone = True
            old.outbox.close(flush=False, last=old.codec(Bye(reason="replaced"), old.name))
            effects.ready.append(old.outbox)
        del self._members[old.key]

    def leave(self, member: Member, reason: str) -> Effects:
        """The disconnect cleanup hook: idempotent; only the first call for a member has effects.

        An ending the user did not choose keeps the member as reconnecting for the grace period."""
        with self._changing() as effects:
            if not self._disconnect(member, reason, effects):
                return effects
            if grace.keeps_name(member, reason, self.config.grace) and not self._closed:
                member.away_until = time.monotonic() + self.config.grace
                effects.left.append((member, f"{reason}, reconnecting"))
                self._public(Reconnecting(seq=self._next_seq(), name=member.name))
                return effects
            del self._members[member.key]
            effects.left.append((member, reason))
            if reason != "shutdown":  # a restarted server keeps the names for their owners
                self.history.reserve(member.key, member.name, None)
            if not self._closed:
                self._public(Left(seq=self._next_seq(), name=member.name, reason=reason))
            return effects

    @staticmethod
    def _disconnect(member: Member, reason: str, effects: Effects) -> bool:
        """A member's connection ends (its goodbye says why, its outbox closes); False if it had ended already."""
        if member.gone:
            return False
        member.gone = True
        goodbye = b"" if reason == "shutdown" else member.codec(Bye(reason=reason), member.name)
        member.outbox.close(flush=reason != "slow", last=goodbye)
        effects.ready.append(member.outbox)
        return True

    def expire(self, now: float) -> Effects:
        """End the grace of members who did not come back: a leave, and their waiting messages bounce."""
        with self._changing() as effects:
            for member in grace.expired(self._members.values(), now):
                del self._members[member.key]
                effects.left.append((member, "lost"))
                self.history.reserve(member.key, member.name, None)
                self._public(Left(seq=self._next_seq(), name=member.name, reason="lost"))
                self._bounce(member, f"{member.name} did not come back in time")
            return effects

    def _bounce(self, member: Member, why: str) -> None:
        """The private messages that waited for `member` in vain go back to their senders, with `why`."""
        for session, notice in grace.bounced(member, why):
            sender = next((other for other in self._members.values() if other.session == session), None)
            if sender is not None and not sender.gone:
                self._send(sender, notice)

    def drop(self, outbox: Outbox, reason: str) -> Effects:
        """End the connection an outbox belongs to: its member leaves, or it is simply closed."""
        with self._changing() as effects:
            for member in self._members.values():
                if member.outbox is outbox and not member.gone:
                    return self.leave(member, reason)
            outbox.close(flush=False)
            effects.ready.append(outbox)
            return effects

    def shutdown(self) -> Effects:
        """Tell everybody the server is going, then let each of them go."""
        with self._changing() as effects:
            self._closed = True
            # Private messages are never written to disk: what waits is bounced now, not lost in silence.
            for member in list(self._members.values()):
                if member.away_until is not None:
                    self._bounce(member, f"the server is stopping before {member.name} came back")
            self._broadcast(Shutdown())
            for member in list(self._members.values()):
                self.leave(member, "shutdown")
            self.history.ids_used_up_to(self._seq)
            return effects

    def close(self) -> None:
        """After the server has stopped: the history file is written and closed."""
        self.history.close()

    # --- commands -------------------------------------------------------

    def waits(self, command: commands.Command) -> bool:
        """Whether a command must be performed from its connection's own thread, where it may wait (`perform`):
        never here, where the room decides everything in memory."""
        return False

    def perform(self, member: Member, command: commands.Command) -> Effects:
        """A command that `waits`, from its connection's own thread."""
        return self.handle(member, command)

    def handle(self, member: Member, command: commands.Command) -> Effects:
        with self._changing() as effects:
            if not member.gone:
                self._run(member, command)
            return effects

    def _run(self, member: Member, command: commands.Command) -> None:
        """Each kind's handler: mypy checks that every kind has one (the last case is unreachable)."""
        match command.kind:
            case Kind.SAY:
                self._say(member, command)
            case Kind.ME:
                self._say(member, command, action=True)
            case Kind.MSG:
                self._whisper(member, command)
            case Kind.USERS:
                self._send(member, Users(users=self.names(), you=member.name, away=self.away()))
            case Kind.NICK:
                self._nick(member, command)
            case Kind.HISTORY:
                count = min(int(command.text or HISTORY_DEFAULT), HISTORY_MAX)
                self._ask(Question(member, None, count))
            case Kind.SEARCH:
                words = search_words(command.text)
                if len(words) > SEARCH_WORDS:
                    self._send(member, Error(code="too_many_words",
                                             message=f"search for at most {SEARCH_WORDS} words at a time"))
                else:
                    self._ask(Question(member, words, SEARCH_RESULTS, command.text))
            case Kind.HELP:
                self._send(member, Help(lines=commands.help_lines()))
            case Kind.QUIT:
                self.leave(member, "quit")
            case Kind.PONG:
                pass  # the line itself showed the connection is alive
            case Kind.SEND | Kind.GET | Kind.FILES | Kind.CANCEL | Kind.DECLINE:
                pass  # sessions hand file commands to the file store (handler, files.py), outside this lock
            case unhandled:
                _unhandled(unhandled)

    def send(self, member: Member, event: Event) -> Effects:
        """One event for one member, in order with the room's."""
        with self._changing() as effects:
            if not member.gone:
                self._send(member, event)
            return effects

    def _say(self, member: Member, command: commands.Command, action: bool = False) -> None:
        self._public(Message(seq=self._next_seq(), sender=member.name, text=command.text, action=action))

    def _public(self, event: Event) -> None:
        """A room-wide event that is remembered: in memory for catching up, and on disk."""
        self._recent.remember(event)
        self.history.append(event)
        self._broadcast(event)

    def _ask(self, question: Question) -> None:
        assert self._effects is not None
        self._effects.questions.append(question)

    def answer(self, question: Question, stored: Stored | None) -> Effects:
        """Send the answer to /history or /search: what the disk found, completed from memory, cut to what
        fits (`ANSWER_BYTES`), with a note for what was cut or could not be asked. Only taking the events and
        queueing the answer hold the room's lock: the matching and the encoding are the asker's thread's work,
        so a search costs the searcher, not the room."""
        with self.lock:
            events = self._recent.snapshot()
        member = question.member
        found = merged(stored.messages if stored else None, latest(events, question.words, question.count),
                       question.count)
        shown = self._fitting(found, member)
        notes = []
        if len(shown) < len(found):
            notes.append(Error(code="answer_cut", message=f"only the latest {len(shown)} of the {len(found)} "
                               f"messages found fit in one answer ({ANSWER_BYTES // 1024} KiB): ask for fewer"))
        if stored is not None and stored.trouble:
            notes.append(Error(code="history_unavailable",
                               message=f"{stored.trouble}: this answer has only the messages in memory"))
        data = b"".join(member.codec(event, member.name)
                        for event in [Found(query=question.text, messages=shown), *notes])
        with self._changing() as effects:
            if not member.gone:
                self._put(member, data)
            return effects

    @staticmethod
    def _fitting(messages: list[Message], member: Member) -> list[Message]:
        """The latest of `messages` whose bytes, as this member receives them, fit in one answer: at most
        ANSWER_BYTES, and never so many that they would take its connection over the hard cap."""
        room = min(ANSWER_BYTES, member.outbox.cap - member.outbox.size - ANSWER_BYTES // 16)
        shown: list[Message] = []
        for message in reversed(messages):
            room -= len(member.codec(message, member.name))
            if room < 0:
                break
            shown.append(message)
        return shown[::-1]

    def _whisper(self, member: Member, command: commands.Command) -> None:
        target = self._members.get(names.key(command.target))
        if target is None:
            self._send(member, unknown_user(command))
            return
        if (refusal := grace.cannot_hold(target)) is not None:
            self._send(member, refusal)
            return
        message = Private(seq=self._next_seq(), sender=member.name, to=target.name, text=command.text)
        self.history.ids_used_up_to(message.seq)
        if target.away_until is not None:
            notice = grace.hold(target, member, message)
            self._send(member, message)
            self._send(member, notice)
            return
        self._send(target, message)
        if target is not member:
            self._send(member, message)

    def _nick(self, member: Member, command: commands.Command) -> None:
        try:
            new = names.check(command.target)
            self._check_free(new, me=member)
        except names.NameProblem as problem:
            self._send(member, Error(code=problem.code, message=problem.message))
            return
        if new == member.name:
            self._send(member, same_name(new))
            return
        old = member.name
        self.history.reserve(member.key, old, None)
        self._rekey(member, new)
        self.history.reserve(member.key, new, member.token_digest or None)
        self._public(Renamed(seq=self._next_seq(), old=old, new=new))

    def _rekey(self, member: Member, new: str) -> None:
        """A member's new name, in its place among the members (under the lock)."""
        member.name, member.key, member.skeleton = new, names.key(new), names.skeleton(new)
        self._members = {(member.key if m is member else k): m for k, m in self._members.items()}

    # --- files: the file store decides (files.py); the room only delivers, in its order ----------

    def share(self, event: FileShared) -> Effects:
        """A share notice, numbered in the room's order: for everybody (remembered like any public event),
        or for its sender and recipient alone."""
        with self._changing() as effects:
            event = dataclasses.replace(event, seq=self._next_seq())
            if event.to is None:
                self._public(event)
                return effects
            self.history.ids_used_up_to(event.seq)
            for name in dict.fromkeys((event.sender, event.to)):
                if (member := self._here(name)) is not None:
                    self._send(member, event)
            return effects

    def tell(self, name: str, event: Event) -> Effects:
        """One event for the member of that name, if here (news of a transfer)."""
        with self._changing() as effects:
            if (member := self._here(name)) is not None:
                self._send(member, event)
            return effects

    def _here(self, name: str) -> Member | None:
        """The member of that name, if here (under the lock)."""
        member = self._members.get(names.key(name))
        return member if member is not None and not member.gone else None

    # --- delivery -------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _send(self, member: Member, event: Event) -> None:
        self._put(member, member.codec(event, member.name))

    def _put(self, member: Member, data: bytes) -> None:
        """Bytes for one member, in order with the room's events."""
        assert self._effects is not None
        self._effects.ready.append(member.outbox)
        if not member.outbox.put(data):
            self._drop_over_cap([member.outbox])

    def _broadcast(self, event: Event) -> None:
        """Queue an event for every member, under the lock: one order for all. One append per codec, whatever
        the number of members (outbox.py)."""
        assert self._effects is not None
        over_cap: list[Outbox] = []
        for codec, feed in self._feeds.items():
            if feed.boxes:
                over_cap += feed.put(codec(event, ""))
                self._effects.ready.append(feed)
        self._drop_over_cap(over_cap)

    def _drop_over_cap(self, boxes: list[Outbox]) -> None:
        # After a delivery loop, never inside one, so everyone keeps the same order. A leave's notice can
        # push another member over the cap: those wait in the list, so a cascade is a loop, not a recursion.
        if not boxes:
            return
        self._over_cap += [m for m in self._members.values() if m.outbox in boxes and not m.gone]
        if self._dropping:
            return
        self._dropping = True
        try:
            while self._over_cap:
                self.leave(self._over_cap.pop(0), "slow")
        finally:
            self._dropping = False
