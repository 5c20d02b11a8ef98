"""One connection's write side: what the room queued for it, what its socket has not taken yet, and the
times that judge a reader that cannot keep up.

The room fills outboxes under its lock (`put_all`, `close`); the sender thread drains them (`take`, `sent`)
and gives up on them (`discard`). A member is judged over time, never from one instant: it is too slow when
its queue stays above the high-water mark (`Config.sendq`) for `slow_after` seconds, or takes no byte for
`stall_after` seconds; only the hard cap (larger than any burst the limits allow) drops at once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from .config import Config

FLUSH_GRACE = 2.0  # seconds a closed outbox gets to reach a peer that reads slowly


class Stream(Protocol):
    """Where the sender writes: a connection's socket, plain or TLS (streams.py)."""
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

    def discard(self) -> None:
        """The sender has given up on this connection: nothing queued or unsent is kept; the sender thread's."""
        with self.lock:
            self.closed = True
            self._chunks.clear()
            self._queued = 0
        self.unsent = b""
        self._unsent = 0

    def too_slow(self, now: float, config: Config) -> bool:
        if self.over_since is not None and now - self.over_since >= config.slow_after:
            return True
        return self.size > 0 and now - self.last_progress >= config.stall_after
