"""The chat server: socketserver wiring, a reader thread per connection and one sender, shutdown, CLI.

Only I/O lives here; what a line means is decided by `commands` and `room`.
"""

from __future__ import annotations

import argparse
import errno
import hmac
import logging
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from . import commands, render, tls
from .sender import Link, Sender
from .streams import PlainStream, TLSStream
from .cli import DEFAULT_HOST, DEFAULT_PORT, PASSWORD_ENV, port_type
from .names import NameProblem
from .protocol import (
    BANNER, LINE_LIMIT, NAME_PROMPT, PROTOCOL_VERSION, BadEncoding, Error, Event, FrameEvent, Line,
    LineFramer, LineTooLong, Ping, ProtocolError, Shutdown, encode_json, is_hello, parse_hello, sanitize,
)
from .ratelimit import FailureCounter, TokenBucket
from .room import DEFAULT_MAX_MEMBERS, DEFAULT_OUTBOX_LIMIT, Codec, Member, Room

SHUTDOWN_GRACE = 1.5  # seconds clients get to receive the shutdown notice; the whole stop stays under 2 s
FLUSH_GRACE = 2.0  # seconds a leaving connection's queued events get to reach a peer that reads slowly

PASSWORD_PROMPT = "Password:"
IDLE = object()  # what the reader yields when the socket was silent for its timeout

log = logging.getLogger("chatroom.server")


@dataclass
class Limits:
    """The server's defenses; docs/security.md gives each default and why."""
    rate: float = 2.0  # messages per second, refilled; 0 turns the limit off
    burst: int = 10  # messages at once
    login_timeout: float = 15.0  # seconds to finish logging in
    max_per_address: int = 10  # connections from one IP address
    ping_interval: float = 30.0  # JSON mode: silence before a ping, and then before a drop
    keepalive: float = 30.0  # plain mode: TCP keepalive idle time (probes every keepalive/3, 5 of them)
    password_failures: int = 5  # wrong passwords per address ...
    password_window: float = 60.0  # ... within this many seconds before the address is refused


def json_codec(event: Event, me: str) -> bytes:
    return encode_json(event)


def plain_codec(event: Event, me: str) -> bytes:
    text = render.render(event, me)
    return (text + "\n").encode() if text else b""


def _quietly_shut(sock: socket.socket) -> None:
    try:
        # The TCP shutdown: SSLSocket.shutdown would also drop its SSL object under a running recv.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by us


class ChatHandler(socketserver.BaseRequestHandler):
    """One connection: this thread reads and dispatches; the server's one Sender drains the outbox."""

    server: ChatServer
    request: socket.socket

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.keepalive(self.request)
        self.peer = "%s:%s" % self.client_address[:2]
        self.address = self.client_address[0]
        self.limits = self.server.limits
        self.stream: PlainStream | None = None
        self.link: Link | None = None
        self.codec: Codec = plain_codec
        self.member: Member | None = None
        self.pending_name: str | None = None  # a free name waiting for the room password
        self.bucket = TokenBucket(self.limits.rate, self.limits.burst, time.monotonic())
        self.ping_sent = False
        self.outbox = self.server.room.new_outbox(self.server.outbox_limit, on_ready=self._outbox_ready)
        self.accepted = self.server.track(self)

    def handle(self) -> None:
        reason = "error"
        try:
            if not self.accepted:
                log.warning("refused %s: more than %d connections from that address",
                            self.peer, self.limits.max_per_address)
                self.request.sendall(f"! too many connections from your address "
                                     f"(at most {self.limits.max_per_address})\n".encode())
                return
            self.request.settimeout(self.limits.login_timeout)
            if self.server.tls_context is not None:
                if not self._start_tls():
                    return
                assert isinstance(self.request, ssl.SSLSocket)
                self.stream = TLSStream(self.request)
            else:
                self.stream = PlainStream(self.request)
            self.stream.settimeout(self.limits.login_timeout)
            self.link = self.outbox.owner = Link(self.stream, self.outbox)
            self.outbox.put((BANNER + "\n").encode())
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
        if self.link is not None and not self.link.done.wait(FLUSH_GRACE):
            self.server.sender.abandon(self.link)  # a peer that does not read: stop waiting for it
            self.link.done.wait(FLUSH_GRACE)
        self.server.untrack(self)

    def _outbox_ready(self) -> None:
        if self.link is not None:
            self.server.sender.ready(self.link)

    def _start_tls(self) -> bool:
        """Wrap the connection in TLS; a plain-text client is told what to do instead."""
        first = self.request.recv(1, socket.MSG_PEEK)
        if first and first[0] != tls.TLS_RECORD_HANDSHAKE:
            self.request.sendall(b"! this server uses TLS: connect with --tls\n")
            log.info("%s: refused a plain-text connection (this server uses TLS)", self.peer)
            return False
        context = self.server.tls_context
        assert context is not None
        try:
            wrapped = context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("%s: TLS handshake failed: %s", self.peer, exc)
            return False
        self.request = wrapped  # socketserver closes this one at the end
        return True

    # --- called from other threads ----------------------------------------

    def disconnect(self) -> None:
        _quietly_shut(self.request)

    def close_for_shutdown(self) -> None:
        """Tell a connection that has not logged in yet; members hear it from the room."""
        if self.member is None:
            self.outbox.put(self.codec(Shutdown(), ""))
            self.outbox.close()
            if self.link is None:
                self.disconnect()  # still in the TLS handshake: nothing to flush

    # --- the reading side ---------------------------------------------------

    def _frames(self) -> Iterator[FrameEvent | object]:
        framer = LineFramer(LINE_LIMIT)
        stream = self.stream
        assert stream is not None
        while True:
            try:
                data = stream.recv(65536)
            except TimeoutError:
                yield IDLE
                continue
            if not data:
                return
            self.ping_sent = False
            yield from framer.feed(data)

    def _serve(self) -> str:
        """Read until the connection ends; the leave reason."""
        for frame in self._frames():
            if frame is IDLE:
                if self.member is None:
                    self._error("login_timeout", f"no login within {self.limits.login_timeout:g} seconds")
                    log.info("%s: closed, no login within %gs", self.peer, self.limits.login_timeout)
                    return "timeout"
                if self.ping_sent:
                    return "timeout"
                self.ping_sent = True
                self.server.room.send(self.member, Ping())
                continue
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
            if command is None:
                continue
            is_pong = isinstance(command, commands.Command) and command.kind == "pong"
            if not is_pong and not self.bucket.take(time.monotonic()):
                preview = text if len(text) <= 40 else text[:39] + "…"
                self._error("rate_limited", f'not sent: "{preview}" (at most {self.limits.burst} messages at once, '
                                            f"then {self.limits.rate:g} per second)")
                continue
            self.server.room.handle(self.member, command)
            if self.member.gone:
                return "quit"
        return "closed"

    def _logged_in(self, member: Member) -> None:
        mode = "JSON" if self.codec is json_codec else "plain-text"
        log.info("%s joined from %s (%s mode)", member.name, self.peer, mode)
        assert self.stream is not None
        if self.codec is json_codec:
            self.stream.settimeout(self.limits.ping_interval)
        else:
            self.stream.settimeout(None)  # a quiet reader is fine: TCP keepalive finds vanished ones

    def _login(self, text: str) -> bool:
        """One login line (a name, a hello or a password); False when the connection should end."""
        password = None
        if self.pending_name is not None:
            name, password = self.pending_name, text
        elif is_hello(text) or self.codec is json_codec:
            self.codec = json_codec
            try:
                hello = parse_hello(text)
            except ProtocolError as exc:
                self._error("bad_hello", str(exc))
                return True
            if hello.version != PROTOCOL_VERSION:
                self._error("unsupported_version",
                            f"this server speaks protocol version {PROTOCOL_VERSION}, not {hello.version}")
                return False
            name, password = hello.name, hello.password
        else:
            name = text
        room = self.server.room
        try:
            room.check_name(name)
            if self.server.password is not None and not self._password_ok(name, password):
                return not self.server.failures.blocked(self.address, time.monotonic())
            self.pending_name = None
            self.member = room.join(name, self.codec, self.outbox, self.disconnect)
        except NameProblem as problem:
            self.pending_name = None
            log.debug("%s: refused %r: %s", self.peer, name, problem.message)
            self._error(problem.code, problem.message)
            if problem.code in ("room_full", "shutting_down"):
                return False
            self._prompt(NAME_PROMPT)
            return True
        self._logged_in(self.member)
        return True

    def _password_ok(self, name: str, password: str | None) -> bool:
        """Check the room password, asking for it in plain-text mode; False until it is right."""
        now = time.monotonic()
        failures = self.server.failures
        if password is not None and not failures.blocked(self.address, now):
            expected = self.server.password
            assert expected is not None
            if hmac.compare_digest(password.encode(), expected.encode()):
                return True
            failures.fail(self.address, now)
            log.warning("%s: wrong password for %r", self.peer, name)
        if failures.blocked(self.address, now):
            self._error("too_many_failures", "too many wrong passwords from your address: try again later")
        elif password is not None:
            self._error("wrong_password", "wrong password")
        elif self.codec is json_codec:
            self._error("password_required", "this room needs a password")
        if self.codec is plain_codec and not failures.blocked(self.address, now):
            self.pending_name = name  # the next line is the password
            self._prompt(PASSWORD_PROMPT)
        return False

    def _prompt(self, question: str) -> None:
        if self.codec is plain_codec:
            self.outbox.put((question + "\n").encode())

    def _error(self, code: str, message: str) -> None:
        if self.member is not None:
            self.server.room.error(self.member, code, message)
        else:
            self.outbox.put(self.codec(Error(code=code, message=message), ""))

def _address_family(host: str) -> socket.AddressFamily:
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


class ChatServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR would let a second server take a port that is in use.
    allow_reuse_address = os.name != "nt"
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], room: Room | None = None,
                 outbox_limit: int = DEFAULT_OUTBOX_LIMIT, limits: Limits | None = None,
                 tls_context: ssl.SSLContext | None = None, password: str | None = None) -> None:
        self.address_family = _address_family(address[0])
        self.limits = limits or Limits()
        self.room = room or Room()
        self.room.rate, self.room.burst = self.limits.rate, self.limits.burst  # told to clients on welcome
        self.outbox_limit = outbox_limit
        self.tls_context = tls_context
        self.password = password
        self.failures = FailureCounter(self.limits.password_failures, self.limits.password_window)
        self._handlers: set[ChatHandler] = set()
        self._per_address: Counter[str] = Counter()
        self._handlers_changed = threading.Condition()
        self.sender = Sender()
        self.sender.start()
        self.room.on_ready_many = lambda boxes: self.sender.ready_many([cast(Link, box.owner) for box in boxes])
        super().__init__(address, ChatHandler)  # on failure it calls server_close, which stops the sender

    def server_close(self) -> None:
        super().server_close()
        self.sender.stop()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def track(self, handler: ChatHandler) -> bool:
        """Count a new connection; False if its address has too many already."""
        with self._handlers_changed:
            self._handlers.add(handler)
            self._per_address[handler.address] += 1
            return self._per_address[handler.address] <= self.limits.max_per_address

    def untrack(self, handler: ChatHandler) -> None:
        with self._handlers_changed:
            self._handlers.discard(handler)
            self._per_address[handler.address] -= 1
            if not self._per_address[handler.address]:
                del self._per_address[handler.address]
            self._handlers_changed.notify_all()

    def keepalive(self, sock: socket.socket) -> None:
        """Let TCP find a vanished plain-text peer: idle time, then 5 probes a third of it apart."""
        idle = max(1, int(self.limits.keepalive))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        options = {"TCP_KEEPIDLE": idle, "TCP_KEEPALIVE": idle, "TCP_KEEPINTVL": max(1, idle // 3), "TCP_KEEPCNT": 5}
        for name, value in options.items():  # the names each OS knows (TCP_KEEPALIVE is macOS's idle time)
            if hasattr(socket, name):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
                except OSError:
                    log.debug("this system does not take %s; keepalive uses its own timing", name)

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

_port = port_type(0)


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
    defaults = Limits()
    limits = parser.add_argument_group("limits (see docs/security.md)")
    limits.add_argument("--rate", type=float, default=defaults.rate, metavar="PER_SECOND",
                        help=f"messages a user may send per second, after a burst (default {defaults.rate:g}; "
                             "0 turns the limit off, e.g. for a private room or a benchmark)")
    limits.add_argument("--burst", type=int, default=defaults.burst, metavar="N",
                        help=f"messages a user may send at once (default {defaults.burst})")
    limits.add_argument("--login-timeout", type=float, default=defaults.login_timeout, metavar="SECONDS",
                        help=f"close connections that have not logged in by then (default {defaults.login_timeout:g})")
    limits.add_argument("--max-per-ip", type=int, default=defaults.max_per_address, metavar="N",
                        help=f"connections from one IP address (default {defaults.max_per_address})")
    limits.add_argument("--ping-interval", type=float, default=defaults.ping_interval, metavar="SECONDS",
                        help="JSON-mode clients silent this long get a ping, and are dropped if still silent "
                             f"as long again (default {defaults.ping_interval:g})")
    limits.add_argument("--keepalive", type=float, default=defaults.keepalive, metavar="SECONDS",
                        help="plain-text connections: TCP keepalive idle time; a vanished peer is found after "
                             f"about twice this (default {defaults.keepalive:g})")
    limits.add_argument("--password-tries", type=int, default=defaults.password_failures, metavar="N",
                        help="wrong passwords one address may give per minute before it is refused "
                             f"(default {defaults.password_failures})")
    access = parser.add_argument_group("encryption and access")
    access.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate (PEM; needs --tls-key)")
    access.add_argument("--tls-key", metavar="FILE", help="the private key for --tls-cert (PEM)")
    access.add_argument("--password-file", metavar="FILE",
                        help=f"require the room password in FILE's first line (or set {PASSWORD_ENV}); "
                             "never given on the command line, where other users could see it")
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
    if args.rate < 0 or args.burst < 1:
        parser.error("--rate must be 0 or more and --burst at least 1")
    for option in ("login_timeout", "ping_interval", "keepalive"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be more than 0")
    if args.max_per_ip < 1 or args.password_tries < 1:
        parser.error("--max-per-ip and --password-tries must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def load_access(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, str | None]:
    """The TLS context and the room password the options ask for; ValueError says what is wrong."""
    context = None
    if args.tls_cert:
        try:
            context = tls.server_context(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use --tls-cert {args.tls_cert} / --tls-key {args.tls_key}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    password = os.environ.get(PASSWORD_ENV) or None
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as file:
                password = file.readline().rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read --password-file {args.password_file}: {exc.strerror}") from None
        if not password:
            raise ValueError(f"--password-file {args.password_file} has an empty first line")
    return context, password


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
    limits = Limits(rate=args.rate, burst=args.burst, login_timeout=args.login_timeout,
                    max_per_address=args.max_per_ip, ping_interval=args.ping_interval, keepalive=args.keepalive,
                    password_failures=args.password_tries)
    try:
        context, password = load_access(args)
    except ValueError as exc:
        print(f"server.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        server = ChatServer((args.host, args.port), room, outbox_limit=args.sendq, limits=limits,
                            tls_context=context, password=password)
    except OSError as exc:
        print(f"server.py: error: {bind_error_message(exc, args.host, args.port)}", file=sys.stderr)
        return 2
    host = args.host if args.host not in ("0.0.0.0", "::") else "<this computer's address>"
    extras = (" --tls" if context else "")
    print(f"chatroom server listening on {args.host} port {server.port}{' (TLS)' if context else ''}; "
          f"connect with: python client.py {host} {server.port}{extras}  (Ctrl+C stops it)", flush=True)
    if password:
        log.info("the room needs a password")
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
