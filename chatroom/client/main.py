"""The client's command line: connect and log in, then the console (console/chat.py) over the loop, or the
window (`--gui`, gui/)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import logging.handlers
import os
import select
import ssl
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..cli import DEFAULT_HOST, DEFAULT_PORT, PASSWORD_ENV, merge_address, port_type, program_name
from ..protocol import Hello
from . import gui
from .connection import ClientError, Connection, NothingListening, connect, dialer, login, tls_context
from .console import terminal
from .console.chat import Chat
from .console.editor import KEYS, LineEditor, key_help
from .console.keys import KeyboardFailed, KeyReader
from .console.screen import Screen
from .console.status import security
from .loop import Loop
from .transfers import Transfers, complete_path
from .session import DISCONNECTED, FAILED, OK, USAGE  # the exit statuses are this command's too

__all__ = ["DISCONNECTED", "FAILED", "OK", "USAGE", "build_parser", "main", "parse_args"]

INSECURE = "! --insecure: the server's certificate is not checked, so anyone on the way could pose as the server."
LOG_HELD = 100  # records held during the chat: failures are logged once each, so a few at most


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
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the keys, one a line
        epilog="\n".join([f"examples:\n  {command} 127.0.0.1 8080\n  {command} 192.168.1.20 8080 alice\n"
                          f"  {command} --port 8080 --name alice\n\nkeys (a pasted block is held until Enter, "
                          "then sent as one message):",
                          *(f"  {entry.keys}: {entry.does}" for entry in KEYS)]),
    )
    parser.add_argument("address", nargs="*", metavar="HOST [PORT [USERNAME]]",
                        help=f"the server (default {DEFAULT_HOST} {DEFAULT_PORT}) and your username "
                             "(asked for if not given)")
    parser.add_argument("--host", help=f"the server's address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, help=f"the server's port (default {DEFAULT_PORT})")
    parser.add_argument("--name", help="your username (asked for if not given)")
    parser.add_argument("--gui", action="store_true",
                        help="open a window instead (a connect dialog prefilled from these arguments)")
    parser.add_argument("--theme", choices=("auto", "light", "dark"), default="auto",
                        help="with --gui: the window's colors (default auto: as the system's dark or light setting)")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="end (exit status 3) when the connection is lost, instead of reconnecting by itself")
    parser.add_argument("--no-color", action="store_true",
                        help="no colors (also when the NO_COLOR environment variable is set)")
    parser.add_argument("--downloads", metavar="DIR", type=Path,
                        help="where /get saves files (default: your Downloads folder)")
    secure = parser.add_argument_group("encryption and access")
    secure.add_argument("--tls", action="store_true", help="connect with TLS (the server runs with --tls-cert)")
    secure.add_argument("--cafile", metavar="FILE",
                        help="trust the server certificates signed by this CA (PEM); default: the system's")
    secure.add_argument("--insecure", action="store_true",
                        help="with --tls: accept any certificate (only for a test setup: anyone could pose "
                             "as the server)")
    parser.epilog = ((parser.epilog or "")
                     + f"\n\nA room password is asked for when needed (or taken from {PASSWORD_ENV}).")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    words = args.address
    if args.port is None and words and words[0].isdigit() and (len(words) == 1 or not words[1].isdigit()) \
            and len(words) <= 2:
        # A port first: the host was left out (a host may be a number only when a port follows it).
        taken = f"{words[0]} as the port" + (f" and {words[1]} as the username" if len(words) == 2 else "")
        print(f"{parser.prog}: taking {taken} (the host comes first: "
              f"{_command()} {args.host or DEFAULT_HOST} {' '.join(words)})", file=sys.stderr)
        words.insert(0, args.host or DEFAULT_HOST)
        args.host = None
    if len(words) > 3:
        parser.error("expected at most HOST, PORT and USERNAME")
    host, port, name = (words + [None] * 3)[:3]
    args.default_host, args.default_port = host is None and args.host is None, port is None and args.port is None
    args.host, args.port = merge_address(parser, _port, host, port, args.host, args.port)
    if name is not None:
        if args.name not in (None, name):
            parser.error("the name is given twice")
        args.name = name
    if (args.cafile or args.insecure) and not args.tls:
        parser.error("--cafile and --insecure go with --tls")
    return args


def _only_the_default(args: argparse.Namespace) -> str:
    """Nothing listens where the user did not say to go: the defaults are only a guess."""
    if args.default_host and args.default_port:
        return f"; that is only the default address: give the server's as {_command()} HOST PORT"
    if args.default_port:
        return f"; {DEFAULT_PORT} is only the default port: give the server's as {_command()} {args.host} PORT"
    return ""


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
        connection.close()
        raise
    if select.select([connection.sock], [], [], 0)[0]:
        # The server spoke while a person typed: it gave up waiting for the name. Start again with it.
        connection.close()
        return connect(args.host, args.port, hello, context), hello
    connection.send_hello(hello)
    return connection, hello


@contextlib.contextmanager
def _log_after_the_chat() -> Iterator[None]:
    """The client's log (a failure it did not expect, with its traceback) is held while the chat has the
    terminal, where it would tear the screen and the input line, and written to stderr after it."""
    target = logging.StreamHandler(sys.stderr)
    target.setFormatter(logging.Formatter(f"{_program()}: %(message)s"))
    held = logging.handlers.MemoryHandler(LOG_HELD, flushLevel=logging.CRITICAL + 1, target=target)
    logger = logging.getLogger("chatroom")
    logger.addHandler(held)
    try:
        yield
    finally:
        logger.removeHandler(held)
        held.close()  # writes what it holds


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
            try:
                connection, hello = _open(args, context)
            except NothingListening as exc:
                raise ClientError(f"{exc}{_only_the_default(args)}") from None
            try:  # the connection is ours to close until the loop has it
                welcome = login(connection, hello, _ask_name if interactive else _cannot_ask,
                                _ask_password if interactive else _cannot_ask)
                dial = None if args.no_reconnect else dialer(args.host, args.port, context)
                loop = Loop(connection, welcome, dial, quit_hint="Ctrl+C to quit", key_help=key_help(),
                            transfers=Transfers(args.downloads))
            except BaseException:
                connection.close()
                raise
            # The loop closes what it holds as its run ends; if it never runs, on the way out here.
            with contextlib.closing(loop), _log_after_the_chat(), terminal.session() as key_source:
                editor = LineEditor(names=lambda: chat.users, paths=complete_path)
                screen = Screen(sys.stdout, editor, terminal.is_terminal(sys.stdout), colors)
                if args.insecure:
                    screen.show(screen.theme.paint(screen.theme.error, INSECURE))
                keys = KeyReader(key_source)
                keys.start()
                try:
                    chat = Chat(loop, screen, keys, _where(args.host, args.port), security(args.tls, args.insecure))
                    return chat.run()
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
