"""The console client: the command line and the terminal front end over the client core.

Keys arrive from a KeyReader thread, events from the socket; both are handled in this thread (the core's
loop), which is the only one that writes to the terminal. `--gui` hands over to the window front end.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import select
import ssl
import sys
import time
from collections.abc import Callable, Sequence

from .. import render
from ..cli import DEFAULT_HOST, DEFAULT_PORT, PASSWORD_ENV, merge_address, port_type, program_name
from ..protocol import LINE_LIMIT, Error, Event, Hello, Message, Welcome
from . import gui
from .console import terminal
from .core import (  # the exit statuses are this command's too
    DISCONNECTED, FAILED, LOST, OK, USAGE, ClientError, Connection, Dial, Link, Session, connect, dialer, login,
    tls_context,
)

__all__ = ["DISCONNECTED", "FAILED", "OK", "USAGE", "Chat", "build_parser", "main", "parse_args"]
from .console.editor import Bell, Candidates, LineEditor, Quit, Submit
from .console.keys import KeyboardFailed, KeyReader
from .console.screen import Screen
from .status import Status, security

END_OF_HISTORY = "— end of history —"
INSECURE = "! --insecure: the server's certificate is not checked, so anyone on the way could pose as the server."
HISTORY_SILENCE = 0.3  # seconds: the history comes in one piece with the welcome, so this is ample


class Chat:
    """The console's view of a session: keys to the editor and the session, events to the screen."""

    def __init__(self, connection: Connection, welcome: Welcome, screen: Screen, status: Status,
                 dial: Dial | None = None) -> None:
        self.session = Session(connection, welcome, dial)
        self.session.on_state = self._state
        self.session.on_tick = self._history_ended_by_silence
        self.screen = screen
        self.status = status
        # The newcomer's history follows the welcome on the wire; the welcome is shown after it (else it
        # scrolls away under 50 lines): at the first event that is not history, a key, or a short silence.
        self.welcome: Welcome | None = welcome
        self.heard_at = time.monotonic()  # of the welcome or the last message of the history
        self.history_shown = False
        self.status.users = len(self.session.users)
        self.screen.status = self.status.text()

    @property
    def users(self) -> list[str]:
        return self.session.users

    def _end_history(self) -> None:
        if self.welcome is not None:
            welcome, self.welcome = self.welcome, None
            if self.history_shown:
                self.screen.show(self.screen.theme.paint(self.screen.theme.system, END_OF_HISTORY))
            self.show(welcome)

    def _history_ended_by_silence(self) -> None:
        # No history in what came with the welcome: none follows (the server sends both in one piece).
        if not self.history_shown or time.monotonic() - self.heard_at >= HISTORY_SILENCE:
            self._end_history()

    def show(self, event: Event) -> None:
        if isinstance(event, Message) and event.earlier and self.welcome is not None:
            self.history_shown, self.heard_at = True, time.monotonic()
        else:
            self._end_history()
        me = self.session.me
        attention = render.wants_attention(event, me)
        if isinstance(event, Message):
            self.status.echoed(event, me)
        elif isinstance(event, Error):
            self.status.pending = max(0, self.status.pending - 1)  # a refused message is echoed never
        self.status.mentions += attention
        self.status.users = len(self.session.users)
        if text := render.render(event, me, self.screen.theme):
            self.screen.status = self.status.text()
            self.screen.show(text, bell=attention)
        else:
            self.screen.set_status(self.status.text())

    def _state(self, state: str) -> None:
        self.status.state = state
        self.screen.set_status(self.status.text())

    def say_block(self, text: str) -> None:
        """A pasted block goes out as one structured message: the server never reads it as a command."""
        line = json.dumps({"type": "say", "text": text}, ensure_ascii=False)
        if len(line.encode()) > LINE_LIMIT:
            self.screen.show(self.screen.theme.paint(
                self.screen.theme.error, f"! The paste was not sent: {len(line.encode())} bytes, "
                                         f"the server takes at most {LINE_LIMIT} in one message."))
            return
        self.session.send(line)
        self.status.sent(text, verbatim=True)

    def link(self, change: Link) -> None:
        """The connection's state (lost, back, a name to choose) as a line above the input."""
        theme = self.screen.theme
        text = f"{change.text}, Ctrl+C to quit" if change.state == "lost" else change.text
        self.screen.show(theme.paint(theme.system if change.state == "back" else theme.error, f"-- {text}"))

    def press(self, outcome: Submit | Quit | Bell | Candidates | None) -> None:
        match outcome:
            case Submit(line=line, verbatim=True):
                self.say_block(line)
            case Submit(line=line):
                self.session.send(line)
                self.status.sent(line)
            case Quit():
                self.session.quit()
            case Bell():
                self.screen.bell()
            case Candidates(options=options):
                self.screen.show("  ".join(options))

    def _keys(self, keys: KeyReader) -> None:
        self._end_history()
        for pressed in keys.drain():
            self.press(Quit() if pressed is None else self.screen.editor.feed(pressed))
        self.status.mentions = 0  # a key pressed: the user is looking
        self.screen.status = self.status.text()
        if notice := self.session.send_typed():
            self.screen.show(self.screen.theme.paint(self.screen.theme.system, notice))
        self.screen.redraw()

    def run(self, keys: KeyReader) -> int:
        self.screen.redraw()
        status = self.session.run(keys.wakeup, lambda: self._keys(keys), self.show, self.link)
        self._end_history()
        if self.session.lost:
            self.screen.show(self.screen.theme.paint(self.screen.theme.error, f"! {LOST}"))
        return status


# --- command line ---------------------------------------------------------------

_port = port_type(1)


def _program() -> str:
    return program_name("client.py", "chatroom-client")


def _command() -> str:
    """How to run this program, for examples and hints."""
    program = _program()
    return f"python {program}" if program.endswith(".py") else program


def build_parser() -> argparse.ArgumentParser:
    command = _command()
    parser = argparse.ArgumentParser(
        prog=_program(),
        description="Join a chatroom server from this terminal (or from a window: --gui).",
        epilog=f"examples:  {command} 127.0.0.1 8080  |  {command} 192.168.1.20 8080 alice  |  "
               f"{command} --port 8080 --name alice.   Keys: Enter sends, Up/Down recall, Tab completes "
               "names and commands, Ctrl+W deletes a word, Ctrl+C clears the line (on an empty line it "
               "leaves, as do Ctrl+D and /quit); a pasted block is sent as one message.",
    )
    parser.add_argument("address", nargs="*", metavar="HOST [PORT [USERNAME]]",
                        help=f"the server (default {DEFAULT_HOST} {DEFAULT_PORT}) and your username "
                             "(asked for if not given)")
    parser.add_argument("--host", help=f"the server's address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, help=f"the server's port (default {DEFAULT_PORT})")
    parser.add_argument("--name", help="your username (asked for if not given)")
    parser.add_argument("--gui", action="store_true",
                        help="open a window instead (a connect dialog prefilled from these arguments)")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="end (exit status 3) when the connection is lost, instead of reconnecting by itself")
    parser.add_argument("--no-color", action="store_true",
                        help="no colors (also when the NO_COLOR environment variable is set)")
    secure = parser.add_argument_group("encryption and access")
    secure.add_argument("--tls", action="store_true", help="connect with TLS (the server runs with --tls-cert)")
    secure.add_argument("--cafile", metavar="FILE",
                        help="trust the server certificates signed by this CA (PEM); default: the system's")
    secure.add_argument("--insecure", action="store_true",
                        help="with --tls: accept any certificate (only for a test setup: anyone could pose "
                             "as the server)")
    parser.epilog = ((parser.epilog or "")
                     + f"  A room password is asked for when needed (or taken from {PASSWORD_ENV}).")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.address) == 1 and args.address[0].isdigit() and args.port is None:
        print(f"{parser.prog}: taking {args.address[0]} as the port (the host comes first: "
              f"{_command()} {args.host or DEFAULT_HOST} {args.address[0]})", file=sys.stderr)
        args.address.insert(0, args.host or DEFAULT_HOST)
        args.host = None
    if len(args.address) > 3:
        parser.error("expected at most HOST, PORT and USERNAME")
    host, port, name = (args.address + [None] * 3)[:3]
    args.host, args.port = merge_address(parser, _port, host, port, args.host, args.port)
    if name is not None:
        if args.name not in (None, name):
            parser.error("the name is given twice")
        args.name = name
    if (args.cafile or args.insecure) and not args.tls:
        parser.error("--cafile and --insecure go with --tls")
    return args


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ask(prompt: str, reason: str, read: Callable[[str], str]) -> str:
    if reason.strip():
        print(reason.strip())  # on a line of its own: the prompt comes on the next
    return read(prompt)


def _ask_name(reason: str = "") -> str:
    while not (name := _ask("Username: ", reason, input).strip()):
        reason = ""
    return name


def _ask_password(reason: str = "") -> str:
    return _ask("Room password: ", reason, getpass.getpass)


def _open(args: argparse.Namespace, context: ssl.SSLContext | None) -> tuple[Connection, Hello]:
    """Connect and say who we are. Without a name, the server is reached first and the name asked after."""
    password = os.environ.get(PASSWORD_ENV)
    reconnect = not args.no_reconnect
    if args.name:
        hello = Hello(args.name, password=password, reconnect=reconnect)
        return connect(args.host, args.port, hello, context), hello
    connection = connect(args.host, args.port, None, context)
    try:
        print(f"Connected to {_where(args.host, args.port)}.\n{connection.banner}")
        hello = Hello(_ask_name(), password=password, reconnect=reconnect)
    except BaseException:
        connection.sock.close()
        raise
    if select.select([connection.sock], [], [], 0)[0]:
        # The server spoke while a person typed: it gave up waiting for the name. Start again with it.
        connection.sock.close()
        return connect(args.host, args.port, hello, context), hello
    connection.send_hello(hello)
    return connection, hello


def _cannot_ask(reason: str) -> str:
    raise ClientError(f"{reason.removeprefix('Sorry, ').rstrip('. ') or 'this room needs a password'} "
                      "(and input is not a terminal to ask again)")


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
            if args.gui:
                return gui.run(args)
            context = tls_context(args.tls, args.cafile, args.insecure)
            connection, hello = _open(args, context)
            with connection.sock:
                welcome = login(connection, hello, _ask_name if interactive else _cannot_ask,
                                _ask_password if interactive else _cannot_ask)
                with terminal.session() as key_source:
                    editor = LineEditor(names=lambda: chat.users)
                    screen = Screen(sys.stdout, editor, terminal.is_terminal(sys.stdout), colors)
                    chat = Chat(connection, welcome, screen, Status(_where(args.host, args.port),
                                                                    security(args.tls, args.insecure)),
                                None if args.no_reconnect else dialer(args.host, args.port, context))
                    if args.insecure:
                        screen.show(screen.theme.paint(screen.theme.error, INSECURE))
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
        print(f"{_program()}: error: {exc}", file=sys.stderr)
        return exc.status
