"""The chat server: socketserver wiring, one reader and one writer per connection, shutdown, CLI.

Only I/O lives here; what a line means is decided by `commands` and `room`.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator, Sequence

from . import commands, render
from .names import NameProblem
from .protocol import (
    BANNER, LINE_LIMIT, NAME_PROMPT, PROTOCOL_VERSION, BadEncoding, Error, Event, FrameEvent, Line,
    LineFramer, LineTooLong, ProtocolError, Shutdown, encode_json, is_hello, parse_hello, sanitize,
)
from .room import DEFAULT_MAX_MEMBERS, DEFAULT_OUTBOX_LIMIT, Codec, Member, Outbox, Room

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 65432
SHUTDOWN_GRACE = 1.5  # seconds clients get to receive the shutdown notice; the whole stop stays under 2 s
WRITER_GRACE = 2.0  # seconds a leaving connection's queued events get to reach a peer that reads slowly

log = logging.getLogger("chatroom.server")


def json_codec(event: Event, me: str) -> bytes:
    return encode_json(event)


def plain_codec(event: Event, me: str) -> bytes:
    text = render.render(event, me)
    return (text + "\n").encode() if text else b""


def _quietly_shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by us


class ChatHandler(socketserver.BaseRequestHandler):
    """One connection: this thread reads and dispatches, a writer thread drains the outbox."""

    server: ChatServer
    request: socket.socket

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = "%s:%s" % self.client_address[:2]
        self.codec: Codec = plain_codec
        self.member: Member | None = None
        self.outbox = Outbox(self.server.outbox_limit)
        self.outbox.put((BANNER + "\n").encode())
        self.writer = threading.Thread(target=self._write, name=f"writer {self.peer}", daemon=True)
        self.writer.start()
        self.server.track(self)

    def handle(self) -> None:
        reason = "error"
        try:
            reason = self._serve()
        except (ConnectionError, TimeoutError):
            reason = "lost"
        except OSError as exc:
            reason = "lost"
            log.debug("%s: %s", self.peer, exc)
        except Exception:
            log.exception("unexpected error on the connection from %s", self.peer)
        finally:
            if self.member is not None:
                self.server.room.leave(self.member, reason)
            self.outbox.close()

    def finish(self) -> None:
        self.writer.join(WRITER_GRACE)
        if self.writer.is_alive():
            _quietly_shut(self.request)
            self.writer.join()
        self.server.untrack(self)

    # --- called from other threads ----------------------------------------

    def disconnect(self) -> None:
        _quietly_shut(self.request)

    def close_for_shutdown(self) -> None:
        """Tell a connection that has not logged in yet; members hear it from the room."""
        if self.member is None:
            self.outbox.put(self.codec(Shutdown(), ""))
            self.outbox.close()

    # --- the reading side ---------------------------------------------------

    def _frames(self) -> Iterator[FrameEvent]:
        framer = LineFramer(LINE_LIMIT)
        while data := self.request.recv(65536):
            yield from framer.feed(data)

    def _serve(self) -> str:
        """Read until the connection ends; the leave reason."""
        for frame in self._frames():
            if isinstance(frame, LineTooLong):
                self._error("line_too_long", f"that line was longer than {frame.limit} bytes and was not sent")
                continue
            if isinstance(frame, BadEncoding):
                self._error("bad_encoding", "that line was not valid UTF-8 and was not sent")
                continue
            assert isinstance(frame, Line)
            text = sanitize(frame.text)
            if self.member is None:
                if not self._login(text):
                    return "closed"
                continue
            command = commands.parse(text)
            if command is not None:
                self.server.room.handle(self.member, command)
            if self.member.gone:
                return "quit"
        return "closed"

    def _login(self, text: str) -> bool:
        """Try one username line; False when the connection should end."""
        if is_hello(text):
            self.codec = json_codec
        if self.codec is json_codec:
            try:
                hello = parse_hello(text)
            except ProtocolError as exc:
                self._error("bad_hello", str(exc))
                return True
            if hello.version != PROTOCOL_VERSION:
                self._error("unsupported_version",
                            f"this server speaks protocol version {PROTOCOL_VERSION}, not {hello.version}")
                return False
            name = hello.name
        else:
            name = text
        try:
            self.member = self.server.room.join(name, self.codec, self.outbox, self.disconnect)
        except NameProblem as problem:
            log.debug("%s: refused %r: %s", self.peer, name, problem.message)
            self._error(problem.code, problem.message)
            if problem.code in ("room_full", "shutting_down"):
                return False
            if self.codec is plain_codec:
                self.outbox.put((NAME_PROMPT + "\n").encode())
            return True
        mode = "JSON" if self.codec is json_codec else "plain-text"
        log.info("%s joined from %s (%s mode)", self.member.name, self.peer, mode)
        return True

    def _error(self, code: str, message: str) -> None:
        if self.member is not None:
            self.server.room.error(self.member, code, message)
        else:
            self.outbox.put(self.codec(Error(code=code, message=message), ""))

    # --- the writing side -----------------------------------------------------

    def _write(self) -> None:
        try:
            while (data := self.outbox.take()) is not None:
                self.request.sendall(data)
        except OSError:
            self.outbox.close(flush=False)
        finally:
            # Wakes the reader when the room ended this connection (quit, drop, shutdown).
            _quietly_shut(self.request)


def _address_family(host: str) -> socket.AddressFamily:
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


class ChatServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR would let a second server take a port that is in use.
    allow_reuse_address = os.name != "nt"
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], room: Room | None = None,
                 outbox_limit: int = DEFAULT_OUTBOX_LIMIT) -> None:
        self.address_family = _address_family(address[0])
        self.room = room or Room()
        self.outbox_limit = outbox_limit
        self._handlers: set[ChatHandler] = set()
        self._handlers_changed = threading.Condition()
        super().__init__(address, ChatHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def track(self, handler: ChatHandler) -> None:
        with self._handlers_changed:
            self._handlers.add(handler)

    def untrack(self, handler: ChatHandler) -> None:
        with self._handlers_changed:
            self._handlers.discard(handler)
            self._handlers_changed.notify_all()

    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Tell every client the server is going, give them `grace` seconds, then close everything.

        The caller has ended serve_forever already (Ctrl+C, or shutdown() from another thread).
        """
        self.room.shutdown()
        with self._handlers_changed:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.close_for_shutdown()
        with self._handlers_changed:
            self._handlers_changed.wait_for(lambda: not self._handlers, timeout=grace)
            for handler in self._handlers:
                handler.disconnect()
        self.server_close()


# --- command line ---------------------------------------------------------------

def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Run a chatroom server. Clients connect with: python client.py HOST PORT",
        epilog="examples:  python server.py 8080  |  python server.py 0.0.0.0 8080  |  "
               "python server.py --host ::1 --port 8080",
    )
    parser.add_argument("address", nargs="*", metavar="[HOST] PORT",
                        help=f"where to listen; one argument is the port (default {DEFAULT_HOST} {DEFAULT_PORT})")
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST}, this computer only; "
                                       "0.0.0.0 shares the room on your network)")
    parser.add_argument("--port", type=_port, help=f"TCP port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--max-clients", type=int, default=DEFAULT_MAX_MEMBERS, metavar="N",
                        help=f"most users in the room at once (default {DEFAULT_MAX_MEMBERS})")
    parser.add_argument("--sendq", type=int, default=DEFAULT_OUTBOX_LIMIT, metavar="BYTES",
                        help="bytes queued for a client that reads slowly before it is dropped "
                             f"(default {DEFAULT_OUTBOX_LIMIT})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (every refused name, every error)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    address = list(args.address)
    if len(address) > 2:
        parser.error("expected at most HOST and PORT")
    if address and (len(address) == 2 or address[-1].isdigit()):
        try:
            port = _port(address.pop())
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
        if args.port is not None and args.port != port:
            parser.error("the port is given twice")
        args.port = port
    if address:
        if args.host is not None and args.host != address[0]:
            parser.error("the host is given twice")
        args.host = address[0]
    args.host = args.host or DEFAULT_HOST
    args.port = DEFAULT_PORT if args.port is None else args.port
    if args.max_clients < 1:
        parser.error("--max-clients must be at least 1")
    if args.sendq < 1024:
        parser.error("--sendq must be at least 1024 bytes")
    return args


def bind_error_message(exc: OSError, host: str, port: int) -> str:
    """One sentence a person can act on, for an address the server could not take."""
    other = 8081 if port == 8080 else 8080
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: no such host or address"
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
        return (f"port {port} on {host} is already in use (is another server running?); "
                f"try another port, e.g. python server.py {other}")
    if exc.errno in (errno.EACCES, errno.EPERM, getattr(errno, "WSAEACCES", None)):
        return (f"port {port} needs administrator rights here (ports below 1024 do on Linux and macOS); "
                f"try a port from 1024 up, e.g. python server.py {other}, or see the README for port 80")
    if exc.errno in (errno.EADDRNOTAVAIL, getattr(errno, "WSAEADDRNOTAVAIL", None)):
        return f"cannot listen on {host}: this computer has no such address"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    room = Room(
        max_members=args.max_clients,
        on_leave=lambda member, reason: log.info("%s left (%s)", member.name, render.leave_reason(reason)),
    )
    try:
        server = ChatServer((args.host, args.port), room, outbox_limit=args.sendq)
    except OSError as exc:
        print(f"server.py: error: {bind_error_message(exc, args.host, args.port)}", file=sys.stderr)
        return 2
    host = args.host if args.host not in ("0.0.0.0", "::") else "<this computer's address>"
    print(f"chatroom server listening on {args.host} port {server.port}; "
          f"connect with: python client.py {host} {server.port}  (Ctrl+C stops it)", flush=True)
    # SIGBREAK is Ctrl+Break on Windows, and what a launcher can send to a console process there.
    for name in ("SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop_on_signal)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        log.info("stopping: telling %d users", len(room.names()))
    finally:
        server.stop()
    return 0
