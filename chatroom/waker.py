"""A select loop's wake-up from other threads: a byte on a socket pair (socketpair works on Windows too, where
select takes only sockets). The client's loops and the server's sender and reader threads use it; its wait for
a socket to take bytes (`wait_ready`) is the server's streams' too."""

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
CLOSE_CHECK = 0.05  # how often a wake waiting for room looks whether the waker was closed meanwhile


def wait_ready(sock: socket.socket, for_write: bool, timeout: float | None) -> bool:
    """Wait until the socket can be read (or written); False on timeout. Poll where there is one (select takes
    no descriptor above 1023 on POSIX: servers with many connections), select on Windows (sockets only)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT if for_write else select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    ready = select.select([], [sock], [], timeout) if for_write else select.select([sock], [], [], timeout)
    return bool(ready[0] or ready[1])


class Waker:
    """`sock` is what the loop selects on; `wake` from any thread, also after `close`; `drain` in the loop's."""

    def __init__(self) -> None:
        self.sock, self._poke = socket.socketpair()
        # Both non-blocking: a socket with a timeout polls before every send, a second system call per wake-up.
        self.sock.setblocking(False)
        self._poke.setblocking(False)
        # A wake and the close, from two threads, never meet on the socket (a send on a descriptor being closed,
        # perhaps already reused): the sockets close when the close has come and no wake is using them. The
        # lock guards only that count, never a wait (a wake may wait for room up to WAKE_TIMEOUT).
        self._lock = threading.Lock()
        self._waking = 0
        self._closed = False

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._waking += 1
        try:
            self._send()
        finally:
            with self._lock:
                self._waking -= 1
                last_out = self._closed and not self._waking
            if last_out:
                self._close_sockets()

    def _send(self) -> None:
        deadline = time.monotonic() + WAKE_TIMEOUT
        while True:
            try:
                self._poke.send(b"\0")
                return
            except BlockingIOError:
                if not self._wait_for_room(deadline):
                    return  # closed, or a second of unread wake-ups: the loop has plenty to wake it
            except OSError:
                return

    def _wait_for_room(self, deadline: float) -> bool:
        """Whether the socket says it has room before the deadline, the waker still open. The wait comes in
        slices only to see a close; the send is tried again when there is room, not after each slice."""
        while not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if wait_ready(self._poke, True, min(left, CLOSE_CHECK)):
                return True
        return False

    def drain(self) -> None:
        """Take the wake-ups that came, so that select waits again: one recv, unless it filled its buffer."""
        try:
            while len(self.sock.recv(DRAIN)) == DRAIN:
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """At once; a wake waiting for room at that moment closes the sockets when it is done."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = not self._waking
        if idle:
            self._close_sockets()

    def _close_sockets(self) -> None:
        self.sock.close()
        self._poke.close()
