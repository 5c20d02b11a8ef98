"""One connection's write side: its place in the room's feed, what was queued for it alone, what its socket has
not taken yet, and the times that judge a reader that cannot keep up.

The room's events reach every member through a `Feed`, one per codec: a broadcast appends the encoded bytes
once, whatever the number of members, and each outbox keeps its place in it (`pos`). What is for one member
only (its welcome, answers, private messages) is queued in its outbox, marked with the feed's length at that
moment, so it arrives in order with the room's events. The room appends and queues under its lock; the sender
thread takes (`take`, `sent`) and gives up on outboxes (`discard`). A member is judged over time, never from
one instant: it is too slow when what it holds stays above the high-water mark (`Config.sendq`) for
`slow_after` seconds, or takes no byte for `stall_after` seconds; only the hard cap (larger than any burst the
limits allow) drops at once.
"""

from __future__ import annotations

import socket
import threading
import time
from bisect import bisect_left
from typing import Protocol

from .config import Config

FLUSH_GRACE = 2.0  # seconds a closed outbox gets to reach a peer that reads slowly
TAKE_LIMIT = 256 * 1024  # bytes of the feed one take joins at most: a reader far behind costs no big copy
REVIEW_BYTES = 256 * 1024  # a feed forgets what every reader has taken at least this often


class Stream(Protocol):
    """Where the sender writes: a connection's socket, plain or TLS (streams.py)."""
    sock: socket.socket

    def send_nowait(self, data: bytes) -> int: ...

    def finish(self) -> None: ...


class Part:
    """The part of a feed still kept: `entries` from index `first` on, and `marks`, the bytes appended before
    each. Replaced, never cut in place, when the feed forgets, so the sender can read one without the lock."""
    __slots__ = ("first", "entries", "marks")

    def __init__(self, first: int, entries: list[bytes], marks: list[int]) -> None:
        self.first = first
        self.entries = entries
        self.marks = marks

    def offset(self, index: int, total: int) -> int:
        """The bytes appended before entry `index` (`total` for the end)."""
        at = index - self.first
        # The room appends the mark before the entry, so a mark is there for every entry seen.
        return self.marks[at] if at < len(self.marks) else total


class Feed:
    """The room's events for the members of one codec, each encoded once, in order. The room appends under its
    lock; the sender reads without it (`Part`). What every reader has taken is forgotten."""
    __slots__ = ("part", "total", "boxes", "review_at")

    def __init__(self) -> None:
        self.part = Part(0, [], [])
        self.total = 0  # bytes ever appended
        self.boxes: tuple[Outbox, ...] = ()  # its readers; replaced, not changed, so the sender can go through it
        self.review_at = REVIEW_BYTES  # `total` at which to look at the readers again (see `_review`)

    @property
    def end(self) -> int:
        """The index the next entry gets."""
        part = self.part
        return part.first + len(part.entries)

    def add(self, box: Outbox) -> None:
        """A new reader, from the next entry on (the caller holds the lock)."""
        box.feed, box.pos = self, self.end
        self.boxes += (box,)
        self.review_at = min(self.review_at, self.total + box.cap - box.size)

    def remove(self, box: Outbox) -> None:
        self.boxes = tuple(other for other in self.boxes if other is not box)

    def put(self, data: bytes) -> list[Outbox]:
        """Append an event for every reader (the caller holds the lock): the readers it took over the hard cap.
        The broadcast of every message, so it does nothing per reader unless one may be over the cap."""
        part = self.part
        part.marks.append(self.total)  # before the entry: whoever sees the entry sees its mark
        part.entries.append(data)
        self.total += len(data)
        if self.total > self.review_at:
            return self._review()
        return []

    def _review(self) -> list[Outbox]:
        """The readers over the hard cap; forget what all the others have taken, and note when one of them could
        pass the cap (no reader's backlog grows faster than the feed's total)."""
        part = self.part
        over, low, margin = [], part.first + len(part.entries), REVIEW_BYTES
        for box in self.boxes:
            if not box.reading:
                continue
            held = box.size
            if held > box.cap:
                over.append(box)
            else:
                low, margin = min(low, box.pos), min(margin, box.cap - held)
        cut = low - part.first
        if cut > 0:
            self.part = Part(low, part.entries[cut:], part.marks[cut:])
        self.review_at = self.total + margin
        return over


class Outbox:
    """One connection's write side: its place in a feed, what was queued for it alone, what the socket has not
    taken yet, and the times that tell a reader that cannot keep up from a burst.

    `pos`, `unsent` and the judging times are the sender thread's; the rest is changed under the room's lock.
    """

    __slots__ = ("lock", "high", "cap", "stream", "feed", "pos", "stop", "_chunks", "_queued", "_unsent", "unsent",
                 "behind", "closed", "close_by", "over_since", "last_progress", "waiting", "finished", "done")

    def __init__(self, lock: threading.RLock, config: Config = Config()) -> None:
        self.lock = lock
        self.high = config.sendq
        self.cap = config.hard_cap
        self.stream: Stream | None = None  # set once the connection is ready to write (after TLS)
        self.feed: Feed | None = None  # the room's events, once a member
        self.pos = 0  # the next entry of the feed to take
        self.stop: int | None = None  # once closed: the feed's entries before this one are still sent
        self._chunks: list[tuple[int, bytes]] = []  # for this connection alone: (the feed's end then, bytes)
        self._queued = 0  # their bytes
        self._unsent = 0  # len(unsent), kept where the room can count it
        self.unsent = b""
        self.behind = False  # the last take left entries of the feed for the next one (TAKE_LIMIT)
        self.closed = False
        self.close_by = 0.0  # once closed: when to stop waiting for the peer to read
        self.over_since: float | None = None  # since when it has held more than `high`
        self.last_progress = 0.0  # when the socket last took bytes, or bytes waited again after none did
        self.waiting = False  # registered with the sender until the socket is writable
        self.finished = False  # the sender is done with it (`done`, without a call, for every turn of the sender)
        self.done = threading.Event()  # closed and flushed (or given up on), the connection shut

    @property
    def reading(self) -> bool:
        """It still has entries of its feed to send."""
        return self.feed is not None and (self.stop is None or self.pos < self.stop)

    def _window(self) -> tuple[Part | None, int, int]:
        """The feed's part as it is now, and the entries of it this outbox is to send: [start, end)."""
        feed, start = self.feed, self.pos
        if feed is None:
            return None, start, start
        part = feed.part
        if start < part.first:  # it lost its place: it was over the hard cap and is being dropped
            return None, start, start
        end = part.first + len(part.entries)
        if self.stop is not None and self.stop < end:
            end = max(start, self.stop)
        return part, start, end

    @property
    def size(self) -> int:
        """Bytes this connection holds: the feed's entries it has not taken, its queue and its unsent bytes."""
        part, start, end = self._window()
        backlog = 0
        if part is not None and end > start:
            assert self.feed is not None
            backlog = part.offset(end, self.feed.total) - part.offset(start, 0)
        return backlog + self._queued + self._unsent

    def put(self, data: bytes) -> bool:
        """Queue bytes for this connection alone, the caller holding the lock and telling the sender; False if
        that would take it over the hard cap (then nothing is queued)."""
        if self.closed:
            return True
        held = self.size + len(data)
        if held > self.cap:
            return False
        feed = self.feed
        mark = 0 if feed is None else feed.end
        self._chunks.append((mark, data))
        self._queued += len(data)
        if feed is not None:  # a reader's queue counts towards its cap as much as the feed does
            feed.review_at = min(feed.review_at, feed.total + self.cap - held)
        return True

    def close(self, flush: bool = True, last: bytes = b"", now: float = 0.0) -> None:
        """No more events (the caller holds the lock and wakes the sender); unless `flush`, what waits is
        dropped, but `last` (a goodbye) still goes after the bytes the socket has begun to take."""
        if self.closed:
            return
        if flush:
            self.stop = self.feed.end if self.feed is not None else 0
        else:
            self.stop = self.pos
            self._chunks.clear()
            self._queued = 0
        if last:
            self._chunks.append((self.stop, last))
            self._queued += len(last)
        self.closed = True
        self.close_by = (now or time.monotonic()) + FLUSH_GRACE

    def take(self, now: float) -> bytes:
        """What waits, in order, as one send's worth (b"" if nothing); the sender thread's. Called for every
        member at every turn of the sender, so `_window` is written out here."""
        feed, start = self.feed, self.pos
        end, part = start, None
        if feed is not None:
            part = feed.part
            first = part.first
            if start < first:
                part = None  # it lost its place: it was over the hard cap and is being dropped
            else:
                end = first + len(part.entries)
                if self.stop is not None and self.stop < end:
                    end = max(start, self.stop)
                # Only a long run of entries can pass the limit; then the marks find where to cut it.
                self.behind = (end - start > 16
                               and part.offset(end, feed.total) - part.marks[start - first] > TAKE_LIMIT)
                if self.behind:
                    end = first + bisect_left(part.marks, part.marks[start - first] + TAKE_LIMIT,
                                              start - first + 1, end - first)
        if self._chunks:
            pieces = self._with_own(part, start, end)
        elif part is not None and end > start:
            pieces = part.entries[start - part.first:end - part.first]
        else:
            return self.unsent
        self.pos = max(self.pos, end)
        if not pieces:
            return self.unsent
        if self._unsent:
            self.unsent += b"".join(pieces)
        else:
            self.unsent = b"".join(pieces)
            self.last_progress = now  # bytes wait again after none did: the stall clock starts now
        self._unsent = len(self.unsent)
        return self.unsent

    def _with_own(self, part: Part | None, start: int, end: int) -> list[bytes]:
        """The feed's entries [start, end) with this outbox's own bytes where they were queued."""
        with self.lock:
            mine = [chunk for chunk in self._chunks if chunk[0] <= end]
            if mine:
                self._chunks = self._chunks[len(mine):]
                self._queued -= sum(len(data) for _, data in mine)
        pieces: list[bytes] = []
        for mark, data in mine:
            if part is not None and mark > start:
                pieces += part.entries[start - part.first:mark - part.first]
                start = mark
            pieces.append(data)
        if part is not None and end > start:
            pieces += part.entries[start - part.first:end - part.first]
        return pieces

    def sent(self, count: int, now: float) -> None:
        """The socket took `count` bytes of `unsent`; the sender thread's."""
        if count:
            if count == self._unsent:
                self.unsent, self._unsent = b"", 0
            else:
                self.unsent = self.unsent[count:]
                self._unsent = len(self.unsent)
            self.last_progress = now
        if self.over_since is not None and self.size <= self.high:
            self.over_since = None

    def judge(self, now: float) -> None:
        """Note when it first held more than the high-water mark; the sender's, when the socket is full."""
        if self.over_since is None and self.size > self.high:
            self.over_since = now

    def discard(self) -> None:
        """The sender is done with this connection: nothing queued or unsent is kept; the sender thread's."""
        self.finished = True
        with self.lock:
            self.closed = True
            self._chunks.clear()
            self._queued = 0
            self.stop = self.pos
            if self.feed is not None:
                self.feed.remove(self)
        self.unsent = b""
        self._unsent = 0

    def too_slow(self, now: float, config: Config) -> bool:
        if self.over_since is not None and now - self.over_since >= config.slow_after:
            return True
        return self.size > 0 and now - self.last_progress >= config.stall_after
