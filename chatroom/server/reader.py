"""The one thread that reads the members' plain connections, where the system can make a single recv
non-blocking (MSG_DONTWAIT: Linux, macOS, the BSDs).

Each connection still has its handler thread (socketserver's), which owns the socket, logs in, and does
whatever may wait: a /history or /search that asks the disk, the end of the connection. Once logged in, the
handler lends its connection to the `Reader` and waits; the reader reads every ready socket in one selector
loop and performs what each line asks, as the handler would (`Readable.received`), and lends it back when the
connection is to end or must wait for something. One thread reading a hundred sockets instead of a hundred
threads each woken for every message saves the wake-ups and the hand-overs of the GIL between them, which
were half of the server's CPU per message (docs/performance.md).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .wakeup import SelectorThread

TICK = 0.5  # seconds between looks at the connections' deadlines (the ping of a silent JSON client)


class Readable(Protocol):
    """A connection the reader can read: what its handler does with what arrives."""

    @property
    def sock(self) -> socket.socket: ...

    def received(self, data: bytes, now: float) -> object:
        """Perform what arrived (b"": the peer closed); None to go on reading, anything else ends the loan."""

    def tick(self, now: float) -> object:
        """Perform what is due by now; as `received`."""


class _Loan:
    """One connection lent to the reader, and what it hands back."""
    __slots__ = ("conn", "sock", "returned", "outcome", "error")

    def __init__(self, conn: Readable) -> None:
        self.conn = conn
        self.sock = conn.sock
        self.returned = threading.Event()
        self.outcome: object = None
        self.error: BaseException | None = None


class ReaderStopped(Exception):
    """The reader thread ended while it held a connection, or before it could take it (it failed): the
    connection is as it was handed over, and its handler reads it from then on."""


class Reader(SelectorThread):
    """The thread that reads lent connections. What its connections' lines leave for the sender is gathered
    in `ready` and handed to `hand_over` once per turn, after every ready socket was read; `on_crash` hears of
    an unexpected error that ended the thread."""

    name = "reader"

    def __init__(self, hand_over: Callable[[Iterable[Any]], None], on_crash: Callable[[], None]) -> None:
        super().__init__(on_crash)
        self._hand_over = hand_over
        self.ready: set[Any] = set()  # for the sender, from this turn (see ChatServer.apply)
        self._arriving: list[_Loan] = []
        self._loans: set[_Loan] = set()
        self._ended = False
        self._ident: int | None = None  # the thread's, once it runs

    def is_current(self) -> bool:
        """Whether the caller runs in the reader's thread."""
        return threading.get_ident() == self._ident

    def serve(self, conn: Readable) -> object:
        """Lend a connection to the reader until it hands it back (the caller's thread waits): what its
        `received` or `tick` returned; an exception raised there, or in reading, is raised here."""
        loan = _Loan(conn)
        with self._lock:
            if self._ended:
                raise ReaderStopped("the server's reader has stopped")
            self._arriving.append(loan)
        self._wakeup.wake()
        loan.returned.wait()
        if loan.error is not None:
            raise loan.error
        return loan.outcome

    def _supervised(self) -> None:
        self._ident = threading.get_ident()
        try:
            super()._supervised()
        finally:
            self._ident = None  # the system may give a new thread this one's ident at once
            with self._lock:
                self._ended = True
                left = [*self._loans, *self._arriving]
            for loan in left:
                self._hand_back(loan, error=ReaderStopped("the server's reader has stopped"))

    def _run(self) -> None:
        next_tick = time.monotonic() + TICK
        while True:
            for key, _ in self._selector.select(max(0.0, next_tick - time.monotonic())):
                if self._wakeup.woke(key):
                    self._take_arrivals()
                    continue
                loan = key.data
                try:
                    data = loan.sock.recv(65536, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    self._hand_back(loan, error=exc)
                    continue
                self._perform(loan, loan.conn.received, data, time.monotonic())
            now = time.monotonic()
            if now >= next_tick:
                for loan in list(self._loans):
                    self._perform(loan, loan.conn.tick, now)
                next_tick = now + TICK
            if self.ready:
                ready, self.ready = self.ready, set()
                self._hand_over(ready)
            if self._stopping:
                return

    def _take_arrivals(self) -> None:
        with self._lock:
            arriving, self._arriving = self._arriving, []
            self._loans.update(arriving)
        for loan in arriving:
            try:
                self._selector.register(loan.sock, selectors.EVENT_READ, loan)
            except (OSError, ValueError) as exc:  # closed meanwhile
                self._hand_back(loan, error=exc if isinstance(exc, OSError) else ConnectionError(str(exc)))

    def _perform(self, loan: _Loan, step: Callable[..., object], *args: object) -> None:
        """One connection's step; what ends its loan hands it back. An error is its own, not the reader's."""
        try:
            outcome = step(*args)
        except Exception as exc:
            self._hand_back(loan, error=exc)
            return
        if outcome is not None:
            self._hand_back(loan, outcome=outcome)

    def _hand_back(self, loan: _Loan, outcome: object = None, error: BaseException | None = None) -> None:
        if loan.returned.is_set():
            return
        with self._lock:
            self._loans.discard(loan)
        try:
            self._selector.unregister(loan.sock)
        except (KeyError, ValueError, OSError):
            pass  # never registered, or closed
        loan.outcome, loan.error = outcome, error
        loan.returned.set()
