"""TLS for the server's connections: contexts, and a stream that one reader and one writer thread can share.

OpenSSL forbids using one SSL object from two threads at once (python/cpython#151508 crashes), so the
stream keeps the TLS socket non-blocking and makes every recv and send under one lock, waiting for the
socket outside the lock.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time

TLS_RECORD_HANDSHAKE = 0x16  # the first byte a TLS client sends


def server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def client_context(cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _wait(sock: socket.socket, for_write: bool, timeout: float | None) -> bool:
    """Wait until the socket is ready; False on timeout."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit, for servers with many connections
        poller = select.poll()
        poller.register(sock, select.POLLOUT if for_write else select.POLLIN)
        return bool(poller.poll(None if timeout is None else timeout * 1000))
    ready = select.select([], [sock], [], timeout) if for_write else select.select([sock], [], [], timeout)
    return bool(ready[0] or ready[1])


class TLSStream:
    """recv/sendall/settimeout/shutdown over an SSLSocket, safe for one reader and one writer thread."""

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self._tls = tls
        self._tls.setblocking(False)
        self._lock = threading.Lock()
        self._timeout: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout  # used by recv only: the writer is never cut off by the reader's timer

    def recv(self, size: int) -> bytes:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            with self._lock:
                try:
                    return self._tls.recv(size)
                except ssl.SSLWantReadError:
                    want_write = False
                except ssl.SSLWantWriteError:
                    want_write = True
                except ssl.SSLZeroReturnError:
                    return b""
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0 or not _wait(self._tls, want_write, remaining):
                raise TimeoutError("timed out")

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            with self._lock:
                try:
                    sent = self._tls.send(view)
                    view = view[sent:]
                    continue
                except ssl.SSLWantWriteError:
                    want_write = True
                except ssl.SSLWantReadError:
                    want_write = False
            _wait(self._tls, want_write, 1.0)

    def shutdown(self, how: int) -> None:
        # The TCP shutdown only: SSLSocket.shutdown would also drop the SSL object under a running recv.
        socket.socket.shutdown(self._tls, how)
