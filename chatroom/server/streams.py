"""A connection as the server uses it: a reader thread recv()s with a timeout, the sender thread
send_nowait()s and is never blocked by one slow peer.

Where the system has MSG_DONTWAIT (Linux, macOS, the BSDs) the socket stays blocking: the reader waits in
one recv, its timeout the kernel's SO_RCVTIMEO, and each send alone is non-blocking. A read is then one
syscall and one hand-over of the GIL (docs/performance.md). Elsewhere (Windows) the socket is non-blocking
and the reader waits for it with poll/select. For TLS, OpenSSL forbids using one SSL object from two threads
at once (python/cpython#151508 crashes), so every TLS recv and send is made under one lock, and the waiting
happens outside it: TLS takes the second way everywhere.
"""

from __future__ import annotations

import functools
import socket
import ssl
import struct
import threading
import time

from ..waker import wait_ready

TLS_RECORD = 16 * 1024  # the most plaintext one TLS record carries
DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where the system has none (Windows)
TIMEOUT_SLACK = 0.01  # seconds a reader's timeout may fire late, so a moving deadline costs no setsockopt


def shut(sock: socket.socket) -> None:
    """The TCP shutdown both ways (it wakes a reader waiting on the socket), whatever state it is in."""
    try:
        # socket.socket's: SSLSocket.shutdown would also drop its SSL object under a running recv.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by us


class PlainStream:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.timeout: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout  # the reader's; the sender never waits

    def _attempt_recv(self, size: int) -> tuple[bytes | None, bool]:
        """(data, None) or (None, wait for writing?) when the socket has nothing yet."""
        try:
            return self.sock.recv(size), False
        except BlockingIOError:
            return None, False

    def recv(self, size: int) -> bytes:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            data, want_write = self._attempt_recv(size)
            if data is not None:
                return data
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0 or not wait_ready(self.sock, want_write, remaining):
                raise TimeoutError("timed out")

    def recv_into(self, into: memoryview) -> int:
        """As `recv`, into a buffer (a file's bytes, transfers.py): the count, 0 when the peer closed."""
        data = self.recv(len(into))
        into[:len(data)] = data
        return len(data)

    def send_nowait(self, data: bytes) -> int:
        """Bytes sent, maybe 0; never blocks."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    def finish(self) -> None:
        """Say goodbye and shut the connection both ways, which wakes its reader; never blocks."""
        shut(self.sock)


@functools.cache
def _timeval() -> str:
    """struct timeval as this system's SO_RCVTIMEO takes it: a 32-bit system with a 64-bit time_t (Debian's
    armhf and i386 since trixie, musl 1.2) wants two 64-bit fields where "@ll" packs two of 32 bits."""
    with socket.socket() as probe:
        size = len(probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    return "@qq" if size == 16 else "@ll"


class DirectStream(PlainStream):
    """A plain connection on a system with MSG_DONTWAIT: the reader blocks in recv, the sender never waits."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(True)
        self.timeout = None
        self._set_timeout(None)

    def settimeout(self, timeout: float | None) -> None:
        # A longer timeout than needed would fire late; a shorter one only wakes the reader early, which then
        # asks again. So the kernel is told only when the wanted one differs by more than the slack.
        current = self.timeout
        if (timeout is None) != (current is None) or (
                timeout is not None and current is not None and abs(timeout - current) > TIMEOUT_SLACK):
            self._set_timeout(timeout)

    def _set_timeout(self, timeout: float | None) -> None:
        self.timeout = timeout
        # SO_RCVTIMEO 0 waits for ever; a timeout of 0 still waits a microsecond.
        seconds = 0.0 if timeout is None else max(timeout, 1e-6)
        whole = int(seconds)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack(_timeval(), whole, int((seconds - whole) * 1e6)))

    def recv(self, size: int) -> bytes:
        try:
            return self.sock.recv(size)
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError("timed out") from None

    def recv_into(self, into: memoryview) -> int:
        try:
            return self.sock.recv_into(into)  # straight into the buffer: no copy
        except BlockingIOError:
            raise TimeoutError("timed out") from None

    def send_nowait(self, data: bytes) -> int:
        try:
            return self.sock.send(data, DONTWAIT)
        except BlockingIOError:
            return 0


class TLSStream(PlainStream):
    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(sock)
        self._lock = threading.Lock()

    def _attempt_recv(self, size: int) -> tuple[bytes | None, bool]:
        with self._lock:
            try:
                return self.sock.recv(size), False
            except ssl.SSLWantReadError:
                return None, False
            except ssl.SSLWantWriteError:
                return None, True
            except ssl.SSLZeroReturnError:
                return b"", False

    def send_nowait(self, data: bytes) -> int:
        with self._lock:
            try:
                # A TLS send takes all or nothing: one record's worth at a time lets the sender see progress.
                return self.sock.send(data[:TLS_RECORD])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return 0

    def finish(self) -> None:
        assert isinstance(self.sock, ssl.SSLSocket)
        with self._lock:
            try:
                # Sends our close_notify; on a non-blocking socket it then stops waiting for the peer's.
                self.sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass  # best effort: the peer may be gone already
        super().finish()
