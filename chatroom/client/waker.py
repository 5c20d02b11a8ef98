"""A select loop's wake-up from other threads: a byte on a socket pair (socketpair works on Windows too)."""

from __future__ import annotations

import socket
import threading


class Waker:
    """`sock` is what the loop selects on; `wake` from any thread, also after `close`; `drain` in the loop's."""

    def __init__(self) -> None:
        self.sock, self._poke = socket.socketpair()
        self.sock.setblocking(False)
        self._poke.setblocking(False)
        # A wake and the close, from two threads, never meet on the socket (a send on a descriptor being closed,
        # perhaps already reused); the send never waits, so holding the lock for it does not either.
        self._lock = threading.Lock()
        self._closed = False

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._poke.send(b"\0")
            except OSError:
                pass  # a wake-up is waiting already

    def drain(self) -> None:
        """Take the wake-ups that came, so that select waits again."""
        try:
            while self.sock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.sock.close()
            self._poke.close()
