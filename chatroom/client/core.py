"""The client without a user interface: connection, login, the session's state and its one select loop.

The console (app.py) and the window (gui/) are thin front ends over it; nothing here knows a terminal or Tk.
"""

from __future__ import annotations

import queue
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .. import render, tls
from ..protocol import (
    BANNER_PREFIX, SERVER_LINE_LIMIT, Bye, Error, Event, Hello, Joined, Left, Line, LineFramer, Ping,
    ProtocolError, Renamed, Shutdown, Users, Welcome, decode_event,
)
from ..ratelimit import TokenBucket
from .liveness import CONNECTED, NOT_ANSWERING, PROBE, Liveness

CONNECT_TIMEOUT = 10.0
QUIT_WAIT = 2.0  # seconds to wait for the server's goodbye after /quit
PACE_MARGIN = 0.9  # of the server's rate: pasted lines go out a little slower, for network jitter
NAME_PROBLEMS = ("name_taken", "name_invalid", "name_lookalike")
PASSWORD_PROBLEMS = ("password_required", "wrong_password")
LOST = "Connection lost: the server closed the connection."

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
        self.banner = ""  # the server's greeting, after the protocol's name

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


def tls_context(use_tls: bool, cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext | None:
    if not use_tls:
        return None
    try:
        return tls.client_context(cafile, insecure)
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot use --cafile {cafile}: {getattr(exc, 'strerror', None) or exc}") from None


def connect(host: str, port: int, hello: Hello | None, context: ssl.SSLContext | None = None) -> Connection:
    """Connect, say hello if we know the name (before the banner: a TLS server then tells a plain client at
    once) and check the banner, whose words are kept in `banner`. The answer to the hello is left for `login`."""
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
    if hello is not None:
        connection.send_hello(hello)
    try:
        banner = connection.line(CONNECT_TIMEOUT)
    except TimeoutError:
        sock.close()
        raise ClientError(f"{where} did not greet us: is it a chatroom server?") from None
    if banner is None or not banner.startswith(BANNER_PREFIX):
        sock.close()
        if banner and banner.startswith("! "):
            raise ClientError(f"{where} says: {render.sanitize(banner[2:])}")
        raise ClientError(f"{where} is not a chatroom server")
    connection.banner = render.sanitize(banner.removeprefix(BANNER_PREFIX))
    return connection


Ask = Callable[[str], str]


def login(connection: Connection, hello: Hello, ask_name: Ask, ask_password: Ask) -> Welcome:
    """Answer the server until it welcomes us: a refused name or a password is asked for, with the reason.

    `connect` sent the first `hello` already. An `ask_*` callback returns the new answer or raises to give up.
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


class Session:
    """The chat after login: who is here, who I am, the paced outgoing lines, and how it ended."""

    def __init__(self, connection: Connection, welcome: Welcome) -> None:
        self.connection = connection
        self.me = welcome.name
        self.users = list(welcome.users)
        self.ending: Bye | Shutdown | None = None
        self.quitting = False
        # Lines wait here so a paste stays under the server's limit; a margin covers network jitter.
        self.outgoing: deque[str] = deque()
        self.server_rate = welcome.rate
        self.pace = TokenBucket(welcome.rate * PACE_MARGIN, max(1, welcome.burst - 1), time.monotonic())
        self.liveness = Liveness(time.monotonic())
        self.probes = 0  # /users probes not answered yet: their answers are not the user's to see
        self.state = CONNECTED
        self.on_state: Callable[[str], None] = lambda state: None  # the front end's status line
        self.on_tick: Callable[[], None] = lambda: None  # before each turn of the loop (at least every 0.25 s)

    def set_state(self, state: str) -> None:
        """The connection's state for people: connected, server not answering, reconnecting."""
        if state != self.state:
            self.state = state
            self.on_state(state)

    def _watch(self, now: float) -> None:
        if self.liveness.probe_due(now):
            self.probes += 1
            self.connection.send_line(PROBE)
        if self.state in (CONNECTED, NOT_ANSWERING):  # not over a state the liveness does not judge
            self.set_state(self.liveness.state(now))

    def receive(self, event: Event) -> None:
        """Keep the user list, my name and the ending up to date; answer the server's ping."""
        # The lists are replaced, never changed in place: another thread may be reading the old one.
        match event:
            case Joined(name=name):
                self.users = [*self.users, name]
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

    def send(self, line: str) -> None:
        self.outgoing.append(line)

    def send_due(self) -> float | None:
        """Send the waiting lines the pace allows; seconds until the next may go, or None."""
        now = time.monotonic()
        while self.outgoing and self.pace.take(now):
            self.connection.send_line(self.outgoing.popleft())
        if not self.outgoing:
            return None
        return self.pace.wait(now)

    def send_typed(self) -> str | None:
        """Send what the pace allows of what was just typed; a notice when a paste has to wait."""
        waiting = len(self.outgoing)
        if self.send_due() is not None and waiting > 1:
            return (f"-- {len(self.outgoing)} lines wait to be sent "
                    f"({self.server_rate:g} per second is the server's limit)")
        return None

    def quit(self) -> None:
        if not self.quitting:
            self.quitting = True
            self.outgoing.append("/quit")

    @property
    def lost(self) -> bool:
        """The connection ended without our /quit and without the server saying why."""
        return not self.quitting and self.ending is None

    def status(self) -> int:
        """The exit status for how the session ended."""
        if self.quitting or (isinstance(self.ending, Bye) and self.ending.reason == "quit"):
            return OK
        return DISCONNECTED

    def run(self, wakeup: socket.socket, on_wake: Callable[[], None], on_event: Callable[[Event], None]) -> int:
        """The loop: events from the server to `on_event`, `on_wake` when `wakeup` is readable (the front
        end's input), paced sending, and the wait for the goodbye after /quit. Returns the exit status."""
        for event in self.connection.events():
            self._deliver(event, on_event)
        deadline = None
        while not self.connection.closed:
            if self.quitting and not self.outgoing and deadline is None:
                deadline = time.monotonic() + QUIT_WAIT
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                self._watch(time.monotonic())
                self.on_tick()
                due = self.send_due()
                timeout = 0.25 if due is None else min(0.25, due)
                readable, _, _ = select.select([self.connection.sock, wakeup], [], [], timeout)
                if wakeup in readable:
                    on_wake()
                if self.connection.sock in readable:
                    self.connection.fill()
                    self.liveness.heard_from(time.monotonic())
                    for event in self.connection.events():
                        self._deliver(event, on_event)
            except KeyboardInterrupt:
                self.quit()
        return self.status()

    def _deliver(self, event: Event, on_event: Callable[[Event], None]) -> None:
        self.receive(event)
        if isinstance(event, Users) and self.probes:
            self.probes -= 1
        else:
            on_event(event)


@dataclass(frozen=True)
class Received:
    """An event as a background session hands it over, with the state it left behind."""
    event: Event
    users: tuple[str, ...]
    me: str
    arrived: float  # time.perf_counter() when the reader decoded it


@dataclass(frozen=True)
class Notice:
    """A sentence from the client itself (not the server) for the user, e.g. that a paste waits."""
    text: str


@dataclass(frozen=True)
class Ended:
    """The background session is over: its exit status, and whether the server simply went away."""
    status: int
    lost: bool


class Background:
    """A session run by a thread of its own, for a front end whose thread must never block (the window).

    What arrives goes into `inbox` as Received items (and Notices), then one Ended; lines to send are handed in with
    `send` from any thread. The thread owns the connection and closes it.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.inbox: queue.SimpleQueue[Received | Notice | Ended] = queue.SimpleQueue()
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()  # None: quit
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="chatroom-session", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, line: str) -> None:
        self._lines.put(line)
        self._wake()

    def quit(self) -> None:
        self._lines.put(None)
        self._wake()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"\0")
        except OSError:
            pass  # the session has ended and closed its end

    def _take_lines(self) -> None:
        self._wake_read.recv(4096)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.session.quit()
            else:
                self.session.send(line)
        if notice := self.session.send_typed():
            self.inbox.put(Notice(notice))

    def _hand_over(self, event: Event) -> None:
        self.inbox.put(Received(event, tuple(self.session.users), self.session.me, time.perf_counter()))

    def _run(self) -> None:
        status, lost = FAILED, True
        try:
            with self.session.connection.sock, self._wake_read, self._wake_write:
                status = self.session.run(self._wake_read, self._take_lines, self._hand_over)
                lost = self.session.lost
        finally:
            self.inbox.put(Ended(status, lost))
