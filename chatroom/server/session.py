"""One connection's conversation with the server as a pure state machine: `receive(frame, now) -> actions`.

It knows the login's questions and their deadlines, the ping and the flood limit; the handler does the
I/O, asks the room and tells the session how the login went (`refused`, `joined`). No sockets and no
clock of its own: the tests drive it with a fake one.

Deadlines stop machines, not people: each question must be answered with a whole line in time (bytes
without a newline do not count), a question asked again gives a person `answer_timeout`, and the whole
login ends after `login_tries` refused answers or `login_total` seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import commands, names, render
from ..protocol import (
    NAME_PROMPT, PROTOCOL_VERSION, BadEncoding, Done, Error, Event, FrameEvent, Line, LineTooLong, Offer, Ping,
    ProtocolError, is_hello, parse_control, parse_hello, parse_structured, sanitize,
)
from ..ratelimit import TokenBucket
from .config import Config

PASSWORD_PROMPT = "Password:"


class State(enum.Enum):
    NAME = "waiting for a name or a hello"
    PASSWORD = "waiting for the room password"  # plain-text mode: the name came first
    JOINED = "joined"
    CLOSED = "closed"


class Ask(enum.Enum):
    """What a refused answer asks for next."""
    NAME = NAME_PROMPT
    PASSWORD = PASSWORD_PROMPT


# --- actions: what the handler is asked to do, in order ---------------------------------------------

@dataclass(frozen=True)
class Reply:
    """An event for this connection alone."""
    event: Event


@dataclass(frozen=True)
class Prompt:
    """A question line, in plain-text mode only (a JSON client knows what an error asks for)."""
    text: str


@dataclass(frozen=True)
class Login:
    """Check the room password (if any), then try to join with this name (taking up a waiting session
    with the resume token, replaying what came after the event id `after`)."""
    name: str
    password: str | None
    reconnect: bool = False
    resume: str | None = None
    after: int | None = None
    epoch: str | None = None


@dataclass(frozen=True)
class Run:
    command: commands.Command


@dataclass(frozen=True)
class Close:
    reason: str


@dataclass(frozen=True)
class Transfer:
    """A file command, an offer or an upload's done: for the file store (files.py), never the room."""
    request: commands.Command | Offer | Done


Action = Reply | Prompt | Login | Run | Close | Transfer


class Session:
    def __init__(self, config: Config, now: float, needs_password: bool = False) -> None:
        self.config = config
        self.needs_password = needs_password
        self.state = State.NAME
        self.json: bool | None = None  # the mode, chosen by the first line
        self._answer_by = now + config.login_timeout
        self._answer_time = config.login_timeout  # what the current question allows, for the message
        self._free_refusal_used = False
        self._login_by = now + config.login_total
        self._refusals = 0
        self._name = ""  # plain-text mode: the name given before the password
        self._password: str | None = None  # plain-text mode: the password given (right, once joined)
        self._bucket = TokenBucket(config.rate, config.burst, now)
        self._ping_at = 0.0
        self._pinged = False

    # --- time -----------------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        """When `expire` must be called if nothing arrives before."""
        if self.state in (State.NAME, State.PASSWORD):
            return min(self._answer_by, self._login_by)
        if self.state is State.JOINED and self.json:
            return self._ping_at
        return None  # plain-text members may be quiet for ever: TCP keepalive finds vanished ones

    def expire(self, now: float) -> list[Action]:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        if self.state is State.JOINED:
            if self._pinged:
                return self._close("timeout")
            self._pinged = True
            self._ping_at = now + self.config.ping_interval
            return [Reply(Ping())]
        seconds = self.config.login_total if now >= self._login_by else self._answer_time
        return [self._error("login_timeout", f"no login within {seconds:g} seconds"), *self._close("timeout")]

    def _ask_by(self, now: float, seconds: float) -> None:
        self._answer_by, self._answer_time = now + seconds, seconds

    def data_arrived(self, now: float) -> None:
        """Any bytes show a member is alive (a login needs whole lines, though)."""
        if self.state is State.JOINED:
            self._ping_at = now + self.config.ping_interval
            self._pinged = False

    # --- lines ----------------------------------------------------------------------------------------

    def receive(self, frame: FrameEvent, now: float) -> list[Action]:
        if self.state is State.JOINED and type(frame) is Line:  # a member's line: most of them, checked first
            return self._command(sanitize(frame.text), now)
        if self.state is State.CLOSED:
            return []
        if not self.joined and now >= (self.deadline() or now + 1):
            return self.expire(now)  # lines that keep coming must not outrun the login's deadlines
        if isinstance(frame, LineTooLong):
            return self._bad_line("line_too_long", f"that line was longer than {frame.limit} bytes "
                                                   f"and was not {'sent' if self.joined else 'read'}", now)
        if isinstance(frame, BadEncoding):
            return self._bad_line("bad_encoding", "that line was not valid UTF-8 and was not "
                                                  f"{'sent' if self.joined else 'read'}", now)
        assert isinstance(frame, Line)
        text = sanitize(frame.text)
        if self.state is State.PASSWORD:
            if not text:
                return [Prompt(PASSWORD_PROMPT)]  # Enter alone is not a wrong password
            self._password = text
            return [Login(self._name, text)]
        if self.json is None:
            self.json = is_hello(text)
        if self.json:
            return self._hello(text, now)
        if self.needs_password and self._password is None:
            try:
                self._name = names.check(text)
            except names.NameProblem as problem:
                return self.refused(problem.code, problem.message, Ask.NAME, now)
            # The password comes before the name is looked up, so only members learn who is here.
            self.state = State.PASSWORD
            self._ask_by(now, self.config.answer_timeout)
            return [Prompt(PASSWORD_PROMPT)]
        return [Login(text, self._password)]

    def _hello(self, text: str, now: float) -> list[Action]:
        try:
            hello = parse_hello(text)
        except ProtocolError as exc:
            return self.refused("bad_hello", str(exc), Ask.NAME, now)
        if hello.version != PROTOCOL_VERSION:
            return [self._error("unsupported_version",
                                f"this server speaks protocol version {PROTOCOL_VERSION}, not {hello.version}"),
                    *self._close("closed")]
        return [Login(hello.name, hello.password, hello.reconnect, hello.resume, hello.after, hello.epoch)]

    def _command(self, text: str, now: float) -> list[Action]:
        command: commands.Command | commands.CommandError | Offer | Done | None
        try:
            control = parse_control(text) if self.json else None
            block = parse_structured(text) if self.json and control is None else None
        except ProtocolError as exc:
            return [self._error("bad_message", str(exc))]
        if control is not None:
            command = control
        else:
            command = commands.parse(text) if block is None else commands.Command(commands.Kind.SAY, text=block)
        if command is None:
            return []
        if isinstance(command, commands.CommandError):
            return [self._error(command.code, command.message)]
        rated = not isinstance(command, commands.Command) or command.spec.rated
        if rated and not self._bucket.take(now):
            return [self._error("rate_limited", f'not sent: "{render.preview(text)}" (at most '
                                                f"{self.config.burst} messages at once, then {self.config.rate:g} "
                                                "per second)")]
        if not isinstance(command, commands.Command) or command.kind in commands.FILE_KINDS:
            return [Transfer(command)]
        return [Run(command)]

    def _bad_line(self, code: str, message: str, now: float) -> list[Action]:
        if self.joined:
            return [self._error(code, message)]
        ask = Ask.PASSWORD if self.state is State.PASSWORD else Ask.NAME
        return self.refused(code, message, ask, now)

    # --- what the handler tells the session -----------------------------------------------------------

    def refused(self, code: str, message: str, ask: Ask, now: float, counts: bool = True) -> list[Action]:
        """A login answer was refused: say why, and ask again unless there were too many."""
        actions: list[Action] = [self._error(code, message)]
        if not counts and self._free_refusal_used:
            counts = True  # the first "password required" is the normal way in; more are not
        self._free_refusal_used |= not counts
        self._refusals += counts
        if self._refusals >= self.config.login_tries:
            return [*actions, self._error("too_many_tries", f"{self._refusals} refused answers: goodbye"),
                    *self._close("refused")]
        if ask is Ask.NAME:
            self.state = State.NAME
        else:
            self.state = State.PASSWORD if self.json is False else State.NAME
            self._password = None
        self._ask_by(now, self.config.answer_timeout)
        if not self.json:
            actions.append(Prompt(ask.value))
        return actions

    def admitted(self, now: float) -> None:
        """The room took the login."""
        self.state = State.JOINED
        self._ping_at = now + self.config.ping_interval

    @property
    def joined(self) -> bool:
        return self.state is State.JOINED

    def _close(self, reason: str) -> list[Action]:
        self.state = State.CLOSED
        return [Close(reason)]

    @staticmethod
    def _error(code: str, message: str) -> Reply:
        return Reply(Error(code=code, message=message))
