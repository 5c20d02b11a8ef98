"""The one thread that writes every connection's outbox (outbox.py).

The room appends to its feeds and queues into outboxes under its lock; the `Sender` takes what waits for
each connection and sends it with one non-blocking send. What does not fit waits for that socket to become
writable while the others go on. Waking one thread per message, instead of one writer thread per member, is
what keeps a large room fast (docs/performance.md). Every half second it judges the connections whose sockets
are full.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable, Iterable

from .config import Config
from .outbox import Feed, Outbox
from .wakeup import SelectorThread

SWEEP_INTERVAL = 0.5  # how often waiting connections are judged
# A busy room: when a turn's sends carried this much each on average, what arrives next is worth gathering
# for COALESCE_WAIT before the next turn, so each connection gets one larger send instead of several small
# ones (at N=100 saturation 0.7-1.0 sends per message instead of 1.9: docs/performance.md). A turn of small
# sends (a quiet room, a message at a time, whatever the number of members) never waits.
COALESCE_BYTES = 2048
COALESCE_WAIT = 0.002  # seconds (4 ms gathered no more, and a closed loop waits it out: docs/performance.md)


class Sender(SelectorThread):
    """The thread that writes every outbox; `on_slow` hears of readers that cannot keep up, `on_crash`
    of an unexpected error that ended the thread (the server then stops instead of running deaf)."""
    name = "sender"

    def __init__(self, config: Config, on_slow: Callable[[Outbox], None],
                 on_crash: Callable[[], None], clock: Callable[[], float] = time.monotonic,
                 pause: Callable[[float], None] = time.sleep) -> None:
        super().__init__(on_crash)
        self.config = config
        self._on_slow = on_slow
        self._clock = clock
        self._pause = pause
        self._sends = self._sent = 0  # this turn's
        self._ready: set[Outbox | Feed] = set()
        self._to_finish: set[Outbox] = set()
        self._waiting: set[Outbox] = set()
        self._judged: set[Outbox] = set()  # reported slow already
        self._again: set[Outbox] = set()  # to flush at the next turn without a hand-over
        self._woken = False

    def ready_many(self, boxes: Iterable[Outbox | Feed]) -> None:
        """Called from any thread (never under the room's lock) when outboxes have something, or closed, or a
        feed has more for all its readers."""
        with self._lock:
            self._ready.update(boxes)
            if self._woken:
                return
            self._woken = True
        self._wakeup.wake()

    def put(self, box: Outbox, data: bytes) -> None:
        """Queue bytes for one connection that is not in the room (banner, login answers)."""
        with box.lock:
            box.put(data)  # a login's few lines are far below the hard cap
        self.ready_many([box])

    def finish(self, box: Outbox) -> None:
        """End a connection now, whatever it still holds (its handler is done waiting)."""
        with self._lock:
            self._to_finish.add(box)
        self.ready_many([box])

    def close(self, box: Outbox, flush: bool = True) -> None:
        with box.lock:
            box.close(flush, now=self._clock())
        self.ready_many([box])

    def last_words(self, boxes: Iterable[Outbox]) -> None:
        """With the sender thread gone: one non-blocking try to send what each outbox holds, then end it."""
        for box in boxes:
            if box.stream is not None and not box.finished:
                try:
                    box.stream.send_nowait(box.take(self._clock()))  # what it had begun to send, then the rest
                except OSError:
                    pass
                box.stream.finish()
            box.done.set()

    def _run(self) -> None:
        next_sweep = 0.0
        while True:
            batch, self._again = self._again, set()
            timeout = 0.0 if batch else max(0.0, next_sweep - self._clock()) if self._waiting else None
            for key, _ in self._selector.select(timeout):
                if not self._wakeup.woke(key):
                    box = key.data
                    self._selector.unregister(key.fileobj)
                    self._waiting.discard(box)
                    box.waiting = False
                    batch.add(box)
            with self._lock:
                if self._stopping:
                    return
                ready, self._ready = self._ready, set()
                self._woken = False
                ending, self._to_finish = self._to_finish, set()
            for box in ending:
                if not box.finished:
                    self._finish(box)
            for item in ready:
                if isinstance(item, Feed):
                    batch.update(item.boxes)
                else:
                    batch.add(item)
            now = self._clock()
            self._sends = self._sent = 0
            for box in batch:
                if not box.waiting:
                    self._flush(box, now)
            now = self._clock()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + SWEEP_INTERVAL
            if self._sent >= COALESCE_BYTES * max(1, self._sends):
                self._pause(COALESCE_WAIT)  # no lock held: the readers go on queueing meanwhile

    def _sweep(self, now: float) -> None:
        """Judge the connections whose sockets are full: give up on closed ones past their grace, and
        report the ones that have been slow for long enough (the room then closes their outbox)."""
        for box in list(self._waiting):
            box.judge(now)
            if box.closed:
                if now >= box.close_by:
                    self._finish(box)
            elif box not in self._judged and box.too_slow(now, self.config):
                self._judged.add(box)
                self._on_slow(box)

    def _flush(self, box: Outbox, now: float) -> None:
        """One send of what waits for a connection. What arrives meanwhile goes at the next turn, with what
        arrived for the others: the readers' hand-over wakes this thread again."""
        if box.finished:
            return
        if box.stream is None:
            if box.closed:
                self._finish(box)  # never got as far as a stream: nothing to send
            return
        # First what a full socket had begun to take. After a wait for the socket no hand-over may be due for
        # this connection, so what waits now goes in this turn too.
        if box.unsent and not self._send(box, box.unsent, now):
            return
        data = box.take(now)
        if data:
            self._send(box, data, now)
        elif box.closed:
            self._finish(box)  # closed, and everything sent

    def _send(self, box: Outbox, data: bytes, now: float) -> bool:
        """Send what the socket takes; False when it took less (it is then watched until writable) or failed."""
        assert box.stream is not None
        try:
            sent = box.stream.send_nowait(data)
        except OSError:
            self._finish(box)
            return False
        box.sent(sent, now)
        self._sends += 1
        self._sent += sent
        if not box.unsent:
            if box.behind or box.closed:
                self._again.add(box)  # more of the feed waits, or its goodbye went: the next turn goes on
            return True
        try:
            self._selector.register(box.stream.sock, selectors.EVENT_WRITE, box)
        except (OSError, ValueError, KeyError):  # closed under us: nothing more to send
            self._finish(box)
            return False
        self._waiting.add(box)
        box.waiting = True
        box.judge(now)
        return False

    def _finish(self, box: Outbox) -> None:
        if box.waiting:
            assert box.stream is not None
            try:
                self._selector.unregister(box.stream.sock)
            except (OSError, ValueError, KeyError):
                pass  # its socket was closed already
            self._waiting.discard(box)
            box.waiting = False
        self._judged.discard(box)
        box.discard()
        if box.stream is not None:
            box.stream.finish()  # the TLS goodbye, then the TCP shutdown that wakes the connection's reader
        box.done.set()
