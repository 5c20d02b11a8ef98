"""The write side of every connection: its outbox, and the one thread that drains them all.

The room fills outboxes under its lock; the `Sender` takes what is queued and sends it with one
non-blocking send per connection. What does not fit waits for that socket to become writable while the
others go on. Waking one thread per message, instead of one writer thread per member, is what keeps a
large room fast (docs/performance.md).

A member is judged over time, never from one instant: it is too slow when its queue stays above the
high-water mark (`Config.sendq`) for `slow_after` seconds, or takes no byte for `stall_after` seconds;
only the hard cap (larger than any burst the limits allow) drops at once.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .config import Config

FLUSH_GRACE = 2.0  # seconds a closed outbox gets to reach a peer that reads slowly
SWEEP_INTERVAL = 0.5  # how often waiting connections are judged

log = logging.getLogger("chatroom.server")


class Stream(Protocol):
    sock: socket.socket

    def send_nowait(self, data: bytes) -> int: ...

    def finish(self) -> None: ...


class Outbox:
    """One connection's write side: what the room queued, what the socket has not taken yet, and the
    times that tell a reader that cannot keep up from a burst.

    The queue's fields are changed under the room's lock (`lock`); `unsent` belongs to the sender thread.
    """

    # Slots: every broadcast reads these fields once per member, the hottest loop of the server.
    __slots__ = ("lock", "high", "cap", "stream", "_chunks", "_queued", "_unsent", "unsent", "closed", "close_by",
                 "over_since", "last_progress", "waiting", "done")

    def __init__(self, lock: threading.RLock, config: Config = Config()) -> None:
        self.lock = lock
        self.high = config.sendq
        self.cap = config.hard_cap
        self.stream: Stream | None = None  # set once the connection is ready to write (after TLS)
        self._chunks: list[bytes] = []
        self._queued = 0
        self._unsent = 0  # len(unsent), kept where the room can count it
        self.unsent = b""
        self.closed = False
        self.close_by = 0.0  # once closed: when to stop waiting for the peer to read
        self.over_since: float | None = None  # when the queue went above `high`
        self.last_progress = 0.0  # when the socket last took bytes, or the queue last became non-empty
        self.waiting = False  # registered with the sender until the socket is writable
        self.done = threading.Event()  # closed and flushed (or given up on), the connection shut

    @property
    def size(self) -> int:
        """Bytes this connection holds in memory: queued and unsent."""
        return self._queued + self._unsent

    @staticmethod
    def put_all(boxes: Sequence[Outbox], data: bytes, now: float,
                high: int = 0) -> tuple[list[Outbox], list[Outbox]]:
        """Queue data in every box, the caller holding their lock: (the boxes over the hard cap, the boxes
        whose queue was empty). The delivery loop of every broadcast, so it touches the fields directly;
        `high`, the mark every box of the room shares (0: each box's own), saves a read per box."""
        size = len(data)
        room_left = (high or min((box.high for box in boxes), default=0)) - size
        over_cap, ready = [], []
        for box in boxes:
            queued = box._queued
            if queued and queued + box._unsent <= room_left and not box.closed:
                box._chunks.append(data)  # the common case: a queue being drained, well below the mark
                box._queued = queued + size
                continue
            if box.closed:
                continue
            held = box._queued + box._unsent + size
            if held > box.cap:
                over_cap.append(box)
                continue
            # Ready when the queue was empty: `_unsent` is the sender's and may be a moment old, so it
            # must not decide whether the sender hears of new bytes.
            if not box._queued:
                ready.append(box)
                if held == size:
                    box.last_progress = now
            elif held > box.high and box.over_since is None:
                box.over_since = now
            box._chunks.append(data)
            box._queued += size
        return over_cap, ready

    def close(self, flush: bool = True, last: bytes = b"", now: float = 0.0) -> None:
        """No more puts (the caller holds the lock and wakes the sender); unless `flush`, what is queued is
        dropped, but `last` (a goodbye) still goes after the bytes the socket has begun to take."""
        if self.closed:
            return
        if not flush:
            self._chunks.clear()
            self._queued = 0
        if last:
            self._chunks.append(last)
            self._queued += len(last)
        self.closed = True
        self.close_by = (now or time.monotonic()) + FLUSH_GRACE

    def take(self) -> bytes:
        """Everything queued, as one send's worth (b"" if nothing); the sender thread's."""
        with self.lock:
            chunks, self._chunks = self._chunks, []
            self._queued = 0
            self._unsent += sum(map(len, chunks))
        self.unsent += b"".join(chunks)  # up to the hard cap: joined outside the room's lock
        return self.unsent

    def sent(self, count: int, now: float) -> None:
        """The socket took `count` bytes of `unsent`; the sender thread's."""
        if count:
            self.unsent = self.unsent[count:]
            self._unsent = len(self.unsent)
            self.last_progress = now
        if self._queued + self._unsent <= self.high:
            self.over_since = None

    def too_slow(self, now: float, config: Config) -> bool:
        if self.over_since is not None and now - self.over_since >= config.slow_after:
            return True
        return self.size > 0 and now - self.last_progress >= config.stall_after


class Sender:
    """The thread that writes every outbox; `on_slow` hears of readers that cannot keep up, `on_crash`
    of an unexpected error that ended the thread (the server then stops instead of running deaf)."""

    def __init__(self, config: Config, on_slow: Callable[[Outbox], None],
                 on_crash: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._on_slow = on_slow
        self._on_crash = on_crash
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._ready: set[Outbox] = set()
        self._to_finish: set[Outbox] = set()
        self._waiting: set[Outbox] = set()
        self._judged: set[Outbox] = set()  # reported slow already
        self._woken = False
        self._stopping = False
        self.crashed = False
        self._thread = threading.Thread(target=self._supervised, name="sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        self._thread.join(5)
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def ready_many(self, boxes: Iterable[Outbox]) -> None:
        """Called from any thread (never under the room's lock) when outboxes have something, or closed."""
        with self._lock:
            self._ready.update(boxes)
            if self._woken:
                return
            self._woken = True
        self._wake()

    def put(self, box: Outbox, data: bytes) -> None:
        """Queue bytes for one connection that is not in the room (banner, login answers)."""
        with box.lock:
            _, ready = Outbox.put_all([box], data, self._clock())
        if ready:
            self.ready_many(ready)

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
            if box.stream is not None and not box.done.is_set():
                try:
                    box.stream.send_nowait(box.take())  # what it had begun to send, then the rest
                except OSError:
                    pass
                box.stream.finish()
            box.done.set()

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except OSError:
            pass  # a wake-up byte is waiting already

    def _supervised(self) -> None:
        try:
            self._run()
        except Exception:
            self.crashed = True
            log.exception("the sender thread failed; stopping the server")
            self._on_crash()

    def _run(self) -> None:
        next_sweep = 0.0
        while True:
            batch = set()
            timeout = max(0.0, next_sweep - self._clock()) if self._waiting else None
            for key, _ in self._selector.select(timeout):
                if key.fileobj is self._wake_reader:
                    try:
                        while self._wake_reader.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    box = key.data
                    self._selector.unregister(key.fileobj)
                    self._waiting.discard(box)
                    box.waiting = False
                    batch.add(box)
            with self._lock:
                if self._stopping:
                    return
                batch |= self._ready
                self._ready = set()
                self._woken = False
                ending, self._to_finish = self._to_finish, set()
            for box in ending:
                if not box.done.is_set():
                    self._finish(box)
            for box in batch:
                self._flush(box)
            now = self._clock()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + SWEEP_INTERVAL

    def _sweep(self, now: float) -> None:
        """Judge the connections whose sockets are full: give up on closed ones past their grace, and
        report the ones that have been slow for long enough (the room then closes their outbox)."""
        for box in list(self._waiting):
            if box.closed:
                if now >= box.close_by:
                    self._finish(box)
            elif box not in self._judged and box.too_slow(now, self.config):
                self._judged.add(box)
                self._on_slow(box)

    def _flush(self, box: Outbox) -> None:
        if box.done.is_set():
            return
        if box.stream is None:
            if box.closed:
                self._finish(box)  # never got as far as a stream: nothing to send
            return
        for _ in range(2):  # what arrived during a send goes out at once, but one box cannot hog the loop
            data = box.unsent or box.take()
            if not data:
                break
            try:
                sent = box.stream.send_nowait(data)
            except OSError:
                self._finish(box)
                return
            box.sent(sent, self._clock())
            if box.unsent:
                if not box.waiting:
                    try:
                        self._selector.register(box.stream.sock, selectors.EVENT_WRITE, box)
                    except (OSError, ValueError, KeyError):  # closed under us: nothing more to send
                        self._finish(box)
                        return
                    self._waiting.add(box)
                    box.waiting = True
                return
        if box.closed and not box.size:
            self._finish(box)
        elif box.size and not box.waiting:
            self.ready_many([box])  # more than two batches' worth: come back after the others

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
        with box.lock:
            box.closed = True
            box._chunks.clear()
            box._queued = 0
        box.unsent = b""
        box._unsent = 0
        if box.stream is not None:
            box.stream.finish()  # the TLS goodbye, then the TCP shutdown that wakes the connection's reader
        box.done.set()
