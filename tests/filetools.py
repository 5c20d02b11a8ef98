"""What the file tests share: `FileUser`, the real client stack (loop, session, transfers) in this process
against a real server, watched through what it hands its front end; `DataRelay`, which passes connections on to
a server and slows down or cuts the data connections among them at chosen byte counts, counting their bytes;
and a raw data connection for tests that play a misbehaving client."""

from __future__ import annotations

import hashlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import TIMEOUT
from fakeserver import Relay

from chatroom.client.connection import Attempt, dialer
from chatroom.client.loop import Background, Ended, Loop, Progress, Received
from chatroom.client.session import Notice, Timing
from chatroom.client.transfers import Transfers
from chatroom.protocol import BANNER_PREFIX, Event, Hello

FAST = Timing(first_delay=0.05, most_delay=0.5)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileUser:
    """A chatroom client as the console and the window run it, minus the screen: `items` is what it handed
    over (events, notices, views, transfer rows)."""

    def __init__(self, port: int, name: str, downloads: Path, context: object = None, host: str = "127.0.0.1",
                 retry: tuple[float, float] = (0.05, 0.5)) -> None:
        dial = dialer(host, port, context)  # type: ignore[arg-type]
        attempt = Attempt(dial, Hello(name, reconnect=True))
        assert attempt.done.wait(TIMEOUT), "no login"
        assert isinstance(attempt.result, tuple), attempt.result
        connection, welcome = attempt.result
        self.transfers = Transfers(downloads, retry=retry)
        self.loop = Loop(connection, welcome, dial, timing=FAST, transfers=self.transfers)
        self.background = Background(self.loop)
        self.items: list[object] = []
        self.background.start()

    def send(self, line: str) -> None:
        self.background.send(line)

    def expect(self, predicate: Callable[[object], bool], timeout: float = TIMEOUT) -> object:
        """The first item handed over (or seen before) for which `predicate` holds."""
        for item in self.items:
            if predicate(item):
                return item
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.background.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"not handed over in time; last: {self.items[-8:]}") from None
            self.items.append(item)
            if predicate(item):
                return item

    def notice(self, text: str, timeout: float = TIMEOUT) -> str:
        found = self.expect(lambda item: isinstance(item, Notice) and text in item.text, timeout)
        return found.text  # type: ignore[attr-defined]

    def event(self, kind: type[Event], timeout: float = TIMEOUT, **fields: object) -> Event:
        found = self.expect(lambda item: isinstance(item, Received) and isinstance(item.event, kind)
                            and all(getattr(item.event, k) == v for k, v in fields.items()), timeout)
        return found.event  # type: ignore[attr-defined]

    def progress(self, predicate: Callable[[tuple], bool], timeout: float = TIMEOUT) -> tuple:
        found = self.expect(lambda item: isinstance(item, Progress) and predicate(item.rows), timeout)
        return found.rows  # type: ignore[attr-defined]

    def close(self) -> None:
        self.background.quit()
        self.expect(lambda item: isinstance(item, Ended), TIMEOUT * 2)
        self.background.join(TIMEOUT)


class DataRelay(Relay):
    """A Relay whose data connections (a first client line that names a transfer) are paced at `rate` bytes a
    second and cut after the payload byte counts `cuts` gives, one per connection (None: not cut). `payload`
    counts the file bytes each kind carried, over all its connections."""

    def __init__(self, upstream: int, rate: float | None = None, cuts: list[int | None] | None = None) -> None:
        self.rate = rate
        self.cuts = list(cuts or [])
        self.payload = {"upload": 0, "download": 0}
        self.connections = {"upload": 0, "download": 0}
        super().__init__(upstream)

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        threading.Thread(target=self._look, args=(client, server), daemon=True).start()

    def _look(self, client: socket.socket, server: socket.socket) -> None:
        """Pass the banner and the client's first line on, then the rest as that line says."""
        try:
            client.sendall(_line_from(server))
            first = _line_from(client)
            server.sendall(first)
        except OSError:
            return _shut(client, server)
        kind = json.loads(first).get("type") if first.startswith(b"{") else None
        if kind not in ("upload", "download"):
            return super()._serve(client, server)
        with self.lock:
            self.connections[kind] += 1
            cut = self.cuts.pop(0) if self.cuts else None
        bulk, back = (client, server) if kind == "upload" else (server, client)
        if kind == "download":  # the ready line is not payload
            try:
                client.sendall(_line_from(server))
            except OSError:
                return _shut(client, server)
        else:
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._bulk(kind, bulk, back, cut)

    def _bulk(self, kind: str, source: socket.socket, target: socket.socket, cut: int | None) -> None:
        moved, start = 0, time.monotonic()
        try:
            while cut is None or moved < cut:
                data = source.recv(min(16384, (cut - moved) if cut is not None else 16384))
                if not data:
                    break
                target.sendall(data)
                moved += len(data)
                with self.lock:
                    self.payload[kind] += len(data)
                if self.rate:
                    ahead = moved / self.rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing, as a slow link would
            if kind == "upload" and (cut is None or moved < cut):
                return  # the client sent all: the server's answer goes back by the other pump
        except OSError:
            pass
        _shut(source, target)


def _line_from(sock: socket.socket) -> bytes:
    """One line, byte by byte (nothing after it is taken from the socket)."""
    data = b""
    while not data.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("closed")
        data += byte
    return data


def _shut(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class DataConnection:
    """A data connection as a test plays it: the banner read, its first line sent, the answer read."""

    def __init__(self, port: int, direction: str, token: str, offset: int = 0, receive_buffer: int = 0) -> None:
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.rest = b""
        assert self.line().startswith(BANNER_PREFIX)
        self.sock.sendall(json.dumps({"type": direction, "token": token, "offset": offset}).encode() + b"\n")
        self.answer = json.loads(self.line())

    def line(self) -> str:
        while b"\n" not in self.rest:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"closed; got {self.rest!r}")
            self.rest += data
        line, _, self.rest = self.rest.partition(b"\n")
        return line.decode()

    def read_all(self, size: int) -> bytes:
        data, self.rest = self.rest, b""
        while len(data) < size:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return data

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()
