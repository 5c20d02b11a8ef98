"""The client without a user interface: connection, login, the session's state and its one select loop.

The console (app.py) and the window (gui/) are thin front ends over it; nothing here knows a terminal or Tk.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import random
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .. import tls
from ..codecs import decode_event
from ..protocol import (
    BANNER_PREFIX, SERVER_LINE_LIMIT, Bye, Error, Event, Hello, Joined, Left, Line, LineFramer, Ping, ProtocolError,
    Reconnecting, Renamed, Shutdown, Users, Welcome, sanitize,
)
from ..ratelimit import TokenBucket
from .liveness import CONNECTED, NOT_ANSWERING, PROBE, RECONNECTING, Liveness

CONNECT_TIMEOUT = 10.0
QUIT_WAIT = 2.0  # seconds to wait for the server's goodbye after /quit
PACE_MARGIN = 0.9  # of the server's rate: pasted lines go out a little slower, for network jitter
NAME_PROBLEMS = ("name_taken", "name_invalid", "name_lookalike", "name_reserved")
PASSWORD_PROBLEMS = ("password_required", "wrong_password")
LOST = "Connection lost: the server closed the connection."
# A goodbye for one of these reasons was not the user's choice (the server keeps the name for a while): reconnect.
UNCHOSEN = ("lost", "closed", "timeout", "slow", "error")
FIRST_DELAY, MOST_DELAY = 1.0, 30.0  # seconds between reconnect attempts: doubling from the first to the most
SEEN_KEPT = 4096  # event ids remembered for dropping replayed duplicates
ATTEMPT_POLL = 0.02  # seconds between looks at a reconnect attempt under way

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
        self.hello: Hello | None = None  # the last hello sent: a reconnect says the same name and password
        self.banner = ""  # the server's greeting, after the protocol's name

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def send_line(self, text: str) -> None:
        self._send(text.encode() + b"\n")

    def send_hello(self, hello: Hello) -> None:
        self.hello = hello
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
            self.said = sanitize(line.lstrip("! "))
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
            raise ClientError(f"{where} says: {sanitize(banner[2:])}")
        raise ClientError(f"{where} is not a chatroom server")
    connection.banner = sanitize(banner.removeprefix(BANNER_PREFIX))
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
            name = ask_name(f"Sorry, {sanitize(answer.message)}. ")
        elif isinstance(answer, Error) and answer.code in PASSWORD_PROBLEMS:
            password = ask_password("Wrong password. " if answer.code == "wrong_password" else "")
        elif isinstance(answer, Error):
            raise ClientError(sanitize(answer.message))
        elif answer is None or isinstance(answer, Shutdown):
            said = f": {connection.said}" if connection.said else ""
            raise ClientError(f"the server closed the connection during login{said}")
        else:
            continue
        connection.send_hello(dataclasses.replace(hello, name=name, password=password))


Dial = Callable[[Hello], Connection]


def dialer(host: str, port: int, context: ssl.SSLContext | None) -> Dial:
    """How a session gets a new connection to the same server after losing one."""
    return lambda hello: connect(host, port, hello, context)


@dataclass(frozen=True)
class Link:
    """A change of the connection, for the front end to show: `state` is "lost" (a reconnect is due after
    `delay` seconds, as attempt number `attempt`), "name" (the name was taken meanwhile: the next line typed is
    the new one), "back" (reconnected) or "failed" (the session gives up; `text` says why)."""
    state: str
    text: str
    attempt: int = 0
    delay: float = 0.0


class _Refused(Exception):
    """A reconnect's login was refused for good (a password) or until the user chooses another name."""

    def __init__(self, state: str, text: str) -> None:
        super().__init__(text)
        self.state = state


def _name_refused(reason: str) -> str:
    raise _Refused("name", f"{reason}Type another username and press Enter.")


def _password_refused(reason: str) -> str:
    raise _Refused("failed", "the room's password has changed: connect again with the new one")


class _Attempt:
    """One reconnect's connect and login, in a thread of its own: they may wait seconds, and the loop keeps
    answering the user meanwhile (typing, Ctrl+C)."""

    def __init__(self, dial: Dial, hello: Hello) -> None:
        self.done = threading.Event()
        self.result: tuple[Connection, Welcome] | ClientError | _Refused | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        threading.Thread(target=self._run, args=(dial, hello), name="chatroom-reconnect", daemon=True).start()

    def _run(self, dial: Dial, hello: Hello) -> None:
        result: tuple[Connection, Welcome] | ClientError | _Refused
        try:
            connection = dial(hello)
            try:
                result = connection, login(connection, hello, _name_refused, _password_refused)
            except BaseException:
                connection.close()
                raise
        except (ClientError, _Refused) as exc:
            result = exc
        except OSError as exc:  # a socket error login does not expect: this attempt failed, the next may not
            result = ClientError(str(exc))
        with self._lock:
            abandoned = self._abandoned
            self.result = None if abandoned else result
        if abandoned and isinstance(result, tuple):
            result[0].close()
        self.done.set()

    def abandon(self) -> None:
        """The session ended first: a connection that arrives now (or has) is closed."""
        with self._lock:
            self._abandoned = True
            result, self.result = self.result, None
        if isinstance(result, tuple):
            result[0].close()


class Session:
    """The chat after login: who is here, who I am, the paced outgoing lines, and how it ended.

    With `dial`, a connection lost without the user's choice is replaced: attempts wait from 1 s doubling up to
    30 s with jitter, each logs in with the welcome's resume token and the last event id seen, so the server
    keeps the name and replays what was missed; lines typed meanwhile wait and go once back, in order.
    `clock`, `jitter` and `first_delay` are for tests."""

    def __init__(self, connection: Connection, welcome: Welcome, dial: Dial | None = None, *,
                 clock: Callable[[], float] = time.monotonic, jitter: Callable[[], float] = random.random,
                 first_delay: float = FIRST_DELAY) -> None:
        self.connection: Connection | None = connection
        self.dial = dial
        self.password = connection.hello.password if connection.hello else None  # a reconnect logs in with it again
        self.clock, self.jitter, self.first_delay = clock, jitter, first_delay
        self.ending: Bye | Shutdown | None = None
        self.quitting = False
        self.failed: str | None = None  # why reconnecting gave up
        # Lines wait here so a paste stays under the server's limit; a margin covers network jitter.
        self.outgoing: deque[str] = deque()
        self.last_seq = 0  # the highest event id seen: a reconnect asks for what came after it
        self._seen: set[int] = set()
        self._forgotten = 0  # ids up to this one count as seen
        self.attempt = 0
        self.retry_at: float | None = None  # when the next reconnect attempt is due
        self._attempt: _Attempt | None = None  # the one under way
        self.wants_name = False  # the name was taken while we were away: the next typed line is the new one
        self.new_name: str | None = None
        self.state = CONNECTED
        self.on_state: Callable[[str], None] = lambda state: None  # the front end's status line
        self.on_tick: Callable[[], None] = lambda: None  # before each turn of the loop (at least every 0.25 s)
        self._welcomed(welcome)
        self.last_seq = welcome.seq  # so a client that sees no event before a loss can still catch up

    def _welcomed(self, welcome: Welcome) -> None:
        self.me = welcome.name
        self.users = list(welcome.users)
        self.away = frozenset(welcome.away)  # the users who are reconnecting
        self.token = welcome.token
        self.server_rate = welcome.rate
        self.pace = TokenBucket(welcome.rate * PACE_MARGIN, max(1, welcome.burst - 1), time.monotonic())
        self.liveness = Liveness(time.monotonic())
        self.probes = 0  # /users probes not answered yet: their answers are not the user's to see

    def set_state(self, state: str) -> None:
        """The connection's state for people: connected, server not answering, reconnecting."""
        if state != self.state:
            self.state = state
            self.on_state(state)

    def _watch(self, now: float) -> None:
        if self.connection is not None and self.liveness.probe_due(now):
            self.probes += 1
            self.connection.send_line(PROBE)
        if self.state in (CONNECTED, NOT_ANSWERING):  # not over a state the liveness does not judge
            self.set_state(self.liveness.state(now))

    def receive(self, event: Event) -> None:
        """Keep the user list, my name and the ending up to date; answer the server's ping."""
        # The lists are replaced, never changed in place: another thread may be reading the old one.
        match event:
            case Joined(name=name, back=back):
                self.users = self.users if back and name in self.users else [*self.users, name]
                self.away = self.away - {name}
            case Reconnecting(name=name):
                self.away = self.away | {name}
            case Left(name=name):
                self.users = [user for user in self.users if user != name]
                self.away = self.away - {name}
            case Renamed(old=old, new=new):
                self.users = [new if user == old else user for user in self.users]
                self.me = new if old == self.me else self.me
            case Users(users=users, away=away):
                self.users = list(users)
                self.away = frozenset(away)
            case Bye() | Shutdown():
                self.ending = event
            case Ping() if self.connection is not None:
                self.connection.send_line("/pong")

    def is_new(self, event: Event) -> bool:
        """False for an event already shown (one with an id seen before); remembers the ids of new ones."""
        seq = getattr(event, "seq", 0)
        if not seq:
            return True
        if seq <= self._forgotten or seq in self._seen:
            return False
        self._seen.add(seq)
        self.last_seq = max(self.last_seq, seq)
        if len(self._seen) > SEEN_KEPT:
            oldest = sorted(self._seen)[:SEEN_KEPT // 2]
            self._seen.difference_update(oldest)
            self._forgotten = oldest[-1]
        return True

    def send(self, line: str) -> None:
        if self.wants_name:
            if line.strip():
                self.new_name = line.strip()
                self.wants_name, self.retry_at = False, self.clock()
            return
        if self.connection is None and line.strip().lower() in ("/quit", "/exit"):
            self.quit()  # nobody to say goodbye to
            return
        self.outgoing.append(line)

    def send_due(self) -> float | None:
        """Send the waiting lines the pace allows; seconds until the next may go, or None."""
        if self.connection is None:
            return None
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
        return not self.quitting and self.ending is None and self.failed is None

    def status(self) -> int:
        """The exit status for how the session ended."""
        if self.quitting or (isinstance(self.ending, Bye) and self.ending.reason == "quit"):
            return OK
        return DISCONNECTED

    def _reconnects(self) -> bool:
        """Whether the ended connection is to be replaced: it was not the user's choice, nor the server's
        verdict (a restarting server says shutdown, then comes back)."""
        if self.dial is None or self.quitting:
            return False
        return self.ending is None or isinstance(self.ending, Shutdown) or self.ending.reason in UNCHOSEN

    def _schedule(self) -> Link:
        """The next reconnect attempt: 1, 2, 4 ... 30 s, each cut to a random 50-100 % so that the clients of a
        restarted server do not all come back at once."""
        self.attempt += 1
        delay = min(MOST_DELAY, self.first_delay * 2 ** (self.attempt - 1)) * (0.5 + self.jitter() / 2)
        self.retry_at = self.clock() + delay
        return Link("lost", f"connection lost; reconnecting in {math.ceil(delay)} s (attempt {self.attempt})",
                    self.attempt, delay)

    def _redial(self) -> None:
        """Start a reconnect attempt: with the resume token and the last id seen."""
        assert self.dial is not None
        self.retry_at = None
        hello = Hello(self.new_name or self.me, password=self.password, reconnect=True,
                      resume=self.token or None, after=self.last_seq or None)
        self._attempt = _Attempt(self.dial, hello)

    def _redialled(self, attempt: _Attempt) -> tuple[Link, Welcome | None]:
        """How the attempt went: back with the new welcome, or what happens next."""
        self._attempt = None
        match attempt.result:
            case (Connection() as connection, Welcome() as welcome):
                self.connection, self.ending, self.attempt, self.new_name = connection, None, 0, None
                self._welcomed(welcome)
                self.set_state(CONNECTED)
                return Link("back", "reconnected"), welcome
            case _Refused() as refused:
                self.wants_name = refused.state == "name"
                self.failed = None if self.wants_name else str(refused)
                return Link(refused.state, str(refused)), None
        return self._schedule(), None

    def run(self, wakeup: socket.socket, on_wake: Callable[[], None], on_event: Callable[[Event], None],
            on_link: Callable[[Link], None] = lambda link: None) -> int:
        """The loop: events from the server to `on_event`, `on_wake` when `wakeup` is readable (the front
        end's input), paced sending, the wait for the goodbye after /quit, and reconnecting (its changes to
        `on_link`). Returns the exit status; the connection is closed by then."""
        self._deliver(on_event)
        deadline = None
        try:
            while self.failed is None:
                try:
                    self.on_tick()
                    if self.connection is None:
                        if self.quitting:
                            break
                        if self._attempt is not None and self._attempt.done.is_set():
                            link, welcome = self._redialled(self._attempt)
                            on_link(link)
                            if welcome is not None:
                                on_event(welcome)
                                self._deliver(on_event)
                            continue
                        if self.retry_at is not None and self.clock() >= self.retry_at:
                            self._redial()
                    elif self.connection.closed:
                        self.connection.close()
                        if not self._reconnects():
                            break
                        self.connection = None
                        self.set_state(RECONNECTING)
                        on_link(self._schedule())
                        continue
                    else:
                        self._watch(time.monotonic())
                    if self.quitting and not self.outgoing and deadline is None:
                        deadline = time.monotonic() + QUIT_WAIT
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    readable = self._wait(wakeup)
                    if wakeup in readable:
                        on_wake()
                    if self.connection is not None and self.connection.sock in readable:
                        self.connection.fill()
                        self.liveness.heard_from(time.monotonic())
                        self._deliver(on_event)
                except KeyboardInterrupt:
                    self.quit()
        finally:
            if self._attempt is not None:
                self._attempt.abandon()
            if self.connection is not None:
                self.connection.close()
        return self.status()

    def _wait(self, wakeup: socket.socket) -> list[socket.socket]:
        """Wait for the server, the front end, the next paced line or the next reconnect attempt."""
        timeout = 0.25
        if (due := self.send_due()) is not None:
            timeout = min(timeout, due)
        if self.retry_at is not None:
            timeout = min(timeout, max(0.0, self.retry_at - self.clock()))
        if self._attempt is not None:
            timeout = min(timeout, ATTEMPT_POLL)
        watched = [wakeup] if self.connection is None else [self.connection.sock, wakeup]
        return select.select(watched, [], [], timeout)[0]

    def _deliver(self, on_event: Callable[[Event], None]) -> None:
        """The events read so far, each new one kept track of, then handed to the front end (not the answers
        to the client's own probes, nor the replayed news of my own reconnecting)."""
        for event in self.connection.events() if self.connection is not None else []:
            if self.is_new(event):
                self.receive(event)
                if isinstance(event, Users) and self.probes:
                    self.probes -= 1
                elif not (isinstance(event, Reconnecting) and event.name == self.me):
                    on_event(event)


@dataclass(frozen=True)
class Received:
    """An event as a background session hands it over, with the state it left behind."""
    event: Event
    users: tuple[str, ...]
    me: str
    arrived: float  # time.perf_counter() when the reader decoded it
    away: frozenset[str] = frozenset()  # who of `users` is reconnecting


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

    What arrives goes into `inbox` as Received items (and Notices, and the connection's Links), then one Ended;
    lines to send are handed in with `send` from any thread. The thread owns the connection and closes it.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.inbox: queue.SimpleQueue[Received | Notice | Link | Ended] = queue.SimpleQueue()
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
        self.inbox.put(Received(event, tuple(self.session.users), self.session.me, time.perf_counter(),
                                    self.session.away))

    def _run(self) -> None:
        status, lost = FAILED, True
        try:
            with self._wake_read, self._wake_write:
                status = self.session.run(self._wake_read, self._take_lines, self._hand_over, self.inbox.put)
                lost = self.session.lost
        finally:
            self.inbox.put(Ended(status, lost))
