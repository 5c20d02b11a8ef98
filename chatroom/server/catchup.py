"""The room's latest public events in memory: what a newcomer sees first, what a returning client missed, and
the newest part of every /history and /search answer.

Memory only: the room calls it under its lock. Bounded by `Config.catchup` events and `catchup_bytes`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable

from ..protocol import CaughtUp, Event, Message, Private, Reconnecting
from .config import Config


def wire_bytes(event: Event) -> int:
    """An upper bound of a public event's size on the wire (JSON escapes '\\' and '"')."""
    if isinstance(event, Message):
        return len(event.text.encode()) + event.text.count("\\") + event.text.count('"') + 160
    return 160


def matches(words: str, text: str) -> bool:
    """The in-memory search: every word, ignoring case."""
    folded = text.casefold()
    return all(word.casefold() in folded for word in words.split())


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

    def catch_up(self, after: int, me: str, held: list[Private], latest: int, counted: int | None) -> list[Event]:
        """For a client back after the event id `after`: the public events since (its own reconnecting notice
        left out), the private messages `held` for it, and a `caught_up` saying how many were replayed and how
        many older ones memory no longer has (`counted` on disk by the caller; else an upper bound from the ids,
        `latest` being the room's last)."""
        missed = [event for event in self._events if _seq(event) > after
                  and not (isinstance(event, Reconnecting) and event.name == me)]
        oldest = self.oldest_id() if self._events else latest + 1
        if after >= oldest - 1:
            missing = 0
        elif counted is not None:
            missing = counted
        else:  # ids also number private messages, so this is an upper bound
            missing = oldest - after - 1
        replay: list[Event] = [dataclasses.replace(e, earlier=True) if isinstance(e, Message) else e for e in missed]
        replay += held
        count = sum(isinstance(event, (Message, Private)) for event in replay)
        return [*replay, CaughtUp(count=count, missing=missing)]

    def messages(self, words: str | None, count: int) -> list[Message]:
        """The latest messages in memory (containing every word of `words`)."""
        found = [e for e in self._events if isinstance(e, Message) and (not words or matches(words, e.text))]
        return found[-count:]
