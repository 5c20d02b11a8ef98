"""Servers the client's tests play: `FakeServer`, a chatroom server scripted line by line (a greeting or none,
events, silence, a hang-up) that sees what the client sends; and `Relay`, which passes connections on to a
real server and cuts them.

A FakeServer's connections are accepted in the test's thread (`accept`) while the client under test runs in a
process or thread of its own; `serve` accepts in a thread instead, for a client call that blocks until it has
heard the answer (connect, login).
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from conftest import TIMEOUT

from chatroom.codecs import encode_json
from chatroom.protocol import BANNER, Event, Hello, Welcome, parse_hello

Said = Event | str | bytes  # an event as a JSON line, a str as a line of text, bytes as they are


class Peer:
    """One connection, from the server's side."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self._buffer = b""

    def say(self, *items: Said) -> None:
        self.sock.sendall(b"".join(encode_json(item) if isinstance(item, Event)
                                   else item.encode() + b"\n" if isinstance(item, str) else item for item in items))

    def line(self, timeout: float = TIMEOUT) -> str:
        """The client's next line (TimeoutError if none comes in time, EOFError if it hangs up first)."""
        self.sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"the client closed the connection; unread: {self._buffer!r}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def hello(self) -> Hello:
        return parse_hello(self.line())

    def welcome(self, *events: Event, users: list[str] | None = None, **fields: object) -> Hello:
        """Greet, read the hello, welcome the name it asks for (with `users` and the welcome's `fields`), then
        say `events`."""
        self.say(BANNER)
        hello = self.hello()
        self.say(Welcome(hello.name, users or [hello.name], **fields), *events)
        return hello

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """Whether the client closes the connection within `timeout` (what it sends meanwhile is skipped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def hang_up(self) -> None:
        """The end of the connection, as the client will read it (what it sends is still read here)."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


class FakeServer:
    """A chatroom server played by the test, on 127.0.0.1."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.peers: list[Peer] = []

    def accept(self, timeout: float = TIMEOUT) -> Peer:
        self.listener.settimeout(timeout)
        peer = Peer(self.listener.accept()[0])
        self.peers.append(peer)
        return peer

    def serve(self, *items: Said) -> Callable[[], Peer]:
        """Accept the next connection in a thread and say `items` at once; the function returned gives its
        Peer (once the client call that needed the answer has returned)."""
        accepted: queue.SimpleQueue[Peer] = queue.SimpleQueue()

        def answer() -> None:
            peer = self.accept()
            peer.say(*items)
            accepted.put(peer)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()

        def peer() -> Peer:
            thread.join(TIMEOUT)
            return accepted.get_nowait()

        return peer

    def close(self) -> None:
        self.listener.close()
        for peer in self.peers:
            peer.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class Relay:
    """Passes TCP connections on to a server's port. `cut` ends every connection through it; while `held`, it
    listens no more, so a client's attempts are refused until `release`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.pairs: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.release()

    def release(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def hold(self) -> None:
        assert self.listener is not None
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread, which then ends
        except OSError:
            pass  # Windows: no shutdown of a listening socket (WSAENOTCONN); closing it wakes the accept()
        self.listener.close()
        self.listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=TIMEOUT)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.pairs += [client, server]
            self._serve(client, server)

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        """Pass the bytes on both ways, each in a thread (a relay that looks at them does more)."""
        for source, target in [(client, server), (server, client)]:
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):  # one side gone: the other goes too, as a lost connection would
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for sock in pairs:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        if self.listener is not None:
            self.hold()
        self.cut()
