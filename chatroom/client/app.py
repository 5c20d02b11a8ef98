"""The console client: command line, connection, login, and the one select loop.

Keys arrive from a KeyReader thread, events from the socket; both are handled in this thread, which is
the only one that writes to the terminal.
"""

from __future__ import annotations

import argparse
import getpass
import os
import select
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence

from .. import render, tls
from ..cli import DEFAULT_HOST, DEFAULT_PORT, PASSWORD_ENV, port_type
from ..protocol import (
    BANNER_PREFIX, SERVER_LINE_LIMIT, Bye, Error, Event, Hello, Joined, Left, Line, LineFramer, Ping,
    ProtocolError, Renamed, Shutdown, Users, Welcome, decode_event,
)
from ..ratelimit import TokenBucket
from . import terminal
from .editor import Bell, Candidates, LineEditor, Quit, Submit
from .keys import KeyboardFailed, KeyReader
from .screen import Screen

CONNECT_TIMEOUT = 10.0
QUIT_WAIT = 2.0  # seconds to wait for the server's goodbye after /quit
PACE_MARGIN = 0.9  # of the server's rate: pasted lines go out a little slower, for network jitter
NAME_PROBLEMS = ("name_taken", "name_invalid", "name_lookalike")
PASSWORD_PROBLEMS = ("password_required", "wrong_password")

# Exit statuses
OK, FAILED, USAGE, DISCONNECTED = 0, 1, 2, 3


class ClientError(Exception):
    """Something that ends the client with one sentence for the user."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


class Connection:
    """A socket to the server, read as lines and JSON events."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._framer = LineFramer(SERVER_LINE_LIMIT)
        self._lines: deque[str] = deque()
        self.closed = False
        self.said = ""  # the last line that was not an event: the server's words before it hung up

    def send_line(self, text: str) -> None:
        self._send(text.encode() + b"\n")

    def send_hello(self, hello: Hello) -> None:
        self._send(hello.encode())

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # a closed connection shows up as EOF on the next read

    def fill(self) -> None:
        """Read what has arrived (blocking if nothing has); sets `closed` at EOF."""
        try:
            data = self.sock.recv(65536)
            pending = getattr(self.sock, "pending", None)  # TLS may hold more decrypted bytes
            while pending and pending() and (more := self.sock.recv(65536)):
                data += more
        except (ConnectionError, TimeoutError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
        for frame in self._framer.feed(data):
            if isinstance(frame, Line):
                self._lines.append(frame.text)

    def _wait_for_line(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._lines and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            self.fill()
        self.sock.settimeout(None)

    def line(self, timeout: float) -> str | None:
        """The next line, waiting up to `timeout`; None if the connection closed first."""
        self._wait_for_line(timeout)
        return self._lines.popleft() if self._lines else None

    def next_event(self, timeout: float) -> Event | None:
        """The next event, waiting up to `timeout`; None if the connection closed first."""
        while True:
            self._wait_for_line(timeout)
            if not self._lines:
                return None
            if events := self._decode(self._lines.popleft()):
                return events[0]

    def events(self) -> list[Event]:
        """The events in the lines read so far."""
        events = []
        while self._lines:
            events += self._decode(self._lines.popleft())
        return events

    def _decode(self, line: str) -> list[Event]:
        try:
            event = decode_event(line)
        except ProtocolError:
            self.said = render.sanitize(line.lstrip("! "))
            return []
        return [event] if event is not None else []


def connect(host: str, port: int, hello: Hello, context: ssl.SSLContext | None = None) -> Connection:
    """Connect, say hello (before the banner: a TLS server then tells a plain client at once) and
    check the banner. The answer to the hello is left for `login`."""
    where = f"{host} port {port}"
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except socket.gaierror:
        raise ClientError(f"cannot find the host {host!r}: check the name or address") from None
    except ConnectionRefusedError:
        raise ClientError(f"cannot connect to {where}: nothing is listening there (is the server running?)") from None
    except TimeoutError:
        raise ClientError(f"cannot connect to {where}: no answer within {CONNECT_TIMEOUT:.0f} seconds") from None
    except OSError as exc:
        raise ClientError(f"cannot connect to {where}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise ClientError(f"the certificate of {where} is not trusted ({exc.verify_message}): "
                              "give its CA with --cafile FILE, or use --insecure for a test setup") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise ClientError(f"{where} does not speak TLS ({getattr(exc, 'reason', None) or exc}): "
                              "leave out --tls") from None
    connection = Connection(sock)
    connection.send_hello(hello)
    try:
        banner = connection.line(CONNECT_TIMEOUT)
    except TimeoutError:
        raise ClientError(f"{where} did not greet us: is it a chatroom server?") from None
    if banner is None or not banner.startswith(BANNER_PREFIX):
        if banner and banner.startswith("! "):
            raise ClientError(f"{where} says: {render.sanitize(banner[2:])}")
        raise ClientError(f"{where} is not a chatroom server")
    return connection


Ask = Callable[[str], str]


def login(connection: Connection, hello: Hello, ask_name: Ask, ask_password: Ask) -> Welcome:
    """Answer the server until it welcomes us: a refused name or a password is asked for, with the reason.

    `connect` sent the first `hello` already.
    """
    name, password = hello.name, hello.password
    while True:
        try:
            answer = connection.next_event(CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClientError("the server did not answer the login") from None
        if isinstance(answer, Welcome):
            return answer
        if isinstance(answer, Error) and answer.code in NAME_PROBLEMS:
            name = ask_name(f"Sorry, {render.sanitize(answer.message)}. ")
        elif isinstance(answer, Error) and answer.code in PASSWORD_PROBLEMS:
            password = ask_password("Wrong password. " if answer.code == "wrong_password" else "")
        elif isinstance(answer, Error):
            raise ClientError(render.sanitize(answer.message))
        elif answer is None or isinstance(answer, Shutdown):
            said = f": {connection.said}" if connection.said else ""
            raise ClientError(f"the server closed the connection during login{said}")
        else:
            continue
        connection.send_hello(Hello(name, password=password))


class Chat:
    """The session after login: keys to the editor and the server, events to the screen."""

    def __init__(self, connection: Connection, welcome: Welcome, screen: Screen) -> None:
        self.connection = connection
        self.screen = screen
        self.me = welcome.name
        self.users = list(welcome.users)
        self.ending: Bye | Shutdown | None = None
        self.quitting = False
        # Lines wait here so a paste stays under the server's limit; a margin covers network jitter.
        self.outgoing: deque[str] = deque()
        self.server_rate = welcome.rate
        self.pace = TokenBucket(welcome.rate * PACE_MARGIN, max(1, welcome.burst - 1), time.monotonic())
        self.show(welcome)

    def show(self, event: Event) -> None:
        match event:
            case Joined(name=name):
                self.users.append(name)
            case Left(name=name):
                self.users = [user for user in self.users if user != name]
            case Renamed(old=old, new=new):
                self.users = [new if user == old else user for user in self.users]
                self.me = new if old == self.me else self.me
            case Users(users=users):
                self.users = list(users)
            case Bye() | Shutdown():
                self.ending = event
            case Ping():
                self.connection.send_line("/pong")
        text = render.render(event, self.me, self.screen.theme)
        if text:
            self.screen.show(text, bell=render.wants_attention(event, self.me))

    def press(self, outcome: Submit | Quit | Bell | Candidates | None) -> None:
        match outcome:
            case Submit(line=line):
                self.outgoing.append(line)
            case Quit():
                self.quit()
            case Bell():
                self.screen.bell()
            case Candidates(options=options):
                self.screen.show("  ".join(options))

    def send_due(self) -> float | None:
        """Send the waiting lines the pace allows; seconds until the next may go, or None."""
        now = time.monotonic()
        while self.outgoing and self.pace.take(now):
            self.connection.send_line(self.outgoing.popleft())
        if not self.outgoing:
            return None
        return self.pace.wait(now)

    def quit(self) -> None:
        if not self.quitting:
            self.quitting = True
            self.outgoing.append("/quit")

    def run(self, keys: KeyReader) -> int:
        for event in self.connection.events():
            self.show(event)
        self.screen.redraw()
        deadline = None
        while not self.connection.closed:
            if self.quitting and not self.outgoing and deadline is None:
                deadline = time.monotonic() + QUIT_WAIT
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                due = self.send_due()
                timeout = 0.25 if due is None else min(0.25, due)
                readable, _, _ = select.select([self.connection.sock, keys.wakeup], [], [], timeout)
                if keys.wakeup in readable:
                    for pressed in keys.drain():
                        self.press(Quit() if pressed is None else self.screen.editor.feed(pressed))
                    waiting = len(self.outgoing)
                    if self.send_due() is not None and waiting > 1:
                        self.screen.show(self.screen.theme.paint(
                            self.screen.theme.system, f"-- {len(self.outgoing)} lines wait to be sent "
                            f"({self.server_rate:g} per second is the server's limit)"))
                    self.screen.redraw()
                if self.connection.sock in readable:
                    self.connection.fill()
                    for event in self.connection.events():
                        self.show(event)
            except KeyboardInterrupt:
                self.quit()
        return self._farewell()

    def _farewell(self) -> int:
        """Say why the session ended (if the server has not) and pick the exit status."""
        if self.quitting or (isinstance(self.ending, Bye) and self.ending.reason == "quit"):
            return OK
        if self.ending is None:
            self.screen.show(self.screen.theme.paint(self.screen.theme.error,
                                                     "! Connection lost: the server closed the connection."))
        return DISCONNECTED


# --- command line ---------------------------------------------------------------

_port = port_type(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="client.py",
        description="Join a chatroom server from this terminal.",
        epilog="examples:  python client.py 127.0.0.1 8080  |  python client.py 192.168.1.20 8080 alice  |  "
               "python client.py --port 8080 --name alice.   Keys: Enter sends, Up/Down recall, Tab completes "
               "names and commands, Ctrl+C or Ctrl+D (on an empty line) or /quit leaves.",
    )
    parser.add_argument("address", nargs="*", metavar="HOST [PORT [USERNAME]]",
                        help=f"the server (default {DEFAULT_HOST} {DEFAULT_PORT}) and your username "
                             "(asked for if not given)")
    parser.add_argument("--host", help=f"the server's address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, help=f"the server's port (default {DEFAULT_PORT})")
    parser.add_argument("--name", help="your username (asked for if not given)")
    parser.add_argument("--no-color", action="store_true",
                        help="no colors (also when the NO_COLOR environment variable is set)")
    secure = parser.add_argument_group("encryption and access")
    secure.add_argument("--tls", action="store_true", help="connect with TLS (the server runs with --tls-cert)")
    secure.add_argument("--cafile", metavar="FILE",
                        help="trust the server certificates signed by this CA (PEM); default: the system's")
    secure.add_argument("--insecure", action="store_true",
                        help="with --tls: accept any certificate (only for a test setup: anyone could pose "
                             "as the server)")
    parser.epilog = (parser.epilog or "") + f"  A room password is asked for when needed (or taken from {PASSWORD_ENV})."
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.address) > 3:
        parser.error("expected at most HOST, PORT and USERNAME")
    for index, option in enumerate(["host", "port", "name"]):
        if index < len(args.address):
            value: object = args.address[index]
            if option == "port":
                try:
                    value = _port(args.address[index])
                except argparse.ArgumentTypeError as exc:
                    parser.error(str(exc))
            if getattr(args, option) not in (None, value):
                parser.error(f"the {option} is given twice")
            setattr(args, option, value)
    args.host = args.host or DEFAULT_HOST
    args.port = args.port or DEFAULT_PORT
    if (args.cafile or args.insecure) and not args.tls:
        parser.error("--cafile and --insecure go with --tls")
    return args


def _ask_name(reason: str = "") -> str:
    while True:
        name = input(f"{reason}Username: ").strip()
        if name:
            return name
        reason = ""


def _ask_password(reason: str = "") -> str:
    return getpass.getpass(f"{reason}Room password: ")


def _cannot_ask(reason: str) -> str:
    raise ClientError(f"{reason.removeprefix('Sorry, ').rstrip('. ') or 'this room needs a password'} "
                      "(and input is not a terminal to ask again)")


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        return None
    try:
        return tls.client_context(args.cafile, args.insecure)
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot use --cafile {args.cafile}: {getattr(exc, 'strerror', None) or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A name or text the output's encoding cannot show (a Windows pipe is often cp1252) must not crash us.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    colors = not args.no_color and not os.environ.get("NO_COLOR")
    interactive = terminal.is_terminal(sys.stdin)
    try:
        try:
            context = _tls_context(args)
            hello = Hello(args.name or _ask_name(), password=os.environ.get(PASSWORD_ENV))
            connection = connect(args.host, args.port, hello, context)
            with connection.sock:
                welcome = login(connection, hello, _ask_name if interactive else _cannot_ask,
                                _ask_password if interactive else _cannot_ask)
                with terminal.session() as key_source:
                    editor = LineEditor(names=lambda: chat.users)
                    screen = Screen(sys.stdout, editor, terminal.is_terminal(sys.stdout), colors)
                    chat = Chat(connection, welcome, screen)
                    keys = KeyReader(key_source)
                    keys.start()
                    try:
                        return chat.run(keys)
                    except KeyboardFailed as exc:
                        raise ClientError(str(exc)) from None
                    finally:
                        keys.stop()
                        screen.close()
        except (EOFError, KeyboardInterrupt):
            print()
            return OK
    except ClientError as exc:
        print(f"client.py: error: {exc}", file=sys.stderr)
        return exc.status
