"""The shape of the server's sender and reader threads: a supervised thread that waits in a selector another
thread can wake (waker.py)."""

from __future__ import annotations

import logging
import selectors
import threading
from collections.abc import Callable

from ..waker import Waker

log = logging.getLogger("chatroom.server")


class WakingSelector:
    """`selector` to register one's own sockets with; `wake()` from any thread ends the current `select`,
    whose key for the wake-up `woke` recognises (and empties)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._waker = Waker()
        self.selector.register(self._waker.sock, selectors.EVENT_READ, self)

    def wake(self) -> None:
        self._waker.wake()

    def woke(self, key: selectors.SelectorKey) -> bool:
        """Whether a key `select` returned is the wake-up; its bytes are read then."""
        if key.data is not self:
            return False
        self._waker.drain()
        return True

    def close(self) -> None:
        self.selector.close()
        self._waker.close()


class SelectorThread:
    """A thread named `name` that runs `_run`, waiting in `_selector`; `stop` wakes it and waits for it. An
    unexpected error is logged and `on_crash` hears of it: the server stops rather than go on without it."""
    name = ""

    def __init__(self, on_crash: Callable[[], None]) -> None:
        self._on_crash = on_crash
        self._wakeup = WakingSelector()
        self._selector = self._wakeup.selector
        self._lock = threading.Lock()
        self._stopping = False
        self.crashed = False
        self._thread = threading.Thread(target=self._supervised, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wakeup.wake()
        self._thread.join(5)
        self._wakeup.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _supervised(self) -> None:
        try:
            self._run()
        except Exception:
            self.crashed = True
            log.exception("the %s thread failed; stopping the server", self.name)
            self._on_crash()

    def _run(self) -> None:
        raise NotImplementedError
