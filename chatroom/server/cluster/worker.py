"""A thread of the cluster's engine, supervised: it runs until halted, and an unexpected failure is logged with its
traceback and reported (the server then stops), never lost with the thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("chatroom.server")


class Worker:
    failure = "a thread of the cluster's engine failed"  # what the log says when `run` fails

    def __init__(self, name: str, on_failure: Callable[[BaseException], None]) -> None:
        self.on_failure = on_failure
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervised, name=name, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Ask the thread to end (`stop` waits for it)."""
        self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _supervised(self) -> None:
        try:
            self.run()
        except Exception as exc:
            log.exception(self.failure)
            self.on_failure(exc)
