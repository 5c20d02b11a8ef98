"""The thread that follows the room's stream: reads it from an id, and hands its records in order to the room.

While Redis is unreachable it waits (0.1 s doubling to 1 s) and reads on from where it was when Redis is back,
so nothing is skipped; an unexpected failure, or one of the room's callback, is logged and reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from .link import BLOCK, UNREACHABLE, Link
from .records import Reading, Record

log = logging.getLogger("chatroom.server")

BATCH = 1000  # entries read at once
RETRY_FIRST, RETRY_MOST = 0.1, 1.0  # seconds between attempts while Redis does not answer


class Follower:
    def __init__(self, link: Link, after: int, deliver: Callable[[list[Record]], None],
                 on_failure: Callable[[BaseException], None]) -> None:
        self.link = link
        self.reading = Reading(after)
        self.deliver = deliver
        self.on_failure = on_failure
        self._client = link.reader()
        self._stop = threading.Event()
        self._unreadable_said = False
        self._thread = threading.Thread(target=self._supervised, name="cluster reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Ask the thread to end (`stop` waits for it)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(BLOCK + self.link.timeout + 1)

    def _supervised(self) -> None:
        try:
            self._run()
        except Exception as exc:
            log.exception("the cluster's reader failed: this server no longer follows the room")
            self.on_failure(exc)

    def _run(self) -> None:
        wait = RETRY_FIRST
        while not self._stop.is_set():
            try:
                records = self._read()
            except UNREACHABLE as exc:
                self.link.availability.failed(exc)
                self._stop.wait(wait)
                wait = min(2 * wait, RETRY_MOST)
                continue
            wait = RETRY_FIRST
            self.link.availability.ok()
            if records:
                self.deliver(records)

    def _read(self) -> list[Record]:
        entries = self.link.entries(self._client, self.reading.position, BATCH, BLOCK)
        if not entries or self._stop.is_set():
            return []
        records = self.reading.records(entries, self.link.texts(self._client, entries))
        self.link.saw(self.reading.last)
        if self.reading.unreadable and not self._unreadable_said:
            self._unreadable_said = True
            log.warning("the room's stream has an entry this server cannot read (%s); it is left out, and so is "
                        "any other like it", self.reading.unreadable[0])
        return records
