"""The client's connection to the server: a socket read as lines and events; connect (with TLS), login, and an
`Attempt` that does both in a thread of its own.

Blocking reads and writes with timeouts serve the login (the console's start, the connect dialog's thread, a
reconnect); after it the loop (loop.py) makes the socket non-blocking: it reads what select says has arrived,
and what the socket cannot take at once waits in `unsent` until select says it can.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable

from .. import tls
from ..codecs import decode_event
from ..protocol import (
    BANNER_PREFIX, SERVER_LINE_LIMIT, Error, Event, Hello, Line, LineFramer, ProtocolError, Shutdown, Welcome, sanitize,
)
from .session import FAILED, Refusal

CONNECT_TIMEOUT = 10.0  # seconds for the connect, the greeting and each answer of the login
# Bytes the socket has not taken, past which the connection counts as lost: far beyond what a live server
# leaves waiting (the session paces lines to its rate, the system's buffer holds more), bounded all the same.
UNSENT_LIMIT = 1024 * 1024
TLS_RECORD = 16 * 1024  # the most one TLS send takes: a record at a time, so a partial send shows progress
NAME_PROBLEMS = ("name_taken", "name_invalid", "name_lookalike", "name_reserved")
PASSWORD_PROBLEMS = ("password_required", "wrong_password")


class ClientError(Exception):
    """Something that ends the client (or a connect attempt) with one sentence for the user."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


class NothingListening(ClientError):
    """The address refused the connection: no server runs there."""


class Refused(ClientError):
    """The login was refused for the name, or the room wants a (right) password. `reason` is the server's
    word for it, ready to go before a request ("Sorry, the username "bob" is taken. ", "Wrong password. ", "")."""

    def __init__(self, refusal: Refusal, reason: str) -> None:
        super().__init__(reason.strip() or "this room needs a password")
        self.refusal, self.reason = refusal, reason


class Connection:
    """A socket to the server, read as lines and JSON events."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._framer = LineFramer(SERVER_LINE_LIMIT)
        self._lines: deque[str] = deque()
        self.closed = False
        self.said = ""  # the last line that was not an event: the server's words before it hung up
        self.hello: Hello | None = None  # the last hello sent: a reconnect says the same password
        self.banner = ""  # the server's greeting, after the protocol's name
        self.unsent = b""  # written, not taken by the socket yet: the loop waits for it to be writable
        self._progress = 0.0  # when the socket last took bytes of `unsent`, or `unsent` began

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def send_line(self, text: str, now: float = 0.0) -> None:
        """Write a line, `now` on the loop's clock: what the socket does not take at once waits in `unsent`."""
        self._send(text.encode() + b"\n", now)

    def send_hello(self, hello: Hello) -> None:
        self.hello = hello
        self._send(hello.encode(), 0.0)  # during the login: the socket blocks, so it takes all

    def _send(self, data: bytes, now: float) -> None:
        if not self.unsent:
            self._progress = now
        self.unsent += data
        self.flush(now)

    def flush(self, now: float) -> None:
        """Send what the socket takes without waiting (all of it while the socket blocks, in the login)."""
        while self.unsent:
            try:
                sent = self.sock.send(self.unsent[:TLS_RECORD])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError:
                self.unsent = b""  # a closed connection shows up as EOF on the next read
                return
            self.unsent = self.unsent[sent:]
            self._progress = now

    def stuck(self, now: float, window: float) -> bool:
        """The socket has taken none of our bytes for `window` seconds, or more than UNSENT_LIMIT wait: a server
        that reads nothing (a partition: the system would retry for many minutes) is as lost as a closed one."""
        return len(self.unsent) > UNSENT_LIMIT or (bool(self.unsent) and now - self._progress >= window)

    def fill(self) -> None:
        """Read what has arrived, waiting up to the socket's timeout if nothing has; sets `closed` at the end
        of the connection, and when the system gives up on it (a reset, a host unreachable, the kernel's own
        timeout). A TimeoutError goes to the caller only when our timeout (a login's wait) ran out: a silent
        server is not a closed connection."""
        try:
            data = self.sock.recv(65536)
            pending = getattr(self.sock, "pending", None)  # TLS may hold more decrypted bytes
            while pending and pending() and (more := self.sock.recv(65536)):
                data += more
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # nothing after all (a TLS record not whole yet): the loop waits for more
        except TimeoutError:
            if self.sock.gettimeout():
                raise
            data = b""  # ETIMEDOUT with no timeout of ours: the server vanished with our bytes unacknowledged
        except OSError:
            data = b""
        if not data:
            self.closed = True
        for frame in self._framer.feed(data):
            if isinstance(frame, Line):
                self._lines.append(frame.text)

    def read(self) -> list[Event]:
        """`fill`, then the events in what has arrived."""
        self.fill()
        return self.events()

    def _wait_for_line(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while not self._lines and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.sock.settimeout(remaining)
                self.fill()
        finally:
            self.sock.settimeout(None)

    def line(self, timeout: float) -> str | None:
        """The next line, waiting up to `timeout` (else TimeoutError); None if the connection closed first."""
        self._wait_for_line(timeout)
        return self._lines.popleft() if self._lines else None

    def next_event(self, timeout: float) -> Event | None:
        """The next event, waiting up to `timeout` for each line (else TimeoutError); None if the connection
        closed first."""
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


def connect(host: str, port: int, hello: Hello | None, context: ssl.SSLContext | None = None,
            timeout: float = CONNECT_TIMEOUT) -> Connection:
    """Connect, say hello if we know the name (before the banner: a TLS server then tells a plain client at
    once) and check the banner, whose words are kept in `banner`. The answer to the hello is left for `login`."""
    where = f"{host} port {port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        raise ClientError(f"cannot find the host {host!r}: check the name or address") from None
    except ConnectionRefusedError:
        raise NothingListening(f"cannot connect to {where}: nothing is listening there (is the server running?)"
                               ) from None
    except TimeoutError:
        raise ClientError(f"cannot connect to {where}: no answer within {timeout:g} seconds") from None
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
        banner = connection.line(timeout)
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


def refuse_name(reason: str) -> str:
    raise Refused("name", reason)


def refuse_password(reason: str) -> str:
    raise Refused("password", reason)


def login(connection: Connection, hello: Hello, ask_name: Callable[[str], str] = refuse_name,
          ask_password: Callable[[str], str] = refuse_password, timeout: float = CONNECT_TIMEOUT) -> Welcome:
    """Answer the server until it welcomes us: a refused name or a password is asked for, with the reason.

    `connect` sent the first `hello` already. An `ask_*` callback returns the new answer or raises to give up;
    by default they raise `Refused`, for a caller that asks the user itself (the dialog, a reconnect).
    """
    name, password = hello.name, hello.password
    while True:
        try:
            answer = connection.next_event(timeout)
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
    """How to reach the same server again: the dialog's attempts and every reconnect."""
    return lambda hello: connect(host, port, hello, context)


Login = tuple[Connection, Welcome]


class Attempt:
    """One connect and login in a thread of its own: they may take seconds, and the caller's thread goes on
    meanwhile (the loop answering keys, Tk drawing). `result` is the connection with its welcome, or the
    ClientError that ended the attempt (a Refused among them; any other failure becomes one too, so an
    attempt always ends); `on_done` is called with the attempt, from its thread, once it is set, unless it was
    abandoned by then. A connection that arrives after `abandon` is closed: the one who asked has gone."""

    def __init__(self, dial: Dial, hello: Hello, on_done: Callable[[Attempt], None] = lambda attempt: None) -> None:
        self.done = threading.Event()
        self.result: Login | ClientError | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        threading.Thread(target=self._run, args=(dial, hello, on_done), name="chatroom-connect", daemon=True).start()

    def _run(self, dial: Dial, hello: Hello, on_done: Callable[[Attempt], None]) -> None:
        result: Login | ClientError = ClientError("the connection attempt stopped")
        try:
            result = self._log_in(dial, hello)
        except ClientError as exc:
            result = exc
        except Exception as exc:  # a failure the login does not expect (a bug): this attempt failed
            result = ClientError(f"{type(exc).__name__}: {exc}")
            result.__cause__ = exc  # with its traceback, for the log
        finally:
            with self._lock:
                abandoned = self._abandoned
                self.result = None if abandoned else result
            if abandoned and isinstance(result, tuple):
                result[0].close()
            self.done.set()
            if not abandoned:
                on_done(self)

    @staticmethod
    def _log_in(dial: Dial, hello: Hello) -> Login:
        connection = dial(hello)
        try:
            return connection, login(connection, hello)
        except BaseException:
            connection.close()
            raise

    def abandon(self) -> None:
        """Nobody waits for the result any more: its connection, now or when it comes, is closed."""
        with self._lock:
            self._abandoned = True
            result, self.result = self.result, None
        if isinstance(result, tuple):
            result[0].close()
