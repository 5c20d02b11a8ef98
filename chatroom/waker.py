"""A select loop's wake-up from other threads: a byte on a socket pair (socketpair works on Windows too, where
select takes only sockets). The client's loops and the server's sender and reader threads use it."""

from __future__ import annotations

import select
import socket
import threading
import time

# The waking side waits for room rather than failing at once: a non-blocking send that said "would block" was
# taken to mean a byte was waiting already, but Wine's loopback says so with the buffer near empty, and the
# byte lost left the server's sender asleep with work (tests/test_stress.py under Wine). Only a reader that
# left a buffer's worth of wake-ups unread makes it wait, and never longer than this.
WAKE_TIMEOUT = 1.0
DRAIN = 4096  # bytes of wake-ups one recv takes: fewer came when it takes fewer


def _writable(sock: socket.socket, timeout: float) -> None:
    """Wait until `sock` may take bytes, at most `timeout` seconds: poll where there is one (select takes no
    descriptor above 1023 on POSIX), select on Windows (sockets only, no such limit)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        poller.poll(timeout * 1000)
    else:
        select.select([], [sock], [], timeout)


class Waker:
    """`sock` is what the loop selects on; `wake` from any thread, also after `close`; `drain` in the loop's."""

    def __init__(self) -> None:
        self.sock, self._poke = socket.socketpair()
        # Both non-blocking: a socket with a timeout polls before every send, a second system call per wake-up.
        self.sock.setblocking(False)
        self._poke.setblocking(False)
        # A wake and the close, from two threads, never meet on the socket (a send on a descriptor being closed,
        # perhaps already reused).
        self._lock = threading.Lock()
        self._closed = False

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            deadline = time.monotonic() + WAKE_TIMEOUT
            while True:
                try:
                    self._poke.send(b"\0")
                    return
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return  # a second of unread wake-ups: the loop has plenty to wake it
                    _writable(self._poke, left)
                except OSError:
                    return

    def drain(self) -> None:
        """Take the wake-ups that came, so that select waits again: one recv, unless it filled its buffer."""
        try:
            while len(self.sock.recv(DRAIN)) == DRAIN:
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
