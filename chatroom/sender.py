"""One thread that writes every connection's outbox: a batch per receiver, and never blocked by a slow one.

A connection's outbox tells the sender when it has something (`ready`); the sender takes everything queued
and sends it with one non-blocking send. What does not fit waits for the socket to become writable, while
the other connections go on. Waking one thread per message, instead of one writer thread per member,
is what keeps a large room fast (docs/performance.md).
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Protocol

from .room import Outbox


class Stream(Protocol):
    sock: socket.socket

    def send_nowait(self, data: bytes) -> int: ...

    def shutdown(self, how: int) -> None: ...


class Link:
    """One connection as the sender sees it."""

    def __init__(self, stream: Stream, outbox: Outbox) -> None:
        self.stream = stream
        self.outbox = outbox
        self.unsent = b""
        self.waiting = False  # registered until the socket is writable again
        self.abandoned = False  # the connection is going: drop what is unsent
        self.done = threading.Event()  # the outbox was closed and flushed (or abandoned), the socket shut


class Sender:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._ready: set[Link] = set()
        self._woken = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        self._thread.join(5)
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def ready(self, link: Link) -> None:
        """Called from any thread when a link's outbox has something, or was closed."""
        self.ready_many([link])

    def ready_many(self, links: list[Link]) -> None:
        """`ready` for the links of one broadcast, under one lock and with at most one wake-up."""
        with self._lock:
            self._ready.update(links)
            if self._woken:
                return
            self._woken = True
        self._wake()

    def abandon(self, link: Link) -> None:
        link.abandoned = True
        self.ready(link)

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except OSError:
            pass  # a wake-up byte is waiting already

    def _run(self) -> None:
        while True:
            batch = set()
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_reader:
                    try:
                        while self._wake_reader.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    link = key.data
                    self._selector.unregister(key.fileobj)
                    link.waiting = False
                    batch.add(link)
            with self._lock:
                if self._stopping:
                    return
                batch |= self._ready
                self._ready = set()
                self._woken = False
            for link in batch:
                self._flush(link)

    def _flush(self, link: Link) -> None:
        if link.done.is_set():
            return
        if link.abandoned:
            link.unsent = b""
            link.outbox.close(flush=False)
        for _ in range(2):  # what arrived during a send goes out at once, but one link cannot hog the loop
            if not link.unsent:
                link.unsent = link.outbox.take()
                if not link.unsent:
                    break
            try:
                sent = link.stream.send_nowait(link.unsent)
            except OSError:
                link.unsent = b""
                link.outbox.close(flush=False)
                break
            link.unsent = link.unsent[sent:]
            if link.unsent:
                if not link.waiting:
                    self._selector.register(link.stream.sock, selectors.EVENT_WRITE, link)
                    link.waiting = True
                return
        if link.outbox.closed and not link.unsent and not link.outbox.pending:
            self._finish(link)
        elif link.outbox.pending and not link.waiting:
            self.ready(link)  # more than two batches' worth: come back after the others

    def _finish(self, link: Link) -> None:
        if link.waiting:
            self._selector.unregister(link.stream.sock)
            link.waiting = False
        try:
            link.stream.shutdown(socket.SHUT_RDWR)  # wakes the reader when the room ended the connection
        except OSError:
            pass
        link.done.set()
