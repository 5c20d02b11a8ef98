"""The thread that follows the room's stream: reads it from an id, and hands its records in order to the room.

While Redis is unreachable it waits (0.1 s doubling to 1 s) and reads on from where it was when Redis is back,
so nothing is skipped; an unexpected failure, or one of the room's callback, is logged and reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .link import BLOCK, UNREACHABLE, Link
from .records import Reading, Record
from .worker import Worker

log = logging.getLogger("chatroom.server")

BATCH = 1000  # entries read at once
RETRY_FIRST, RETRY_MOST = 0.1, 1.0  # seconds between attempts while Redis does not answer


class Follower(Worker):
    failure = "the cluster's reader failed: this server no longer follows the room"

    def __init__(self, link: Link, after: int, deliver: Callable[[list[Record]], None],
                 on_failure: Callable[[BaseException], None]) -> None:
        super().__init__("cluster reader", on_failure)
        self.link = link
        self.reading = Reading(after)
        self.deliver = deliver
        self._client = link.reader()
        self._unreadable_said = False

    def run(self) -> None:
        wait = RETRY_FIRST
        while not self.stopping.is_set():
            asked = time.monotonic()
            try:
                records = self._read()
            except UNREACHABLE as exc:
                self.link.availability.failed(exc)
                self.stopping.wait(wait)
                wait = min(2 * wait, RETRY_MOST)
                continue
            wait = RETRY_FIRST
            self.link.availability.ok(asked)
            if records:
                self.deliver(records)

    def _read(self) -> list[Record]:
        entries = self.link.entries(self._client, self.reading.position, BATCH, BLOCK)
        if not entries or self.stopping.is_set():
            return []
        records = self.reading.records(entries, self.link.texts(self._client, entries))
        self.link.saw(self.reading.last)
        if self.reading.unreadable and not self._unreadable_said:
            self._unreadable_said = True
            log.warning("the room's stream has an entry this server cannot read (%s); it is left out, and so is "
                        "any other like it", self.reading.unreadable[0])
        return records
