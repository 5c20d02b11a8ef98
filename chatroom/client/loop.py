"""One select loop drives the client session over the connection and tells one front end what to show.

It waits on the server's socket (to read, and to write what the socket could not take at once: nothing here
ever blocks, so a quit acts at once even when the server stopped reading), on its mailbox (lines and a quit
from any thread, the end of a reconnect attempt) and on what the front end asks it to watch (the console's
keys); each turn it gives the session the time, performs the actions the session returns and calls the front
end. `Background` runs it in a thread of its own for a front end whose thread must never block (the window).
"""

from __future__ import annotations

import logging
import queue
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..protocol import Event, Welcome
from .connection import Attempt, ClientError, Connection, Dial, Refused
from .progress import Row
from .session import FAILED, Action, ClientSession, End, Files, Notice, Redial, Show, Timing, Transmit, View
from .transfers import Transfers, endpoint_of
from ..waker import Waker

POLL = 0.25  # seconds: the longest wait between two looks at the time (the watch over a quiet server)
PROGRESS_EVERY = 0.25  # seconds between two showings of the transfers' progress

log = logging.getLogger(__name__)


class FrontEnd(Protocol):
    """What a user interface hears from the loop, always in the loop's thread."""

    def on_event(self, event: Event, view: View) -> None:
        """Show an event from the server; `view` is the session as the event left it."""

    def on_notice(self, notice: Notice) -> None:
        """Show a sentence of the client's own."""

    def on_view(self, view: View) -> None:
        """The session's facts changed (its state, the pending count, who is here) during the last turn."""

    def on_transfers(self, rows: tuple[Row, ...]) -> None:
        """The file transfers under way, as they stand (a few times a second at most while they run)."""


Work = Callable[[float], list[Action]]  # something for the loop's thread to do at time `now`


class Mailbox:
    """Work for the loop's thread, put from any thread; `wakeup` wakes the loop's select."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self._waker = Waker()
        self.wakeup = self._waker.sock

    def put(self, work: Work) -> None:
        """From any thread, also after the loop has ended (the work is then never done)."""
        self._work.put(work)
        self._waker.wake()

    def take(self) -> list[Work]:
        self._waker.drain()
        work = []
        while True:
            try:
                work.append(self._work.get_nowait())
            except queue.Empty:
                return work

    def close(self) -> None:
        self._waker.close()


class Loop:
    """The session (built here, on this loop's clock) over `connection`, replaced through `dial` when it is
    lost without the user's choice (None: never, the session ends). `quit_hint`, `key_help`, `timing` and
    `jitter` go to the session; `clock` is the time it is given."""

    def __init__(self, connection: Connection, welcome: Welcome, dial: Dial | None = None, *, quit_hint: str = "",
                 key_help: Sequence[str] = (), timing: Timing = Timing(), clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random, transfers: Transfers | None = None) -> None:
        self.connection: Connection | None = None
        self._adopt(connection)
        self.dial = dial
        self.clock = clock
        # The watch over a quiet server's window: a server that takes none of our bytes that long is lost.
        self._stuck_after = timing.probe_after + timing.answer_within
        self.session = ClientSession(welcome, clock(), jitter=jitter, reconnects=dial is not None,
                                     password=connection.hello.password if connection.hello else None,
                                     quit_hint=quit_hint, key_help=key_help, timing=timing)
        self.mailbox = Mailbox()
        self._watched: dict[socket.socket, Callable[[], None]] = {}
        self._attempt: Attempt | None = None
        self._front: FrontEnd | None = None
        self._thread = 0  # the ident of the thread in `run`
        self._status: int | None = None
        self.transfers = transfers or Transfers()
        self.transfers.attach(endpoint_of(connection.sock), self.mailbox.put, self.session.control)
        self._rows: tuple[Row, ...] = ()
        self._rows_due = 0.0
        self._unexpected: set[str] = set()  # why reconnect attempts failed unexpectedly: each logged once

    def _adopt(self, connection: Connection) -> None:
        """The loop's connection from now on: its socket never blocks, select waits for it."""
        connection.sock.setblocking(False)
        self.connection = connection

    def watch(self, sock: socket.socket, on_ready: Callable[[], None]) -> None:
        """Call `on_ready` in the loop's thread whenever `sock` is readable."""
        self._watched[sock] = on_ready

    def send(self, text: str, verbatim: bool = False) -> None:
        """A typed line (or a pasted block) for the session; from any thread."""
        self._do(lambda now: self.session.send(text, now, verbatim))

    def quit(self) -> None:
        """From any thread."""
        self._do(self.session.quit)

    def send_file(self, path: str) -> None:
        """Share a file with everybody (the window's Send file...); from any thread."""
        self._do(lambda now: self.transfers.offer(path))

    def cancel_transfer(self, key: str) -> None:
        """Stop one transfer (the window's Cancel), also one the server has not numbered yet; from any thread."""
        self._do(lambda now: self.transfers.cancel_key(key))

    def _do(self, work: Work) -> None:
        """At once when called in the loop's thread (a front end answering the loop: the console's keys), so the
        front end sees the outcome before it draws; from another thread through the mailbox."""
        if self._front is not None and threading.get_ident() == self._thread:
            self._perform(work(self.clock()))
        else:
            self.mailbox.put(work)

    def run(self, front: FrontEnd) -> int:
        """Until the session ends; the exit status. The connection is closed by then."""
        self._front, self._thread = front, threading.get_ident()
        shown = self.session.view
        try:
            assert self.connection is not None
            self._receive(self.connection.events(), self.clock())  # what came with the welcome
            while (status := self._status) is None:
                try:
                    self._turn()
                except KeyboardInterrupt:
                    self._perform(self.session.quit(self.clock()))
                if self.session.view is not shown:  # the session replaces its view on every change
                    shown = self.session.view
                    front.on_view(shown)
                self._progress(front)
        finally:
            self._front = None
            self.close()
        return status

    def _progress(self, front: FrontEnd) -> None:
        """The transfers, when one began or ended, else at most every PROGRESS_EVERY while any runs."""
        now = self.clock()
        if not self.transfers.changed and (not self._rows or now < self._rows_due):
            return
        rows = self.transfers.rows(now)
        self._rows_due = now + PROGRESS_EVERY
        if rows != self._rows:
            self._rows = rows
            front.on_transfers(rows)

    def close(self) -> None:
        """Close what the loop holds: the connection, the mailbox, an attempt under way (abandoned). `run` does
        it as it ends; a loop that never ran is closed by whoever built it. Transfers under way stop."""
        self.transfers.close()
        if self._attempt is not None:
            self._attempt.abandon()
            self._attempt = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self.mailbox.close()

    def _turn(self) -> None:
        now = self.clock()
        self._perform(self.session.tick(now))
        if self._status is not None:
            return
        watched, writing = [self.mailbox.wakeup, *self._watched], []
        if self.connection is not None:
            watched.append(self.connection.sock)
            if self.connection.unsent:
                writing.append(self.connection.sock)
        due = self.session.due
        readable, writable, _ = select.select(watched, writing, [],
                                              POLL if due is None else max(0.0, min(POLL, due - now)))
        for sock in readable:
            if sock in self._watched:
                self._watched[sock]()
        if self.mailbox.wakeup in readable:
            for work in self.mailbox.take():
                self._perform(work(self.clock()))
        if self.connection is None or self._status is not None:
            return
        now = self.clock()
        if self.connection.sock in writable:
            self.connection.flush(now)
        events = []
        if self.connection.sock in readable:
            events = self.connection.read()
            self.session.heard(now)
        self._receive(events, now)

    def _receive(self, events: list[Event], now: float) -> None:
        """Events from the connection through the session; then the end of the connection, if it came or the
        server has taken none of our bytes for too long."""
        for event in events:
            self._perform(self.session.receive(event, now))
        if self.connection is not None and (self.connection.closed
                                            or self.connection.stuck(now, self._stuck_after)):
            self.connection.close()
            self.connection = None
            self._perform(self.session.closed(now))

    def _perform(self, actions: list[Action]) -> None:
        assert self._front is not None, "the loop performs only while it runs"
        for action in actions:
            match action:
                case Transmit(line=line):
                    assert self.connection is not None, "the session transmits only while connected"
                    self.connection.send_line(line, self.clock())
                case Show(event=event):
                    self._front.on_event(event, self.session.view)
                case Notice():
                    self._front.on_notice(action)
                case Redial(hello=hello):
                    assert self.dial is not None, "a session without dial never redials"
                    self._attempt = Attempt(self.dial, hello, self._attempt_done)
                case End(status=status):
                    self._status = status
                case Files(item=item):
                    self._perform(self.transfers.handle(item))

    def _attempt_done(self, attempt: Attempt) -> None:
        """In the attempt's thread."""
        self.mailbox.put(lambda now: self._redialled(attempt, now))

    def _redialled(self, attempt: Attempt, now: float) -> list[Action]:
        """How the attempt went, for the session (in the loop's thread)."""
        assert attempt is self._attempt, "one attempt at a time, and an abandoned one never calls back"
        self._attempt = None
        match attempt.result:
            case (Connection() as connection, Welcome() as welcome):
                self._adopt(connection)
                self._perform(self.session.reconnected(welcome, now))
                self._receive(connection.events(), now)  # what came with the welcome: the replay of what was missed
                return []
            case Refused() as refused:
                return self.session.reconnect_refused(refused.refusal, refused.reason, now)
            case ClientError() as error:
                if error.__cause__ is not None and str(error) not in self._unexpected:
                    self._unexpected.add(str(error))  # a bug in the attempt would else be a silent retry forever
                    log.error("a reconnect attempt failed unexpectedly", exc_info=error.__cause__)
                return self.session.reconnect_failed(now, str(error))
        raise AssertionError(f"an attempt that was not abandoned ends with a result, not {attempt.result!r}")


# --- the thread bridge --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    """An event as the loop's thread hands it over, with the session's view after it."""
    event: Event
    view: View
    arrived: float  # time.perf_counter() when the loop handed it over


@dataclass(frozen=True)
class Ended:
    """The loop is over: the client's exit status."""
    status: int


@dataclass(frozen=True)
class Progress:
    """The file transfers as they stand."""
    rows: tuple[Row, ...]


Handed = Received | Notice | View | Ended | Progress


class Background:
    """A loop run by a thread of its own, for a front end whose thread must never block (the window).

    It is the loop's front end: what the loop says goes into `inbox`, for the other thread to take when it
    likes (Received, Notice and View items, then one Ended); lines go in with `send` and `quit` from any thread.
    The loop's thread owns the connection and closes it.
    """

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.inbox: queue.SimpleQueue[Handed] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="chatroom-session", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, text: str, verbatim: bool = False) -> None:
        self.loop.send(text, verbatim)

    def quit(self) -> None:
        self.loop.quit()

    @property
    def quit_within(self) -> float:
        """Seconds a quit may take: the session's wait for the goodbye, and one more for the loop to end."""
        return self.loop.session.timing.quit_wait + 1

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def on_event(self, event: Event, view: View) -> None:
        self.inbox.put(Received(event, view, time.perf_counter()))

    def on_notice(self, notice: Notice) -> None:
        self.inbox.put(notice)

    def on_view(self, view: View) -> None:
        self.inbox.put(view)

    def on_transfers(self, rows: tuple[Row, ...]) -> None:
        self.inbox.put(Progress(rows))

    def _run(self) -> None:
        status = FAILED
        try:
            status = self.loop.run(self)
        finally:
            self.inbox.put(Ended(status))
