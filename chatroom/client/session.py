"""The client's session, pure (h11's idea): what the server says and what the user does, turned into actions.

No socket, terminal, Tk, thread or clock: each call is given the time (`now`) and returns the actions for its
caller (loop.py) to perform. Both front ends get all of it from here: who is here, my name, paced sending, the
pending count, a pasted block as one message, the welcome after the history, a line at each new day, the watch
over a quiet server, reconnecting (and retrying at once when asked), the client's keys after the server's help,
and how the session ended.
"""

from __future__ import annotations

import datetime
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .. import names, render
from ..commands import Command, Kind, parse
from ..protocol import (
    LINE_LIMIT, UNCHOSEN_ENDINGS, Bye, CaughtUp, Error, Event, FileNote, FileSlot, Found, Help, Hello, Joined, Left,
    Message, Ping, Reconnecting, Renamed, Shutdown, Users, Welcome, sanitize_lines,
)
from ..ratelimit import TokenBucket

# The client's exit statuses
OK, FAILED, USAGE, DISCONNECTED = 0, 1, 2, 3

# The connection's states, as people read them
CONNECTED = "connected"
NOT_ANSWERING = "server not answering"
RECONNECTING = "reconnecting"
# The server answers no /pong, so the watch over a quiet server asks with a /users, whose answer is not shown.
PROBE = "/users"

LOST = "Connection lost: the server closed the connection."
END_OF_HISTORY = "— end of history —"
QUIT_WAIT = 2.0  # seconds to wait for the server's goodbye after /quit
PUBLIC = (Kind.SAY, Kind.ME)  # the commands the server echoes to their sender
# The errors that say a line was not sent at all; the others answer a command (a /msg held, or to nobody).
NOT_SENT = ("rate_limited", "bad_message", "line_too_long", "bad_encoding", "cluster_unavailable")
QUIT_WORDS = ("/quit", "/exit")
RECONNECT = "/reconnect"  # the client's own command: retry at once while reconnecting
SEEN_KEPT = 4096  # event ids remembered for dropping replayed duplicates


@dataclass(frozen=True)
class Timing:
    """The session's waits, in seconds; tests give short ones."""
    probe_after: float = 15.0  # of silence from the server before the client asks whether it is there
    # for the probe's answer, before the server is "not answering": a live server answers in milliseconds, this
    # leaves room for a slow network
    answer_within: float = 5.0
    first_delay: float = 1.0  # between reconnect attempts: doubling from the first to the most
    most_delay: float = 30.0
    history_silence: float = 0.3  # the history comes in one piece with the welcome, so this is ample
    quit_wait: float = QUIT_WAIT
    pace_margin: float = 0.9  # of the server's rate: pasted lines go out a little slower, for network jitter


@dataclass(frozen=True)
class View:
    """What a front end shows of the session: my name, who is here (`away`: who of them is reconnecting), the
    connection's state and the public messages sent but not echoed by the server yet. The session replaces
    it whole on every change, so a view handed to another thread never changes under it."""
    me: str
    users: tuple[str, ...]
    away: frozenset[str]
    state: str
    pending: int


# --- what the session asks its caller to do ---------------------------------------------------------------

@dataclass(frozen=True)
class Transmit:
    """Send this line to the server."""
    line: str


@dataclass(frozen=True)
class Show:
    """Show this event from the server."""
    event: Event


@dataclass(frozen=True)
class Notice:
    """Show this sentence of the client's own (not the server's); `day`: the line before a new day's events."""
    text: str
    role: Literal["system", "error", "day"] = "system"


@dataclass(frozen=True)
class Redial:
    """Connect and log in again with this hello; then tell the session how it went (`reconnected`,
    `reconnect_refused` or `reconnect_failed`)."""
    hello: Hello


@dataclass(frozen=True)
class End:
    """The session is over: close the connection. `status` is the client's exit status."""
    status: int


@dataclass(frozen=True)
class Files:
    """For the client's file transfers (transfers.py): a typed /send or /cancel, a slot or a file note."""
    item: str | Event


Action = Transmit | Show | Notice | Redial | End | Files
Refusal = Literal["name", "password"]


def block_line(text: str) -> str:
    """A pasted block as the one structured line that carries it: a public message, never a command."""
    return json.dumps({"type": "say", "text": sanitize_lines(text).strip("\n")}, ensure_ascii=False)


def too_long(text: str) -> str | None:
    """Why a pasted block cannot be sent (its line would pass the server's cap), or None."""
    size = len(block_line(text).encode())
    return f"{size} bytes, the server takes at most {LINE_LIMIT} in one message" if size > LINE_LIMIT else None


class ClientSession:
    """One user's session from the welcome on, over as many connections as reconnecting takes.

    `reconnects`: a connection lost without the user's choice is replaced (Redial): attempts wait from
    `first_delay` doubling up to `most_delay`, each cut to 50-100 % by `jitter` (numbers from 0 to 1), and log
    in with the welcome's resume token and the last event id seen, so the server keeps the name and replays
    what was missed; lines typed meanwhile wait and go once back, in order. `quit_hint` tells the user how to
    leave while the session waits (the front end's words: "Ctrl+C to quit"); `key_help`, its keys, follows the
    server's /help.
    """

    def __init__(self, welcome: Welcome, now: float, *, jitter: Callable[[], float], password: str | None = None,
                 reconnects: bool = False, quit_hint: str = "", key_help: Sequence[str] = (),
                 timing: Timing = Timing()) -> None:
        self.timing, self.jitter = timing, jitter
        self.password = password  # a reconnect logs in with it again
        self.reconnects, self.quit_hint, self.key_help = reconnects, quit_hint, tuple(key_help)
        self.connected = True
        self.ending: Bye | Shutdown | None = None  # the server's last word
        self.quitting = False
        self.failed = False  # reconnecting gave up: the password has changed
        # Lines for the server, each with whether it is a public message (pending until its echo); paced, so a
        # paste stays under the server's limit.
        self.outgoing: deque[tuple[str, bool]] = deque()
        # Public messages written into a connection that was lost before their echo came: the replay after the
        # reconnect echoes those the server got, and its end (caught_up) says the others never reached it.
        self._unconfirmed = 0
        self._typed = 0  # lines queued since the last flush: a paste that has to wait is told once
        self._goodbye_by: float | None = None
        self.last_seq = welcome.seq  # the highest event id seen: a reconnect asks for what came after it
        self.epoch = welcome.epoch  # the numbering those ids belong to
        self._seen: set[int] = set()
        self._forgotten = 0  # ids up to this one count as seen
        self.attempt = 0
        self.retry_at: float | None = None  # when the next reconnect attempt is due
        self.wants_name = False  # the name was taken while we were away: the next typed line is the new one
        self.new_name: str | None = None
        # After a reconnect the server replays what was missed (messages marked `earlier`) up to `caught_up`: the
        # conversation, shown as such, not history from before we came ("(earlier)").
        self._replaying = False
        self._day: datetime.date | None = None  # the date of the last event shown: a new one gets a line
        # The newcomer's history follows the welcome on the wire; the welcome is shown after it (else it scrolls
        # away under 50 lines): at the first event that is not history, when the user acts, or after a silence.
        self._held: Welcome | None = welcome
        self._history_at: float | None = None  # when the last message of that history came
        self.due: float | None = None  # when `tick` next has something to do (set by each tick)
        self._welcomed(welcome, now, pending=0)

    def _welcomed(self, welcome: Welcome, now: float, pending: int) -> None:
        self.view = View(welcome.name, tuple(welcome.users), frozenset(welcome.away), CONNECTED, pending)
        self.token = welcome.token  # proves the name is ours on reconnect: kept, never shown
        self.server_rate = welcome.rate
        self.pace = TokenBucket(welcome.rate * self.timing.pace_margin, max(1, welcome.burst - 1), now)
        self._heard = now  # the last byte from the server: any byte answers the probe
        self._probed: float | None = None  # when the probe went, if it is not answered yet
        self.probes = 0  # /users probes not answered yet: their answers are not the user's to see

    @property
    def lost(self) -> bool:
        """The connection ended without the user's /quit and without the server saying why."""
        return not self.quitting and self.ending is None and not self.failed

    @property
    def status(self) -> int:
        """The exit status for how the session ended."""
        if self.quitting or (isinstance(self.ending, Bye) and self.ending.reason == "quit"):
            return OK
        return DISCONNECTED

    # --- the server ----------------------------------------------------------------------------------------

    def heard(self, now: float) -> None:
        """Bytes came from the server: it is there."""
        self._heard, self._probed = now, None
        self._judge(now)

    def _judge(self, now: float) -> None:
        """The watch over a quiet server: "not answering" when the probe's answer is late. It judges only
        between connected and that, so the state it leaves alone (reconnecting) is not overwritten."""
        if self.view.state in (CONNECTED, NOT_ANSWERING):
            late = self._probed is not None and now - self._probed >= self.timing.answer_within
            if (state := NOT_ANSWERING if late else CONNECTED) != self.view.state:
                self.view = replace(self.view, state=state)

    def receive(self, event: Event, now: float) -> list[Action]:
        """An event from the server: the user list, my name, the pending count and the ending kept up to date,
        and what to show (an event already shown, before a reconnect, is not shown again)."""
        if not self._is_new(event):
            return []
        if isinstance(event, Message) and self._replaying:
            event = replace(event, earlier=False)
        view = self.view
        unreached: list[Action] = []
        match event:
            case Joined(name=name):
                # A replayed join of someone the welcome listed already: once in the list.
                here = any(names.key(user) == names.key(name) for user in view.users)
                self.view = replace(view, users=view.users if here else (*view.users, name), away=view.away - {name})
            case Reconnecting(name=name):
                self.view = replace(view, away=view.away | {name})
                if name == view.me:
                    return []  # my own absence, replayed on my return, is no news to me
            case Left(name=name):
                self.view = replace(view, users=tuple(user for user in view.users if user != name),
                                    away=view.away - {name})
            case Renamed(old=old, new=new):
                self.view = replace(view, users=tuple(new if user == old else user for user in view.users),
                                    me=new if old == view.me else view.me)
            case Users(users=users, away=away):
                self.view = replace(view, users=tuple(users), away=frozenset(away))
                if self.probes:
                    self.probes -= 1
                    return []
            case Message(sender=sender, earlier=earlier) if names.key(sender) == names.key(view.me) and (
                    self._unconfirmed or (view.pending and not earlier)):
                # The server echoes public messages; one of mine in the replay (before caught_up) is the echo of a
                # message the lost connection took.
                self._unconfirmed = max(0, self._unconfirmed - 1)
                self.view = replace(view, pending=view.pending - 1)
            case Error(code=code) if code in NOT_SENT and view.pending:
                self.view = replace(view, pending=view.pending - 1)
            case Bye() | Shutdown():
                self.ending = event
            case Ping():
                return [Transmit("/pong")]
            case FileSlot():
                return [Files(event)]  # not shown: the transfer's progress is
            case FileNote():
                return [*self._release_welcome(), *self._show(event), Files(event)]
            case CaughtUp():
                self._replaying = False
                if self._unconfirmed:  # the replay is over: it echoed all the server got
                    lost, self._unconfirmed = self._unconfirmed, 0
                    self.view = replace(view, pending=max(0, view.pending - lost))
                    unreached = [Notice(f"-- {lost} message{'' if lost == 1 else 's'} sent as the connection was "
                                        "lost never reached the server", "error")]
            case Help(lines=lines) if self.key_help:
                event = replace(event, lines=[*lines, *self.key_help])
        if isinstance(event, Message) and event.earlier and self._held is not None:
            self._history_at = now
            return self._show(event)
        return [*self._release_welcome(), *self._show(event), *unreached]

    def _show(self, event: Event) -> list[Action]:
        """Show an event, after a line saying the day when it is the first of a new one."""
        if isinstance(event, Found) and event.messages:
            self._day = render.day(event.messages[-1].ts)  # the answer has its own day lines
        ts: float | None = getattr(event, "ts", None)
        if ts is None or render.day(ts) == self._day:
            return [Show(event)]
        self._day = render.day(ts)
        return [Notice(render.day_line(ts), "day"), Show(event)]

    def _is_new(self, event: Event) -> bool:
        """False for an event with an id seen before; remembers the ids of new ones. A set, not the highest id:
        private messages held for a reconnecting user arrive after the public replay, with lower ids."""
        seq: int = getattr(event, "seq", 0)
        if not seq:
            return True
        if seq <= self._forgotten or seq in self._seen:
            return False
        self._seen.add(seq)
        self.last_seq = max(self.last_seq, seq)
        if len(self._seen) > SEEN_KEPT:
            oldest = sorted(self._seen)[:SEEN_KEPT // 2]
            self._seen.difference_update(oldest)
            self._forgotten = oldest[-1]
        return True

    def _release_welcome(self) -> list[Action]:
        if self._held is None:
            return []
        welcome, self._held = self._held, None
        return [*([Notice(END_OF_HISTORY)] if self._history_at is not None else []), *self._show(welcome)]

    # --- the user ------------------------------------------------------------------------------------------

    def send(self, text: str, now: float, verbatim: bool = False) -> list[Action]:
        """What the user typed. A pasted block (`verbatim`, or text of several lines) goes out as one
        structured message, never read as a command. The lines are paced: `tick` sends them. An empty line (or
        /reconnect) while reconnecting tries at once."""
        actions = self._release_welcome()  # the user acts: the welcome waits no more
        if self.wants_name:
            if text.strip():
                self.new_name, self.wants_name, self.retry_at = text.strip(), False, now
            return actions
        if verbatim or "\n" in text:
            return actions + self._say_block(text)
        word = text.strip().lower()
        if not word or word == RECONNECT:
            return actions + self._retry_now(now, asked=bool(word))
        if not self.connected and word in QUIT_WORDS:
            return actions + self.quit(now)  # nobody to say goodbye to
        command = parse(text)
        if isinstance(command, Command) and command.kind is Kind.SEND:
            return actions + [Files(text)]  # the client reads the file: only an offer goes to the server
        actions += self._queue(text, text, public=isinstance(command, Command) and command.kind in PUBLIC)
        if isinstance(command, Command) and command.kind is Kind.CANCEL:
            actions.append(Files(text))  # the transfer here stops too, at once
        return actions

    def control(self, line: str) -> None:
        """A line of the client's own for the server (a file offer, an upload's done), paced with the typed
        ones and kept while the connection is away, like them; never pending, and not said to be waiting."""
        self._queue(line, line)

    def _say_block(self, text: str) -> list[Action]:
        if (problem := too_long(text)) is not None:
            return [Notice(f"! The paste was not sent: {problem}.", "error")]
        return self._queue(block_line(text), text.strip("\n").split("\n")[0] + " …", public=True)

    def _queue(self, line: str, typed: str, public: bool = False) -> list[Action]:
        self.outgoing.append((line, public))
        self._typed += self.connected
        if public:
            self.view = replace(self.view, pending=self.view.pending + 1)
        if self.connected:
            return []
        return [Notice(f'-- not connected: "{render.preview(typed)}" waits, and goes once the connection is back')]

    def _retry_now(self, now: float, asked: bool) -> list[Action]:
        """Enter on an empty line, or /reconnect: while a reconnect attempt waits for its time, try now."""
        if not self.connected and self.retry_at is not None:
            self.retry_at = now
            return [Notice("-- reconnecting now")]
        if not asked:
            return []
        return [Notice("-- connected already" if self.connected else "-- a reconnect attempt is under way")]

    def quit(self, now: float) -> list[Action]:
        """The user leaves: say /quit and wait briefly for the goodbye; at once when there is no connection."""
        if self.quitting:
            return []
        self.quitting = True
        actions = self._release_welcome()
        if not self.connected:
            return [*actions, End(self.status)]
        self.outgoing.append(("/quit", False))
        return actions

    # --- time ----------------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """What is due by `now`: the held welcome, the paced lines, the watch over a quiet server, a reconnect
        attempt, the end of the wait for the goodbye. Sets `due`, the time of the next of these (None: none
        planned; the watch over a quiet server needs no precision, and the caller looks often enough)."""
        actions: list[Action] = []
        if self._held is not None and (self._history_at is None
                                       or now - self._history_at >= self.timing.history_silence):
            actions += self._release_welcome()  # no more history comes (or none came with the welcome)
        if self.connected:
            actions += self._flush(now)
            if self._probed is None and now - self._heard >= self.timing.probe_after:
                self._probed, self.probes = now, self.probes + 1
                actions.append(Transmit(PROBE))
            self._judge(now)
            if self.quitting and not self.outgoing:
                if self._goodbye_by is None:
                    self._goodbye_by = now + self.timing.quit_wait
                if now >= self._goodbye_by:
                    actions.append(End(self.status))
        elif self.retry_at is not None and now >= self.retry_at:
            actions.append(self._redial())
        self.due = self._next_due(now)
        return actions

    def _flush(self, now: float) -> list[Action]:
        typed, self._typed = self._typed, 0
        waiting = len(self.outgoing)
        actions: list[Action] = []
        while self.outgoing and self.pace.take(now):
            actions.append(Transmit(self.outgoing.popleft()[0]))
        if typed and self.outgoing and waiting > 1:
            actions.append(Notice(f"-- {len(self.outgoing)} lines wait to be sent "
                                  f"({self.server_rate:g} per second is the server's limit)"))
        return actions

    def _next_due(self, now: float) -> float | None:
        due = []
        if self._held is not None and self._history_at is not None:
            due.append(self._history_at + self.timing.history_silence)
        if self.connected and self.outgoing:
            due.append(now + self.pace.wait(now))
        if self._goodbye_by is not None:
            due.append(self._goodbye_by)
        if not self.connected and self.retry_at is not None:
            due.append(self.retry_at)
        return min(due) if due else None

    # --- the connection ------------------------------------------------------------------------------------

    def closed(self, now: float) -> list[Action]:
        """The connection ended: replaced when that was neither the user's choice nor the server's verdict
        (a restarting server says shutdown, then comes back), else the session is over."""
        self.connected = False
        unchosen = self.ending is None or isinstance(self.ending, Shutdown) or self.ending.reason in UNCHOSEN_ENDINGS
        if self.reconnects and not self.quitting and unchosen:
            self.view = replace(self.view, state=RECONNECTING)
            return [self._schedule(now)]
        return self._end()

    def _end(self) -> list[Action]:
        return [*self._release_welcome(), *([Notice(f"! {LOST}", "error")] if self.lost else []), End(self.status)]

    def _schedule(self, now: float, why: str = "connection lost") -> Notice:
        """The next reconnect attempt: 1, 2, 4 ... 30 s, each cut to a random 50-100 % so that the clients of a
        restarted server do not all come back at once; the notice says `why` first."""
        self.attempt += 1
        delay = min(self.timing.most_delay, self.timing.first_delay * 2 ** (self.attempt - 1))
        delay *= 0.5 + self.jitter() / 2
        self.retry_at = now + delay
        hint = f", {self.quit_hint}" if self.quit_hint else ""
        return Notice(f"-- {why}; reconnecting in {math.ceil(delay)} s (attempt {self.attempt}){hint}", "error")

    def _redial(self) -> Redial:
        self.retry_at = None
        return Redial(Hello(self.new_name or self.view.me, password=self.password, reconnect=True,
                            resume=self.token or None, after=self.last_seq or None, epoch=self.epoch or None))

    def reconnected(self, welcome: Welcome, now: float) -> list[Action]:
        """A Redial logged in: the events that came with the welcome follow through `receive`."""
        self.connected, self.ending, self.attempt, self.new_name = True, None, 0, None
        self._replaying = bool(self.last_seq)  # asked from an event id: a replay comes (else the history)
        if welcome.epoch != self.epoch:
            # The server started again without its history: its ids start again too, so the ones seen before
            # say nothing about the events to come (it replays all it has, as `after` meant nothing to it).
            self.epoch, self.last_seq, self._forgotten = welcome.epoch, welcome.seq, 0
            self._seen.clear()
        waiting = sum(public for _, public in self.outgoing)
        # Pending now: the public lines waiting here, and those the lost connection took, until the replay says
        # which of them the server got.
        self._unconfirmed = self.view.pending - waiting if self._replaying else 0
        self._welcomed(welcome, now, waiting + self._unconfirmed)
        return [Notice("-- reconnected"), *self._show(welcome)]

    def reconnect_refused(self, refusal: Refusal, reason: str, now: float) -> list[Action]:
        """A Redial's login was refused: the name was taken meanwhile (the user types another; `send` takes
        it), or the room's password has changed (the session is over)."""
        if refusal == "name":
            self.wants_name = True
            return [Notice(f"-- {reason}Type another username and press Enter.", "error")]
        self.failed = True
        return [Notice("-- the room's password has changed: connect again with the new one", "error"),
                *self._end()]

    def reconnect_failed(self, now: float, reason: str) -> list[Action]:
        """A Redial could not connect or log in, for `reason` (a sentence): the next attempt, later."""
        return [self._schedule(now, reason)]
