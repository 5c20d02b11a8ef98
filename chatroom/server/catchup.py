"""The room's latest public events in memory: what a newcomer sees first, what a returning client missed, and
the newest part of every /history and /search answer; and what a search means, in memory as on disk.

Memory only: the room calls `Recent` under its lock (a search gets a `snapshot` and matches outside it).
Bounded by `Config.catchup` events and `catchup_bytes`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable

from ..codecs import PLAIN_BLOCK_INDENT
from ..protocol import CaughtUp, Event, Message, Private, Reconnecting
from .config import Config
from .history import searchable

FIELD_BYTES = 256  # an event's fields around its text, in either mode (a name is up to 80 bytes of UTF-8)


def wire_bytes(event: Event) -> int:
    """An upper bound of a public event's size on the wire in either mode: JSON escapes '\\', '"' and a line
    break as two bytes; plain text indents each line of a block (codecs.PLAIN_BLOCK_INDENT)."""
    if isinstance(event, Message):
        text = event.text
        escaped = text.count("\\") + text.count('"') + text.count("\n")
        return len(text.encode()) + max(escaped, PLAIN_BLOCK_INDENT * text.count("\n")) + FIELD_BYTES
    return FIELD_BYTES


def search_words(text: str) -> tuple[str, ...]:
    """The words a search looks for: case-folded, each once, in the order typed."""
    return tuple(dict.fromkeys(searchable(text).split()))


def matches(words: tuple[str, ...], text: str) -> bool:
    """What /search means, in memory as on disk (history.py): every word is a part of the text, case ignored."""
    folded = searchable(text)
    return all(word in folded for word in words)


def latest(events: list[Event], words: tuple[str, ...] | None, count: int) -> list[Message]:
    """The latest `count` messages among `events` (containing every one of `words`, if given)."""
    found: list[Message] = []
    for event in reversed(events):
        if isinstance(event, Message) and (not words or matches(words, event.text)):
            found.append(event)
            if len(found) == count:
                break
    return found[::-1]


def missing_ids(after: int, oldest: int, gaps: list[tuple[int, int]]) -> int:
    """The ids between `after` and `oldest` (both left out) that may have been events: the `gaps` (unused ids
    of restarts after a crash) do not count. An upper bound of the public events missed: private messages
    between others have ids too."""
    count = max(0, oldest - after - 1)
    for first, last in gaps:
        count -= max(0, min(last, oldest - 1) - max(first, after + 1) + 1)
    return count


def merged(stored: list[Message] | None, recent: list[Message], count: int) -> list[Message]:
    """An answer to /history or /search: what the disk found and what memory holds, each once, oldest first."""
    by_id = {message.seq: message for message in [*(stored or []), *recent]}
    return [by_id[seq] for seq in sorted(by_id)][-count:]


def _seq(event: Event) -> int:
    return getattr(event, "seq", 0)


class Recent:
    def __init__(self, config: Config, events: Iterable[Event] = ()) -> None:
        self.config = config
        self._events: deque[Event] = deque()
        self._sizes: deque[int] = deque()  # their sizes on the wire, bounded by catchup_bytes
        self._size = 0
        for event in events:
            self.remember(event)

    def remember(self, event: Event) -> None:
        size = wire_bytes(event)
        self._events.append(event)
        self._sizes.append(size)
        self._size += size
        while len(self._events) > self.config.catchup or self._size > self.config.catchup_bytes:
            self._events.popleft()
            self._size -= self._sizes.popleft()

    def oldest_id(self) -> int:
        """The id of the oldest event in memory (0 if none)."""
        return _seq(self._events[0]) if self._events else 0

    def for_newcomer(self) -> list[Message]:
        """The latest messages, marked earlier, bounded by `newcomer_messages` and `newcomer_bytes`."""
        shown: list[Message] = []
        size = 0
        for event in reversed(self._events):
            if isinstance(event, Message):
                size += wire_bytes(event)
                if len(shown) == self.config.newcomer_messages or size > self.config.newcomer_bytes:
                    break
                shown.append(dataclasses.replace(event, earlier=True))
        return shown[::-1]

    def catch_up(self, after: int, me: str, held: list[Private], newest: int,
                 gaps: list[tuple[int, int]]) -> list[Event]:
        """For a client back after the event id `after`: the public events since (its own reconnecting notice
        left out), the private messages `held` for it, and a `caught_up` saying how many were replayed and how
        many older ones memory no longer has, counted from the ids (`newest` being the room's last; `gaps` the
        ids that were never events), whatever the file still keeps."""
        missed = [event for event in self._events if _seq(event) > after
                  and not (isinstance(event, Reconnecting) and event.name == me)]
        oldest = self.oldest_id() if self._events else newest + 1
        missing = missing_ids(after, oldest, gaps)
        replay: list[Event] = [dataclasses.replace(e, earlier=True) if isinstance(e, Message) else e for e in missed]
        replay += held
        count = sum(isinstance(event, (Message, Private)) for event in replay)
        return [*replay, CaughtUp(count=count, missing=missing)]

    def snapshot(self) -> list[Event]:
        """The events in memory now, for a search outside the room's lock (a copy of the references only)."""
        return list(self._events)
