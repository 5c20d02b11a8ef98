"""The console client: command line, connection, login, and the one select loop.

Keys arrive from a KeyReader thread, events from the socket; both are handled in this thread, which is
the only one that writes to the terminal.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence

from .. import render
from ..protocol import (
    BANNER_PREFIX, SERVER_LINE_LIMIT, Bye, Error, Event, Hello, Joined, Left, Line, LineFramer,
    ProtocolError, Renamed, Shutdown, Users, Welcome, decode_event,
)
from . import terminal
from .editor import Bell, Candidates, LineEditor, Quit, Submit
from .keys import KeyReader
from .screen import Screen

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 65432
CONNECT_TIMEOUT = 10.0
QUIT_WAIT = 2.0  # seconds to wait for the server's goodbye after /quit

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

    def send_line(self, text: str) -> None:
        try:
            self.sock.sendall(text.encode() + b"\n")
        except OSError:
            pass  # a closed connection shows up as EOF on the next read

    def fill(self) -> None:
        """Read what has arrived (blocking if nothing has); sets `closed` at EOF."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, TimeoutError):
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

    @staticmethod
    def _decode(line: str) -> list[Event]:
        try:
            event = decode_event(line)
        except ProtocolError:
            return []  # not an event: nothing to show
        return [event] if event is not None else []


def connect(host: str, port: int) -> Connection:
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
    connection = Connection(sock)
    try:
        banner = connection.line(CONNECT_TIMEOUT)
    except TimeoutError:
        raise ClientError(f"{where} did not greet us: is it a chatroom server?") from None
    if banner is None or not banner.startswith(BANNER_PREFIX):
        raise ClientError(f"{where} is not a chatroom server")
    return connection


def login(connection: Connection, name: str, ask: Callable[[str], str]) -> Welcome:
    """Send hellos until the server welcomes us; a refused name is asked again, with the reason."""
    while True:
        connection.sock.sendall(Hello(name).encode())
        try:
            answer = connection.next_event(CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClientError("the server did not answer the login") from None
        if isinstance(answer, Welcome):
            return answer
        if isinstance(answer, Error) and answer.code in ("name_taken", "name_invalid"):
            name = ask(f"Sorry, {render.sanitize(answer.message)}. ")
        elif isinstance(answer, Error):
            raise ClientError(render.sanitize(answer.message))
        elif answer is None or isinstance(answer, Shutdown):
            raise ClientError("the server closed the connection during login")


class Chat:
    """The session after login: keys to the editor and the server, events to the screen."""

    def __init__(self, connection: Connection, welcome: Welcome, screen: Screen) -> None:
        self.connection = connection
        self.screen = screen
        self.me = welcome.name
        self.users = list(welcome.users)
        self.ending: Bye | Shutdown | None = None
        self.quitting = False
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
        text = render.render(event, self.me, self.screen.theme)
        if text:
            self.screen.show(text, bell=render.wants_attention(event, self.me))

    def press(self, outcome: Submit | Quit | Bell | Candidates | None) -> None:
        match outcome:
            case Submit(line=line):
                self.connection.send_line(line)
            case Quit():
                self.quit()
            case Bell():
                self.screen.bell()
            case Candidates(options=options):
                self.screen.show("  ".join(options))

    def quit(self) -> None:
        if not self.quitting:
            self.quitting = True
            self.connection.send_line("/quit")

    def run(self, keys: KeyReader) -> int:
        for event in self.connection.events():
            self.show(event)
        self.screen.redraw()
        deadline = None
        while not self.connection.closed:
            if self.quitting and deadline is None:
                deadline = time.monotonic() + QUIT_WAIT
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                readable, _, _ = select.select([self.connection.sock, keys.wakeup], [], [], 0.25)
                if keys.wakeup in readable:
                    for pressed in keys.drain():
                        self.press(Quit() if pressed is None else self.screen.editor.feed(pressed))
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

def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


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
    return args


def _ask(reason: str = "") -> str:
    while True:
        name = input(f"{reason}Username: ").strip()
        if name:
            return name
        reason = ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    colors = not args.no_color and not os.environ.get("NO_COLOR")
    try:
        connection = connect(args.host, args.port)
        with connection.sock:
            try:
                welcome = login(connection, args.name or _ask(), _ask)
            except (EOFError, KeyboardInterrupt):
                print()
                return OK
            with terminal.session() as key_source:
                editor = LineEditor(names=lambda: chat.users)
                screen = Screen(sys.stdout, editor, terminal.is_terminal(sys.stdout), colors)
                chat = Chat(connection, welcome, screen)
                keys = KeyReader(key_source)
                keys.start()
                try:
                    return chat.run(keys)
                finally:
                    keys.stop()
                    screen.close()
    except ClientError as exc:
        print(f"client.py: error: {exc}", file=sys.stderr)
        return exc.status
