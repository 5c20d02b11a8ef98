"""The server's command line: options into one Config, the log that never blocks the room, and main().

python server.py 8080 (see --help). The serving core is in server.py.
"""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import queue
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import invocation, tls
from ..render import duration_text
from ..cli import DEFAULT_HOST, DEFAULT_PORT, PASSWORD_ENV, merge_address, port_type, program_name
from . import history
from .config import Config, redis_address
from .files import FileLimits, FileStore, default_directory
from .handler import ChatServer
from .room import Room

LOG_QUEUE = 1000  # log records waiting for stderr; past that they are counted, not kept

log = logging.getLogger("chatroom.server")

_port = port_type(0)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)


def _size(text: str) -> int:
    """A size in bytes: 5000000, 100M, 100MiB, 2G (K, M, G, T count in 1024s, as --max-file-size's default)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 100M, 2G, 500000)")
    return int(float(match.group(1)) * 1024 ** "_KMGT".index(match.group(2).upper() or "_"))


def _duration(text: str) -> float:
    """A time in seconds: 90, 90s, 30m, 24h, 7d."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 24h, 30m, 90s)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2).lower()]


def _size_words(count: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        scale = 1024 ** (("KiB", "MiB", "GiB").index(unit) + 1)
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_name(),
        description="Run a chatroom server. Clients connect with: python client.py HOST PORT",
        epilog="examples:  python server.py 8080  |  python server.py 0.0.0.0 8080  |  "
               "python server.py --host ::1 --port 8080",
    )
    parser.add_argument("address", nargs="*", metavar="[HOST] PORT",
                        help=f"where to listen; one argument is the port (default {DEFAULT_HOST} {DEFAULT_PORT})")
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST}, this computer only; "
                                       "0.0.0.0 shares the room on your network)")
    parser.add_argument("--port", type=_port,
                        help=f"TCP port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    defaults = Config()
    parser.add_argument("--max-clients", type=int, default=defaults.max_members, metavar="N",
                        help=f"most users in the room at once (default {defaults.max_members})")
    parser.add_argument("--sendq", type=int, default=defaults.sendq, metavar="BYTES",
                        help="bytes that may stay queued for a client for --slow-after seconds before it is "
                             f"dropped as too slow to read (default {defaults.sendq})")
    limits = parser.add_argument_group("limits (see docs/security.md)")
    limits.add_argument("--slow-after", type=float, default=defaults.slow_after, metavar="SECONDS",
                        help=f"how long a client may stay above --sendq (default {defaults.slow_after:g}; it is "
                             f"also dropped after {defaults.stall_after:g} s without reading anything)")
    limits.add_argument("--rate", type=float, default=defaults.rate, metavar="PER_SECOND",
                        help=f"messages a user may send per second, after a burst (default {defaults.rate:g}; "
                             "0 turns the limit off, e.g. for a private room or a benchmark)")
    limits.add_argument("--burst", type=int, default=defaults.burst, metavar="N",
                        help=f"messages a user may send at once (default {defaults.burst})")
    limits.add_argument("--login-timeout", type=float, default=defaults.login_timeout, metavar="SECONDS",
                        help="time to send the first answer, a name or a hello, as a whole line "
                             f"(default {defaults.login_timeout:g}; a question asked again gets "
                             f"{defaults.answer_timeout:g} s, the whole login at most {defaults.login_total:g} s)")
    limits.add_argument("--max-per-ip", type=int, default=defaults.max_per_address, metavar="N",
                        help=f"connections from one IP address (default {defaults.max_per_address})")
    limits.add_argument("--joins-per-ip", type=float, default=defaults.joins_per_address, metavar="PER_SECOND",
                        help=f"logins per second from one IP address after {defaults.join_burst} at once "
                             f"(default {defaults.joins_per_address:g}; 0: no limit)")
    limits.add_argument("--room-joins", type=float, default=defaults.room_joins, metavar="PER_SECOND",
                        help=f"logins per second into the room after {defaults.room_join_burst} at once "
                             f"(default {defaults.room_joins:g}; 0: no limit)")
    limits.add_argument("--ping-interval", type=float, default=defaults.ping_interval, metavar="SECONDS",
                        help="JSON-mode clients silent this long get a ping, and are dropped if still silent "
                             f"as long again (default {defaults.ping_interval:g})")
    limits.add_argument("--keepalive", type=float, default=defaults.keepalive, metavar="SECONDS",
                        help="plain-text connections: TCP keepalive idle time; a vanished peer is found after "
                             f"about twice this (default {defaults.keepalive:g})")
    memory = parser.add_argument_group("history and reconnecting")
    memory.add_argument("--history", metavar="FILE",
                        help="the SQLite file that keeps the room's public messages across restarts (default: "
                             "room-PORT.sqlite3 in your data directory; 'none' keeps them in memory only)")
    memory.add_argument("--history-keep", type=int, default=defaults.history_keep, metavar="N",
                        help=f"public events kept in the file (default {defaults.history_keep})")
    memory.add_argument("--grace", type=float, default=defaults.grace, metavar="SECONDS",
                        help="how long a user whose connection was lost keeps their name and gets their private "
                             f"messages when back (default {defaults.grace:g}; 0: none)")
    files = parser.add_argument_group("sending files (see docs/security.md, \"Shared files\")")
    limits_of_files = FileLimits()
    files.add_argument("--files", metavar="DIR",
                       help="where shared files are kept (default: files-PORT beside the history file, or a "
                            "temporary folder without one; 'none' turns file sharing off)")
    files.add_argument("--files-keep", type=_duration, default=limits_of_files.keep, metavar="DURATION",
                       help="how long a shared file is kept before the server deletes it (default 24h; e.g. "
                            "90s, 30m, 7d)")
    files.add_argument("--max-file-size", type=_size, default=limits_of_files.max_file, metavar="SIZE",
                       help=f"the largest file a user may share (default {_size_words(limits_of_files.max_file)}; "
                            "e.g. 20M, 1G)")
    files.add_argument("--files-quota", type=_size, default=limits_of_files.user_quota, metavar="SIZE",
                       help="what one user's shared files may take at once "
                            f"(default {_size_words(limits_of_files.user_quota)})")
    files.add_argument("--files-total", type=_size, default=limits_of_files.total, metavar="SIZE",
                       help=f"what all shared files may take (default {_size_words(limits_of_files.total)}; and "
                            f"never less than {limits_of_files.min_free:.0%}% of the disk is left free)")
    files.add_argument("--files-stall", type=float, default=limits_of_files.stall, metavar="SECONDS",
                       help="a file transfer's connection that moves no byte for this long is closed; the "
                            f"transfer resumes on the next (default {limits_of_files.stall:g})")
    together = parser.add_argument_group("one room on several servers (see docs/design.md)")
    together.add_argument("--cluster", metavar="redis://HOST:PORT/DB",
                          help="share the room with every server started with the same Redis: clients may connect "
                               "to any of them (needs pip install -e .[cluster] and a Redis without persistence; "
                               "file sharing is off)")
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
    if len(args.address) > 2:
        parser.error("expected at most HOST and PORT")
    address = list(args.address)
    port = address.pop() if address and (len(address) == 2 or address[-1].isdigit()) else None
    host = address[0] if address else None
    args.host, args.port = merge_address(parser, _port, host, port, args.host, args.port)
    if args.max_clients < 1:
        parser.error("--max-clients must be at least 1")
    if args.sendq < 1024:
        parser.error("--sendq must be at least 1024 bytes")
    if min(args.rate, args.joins_per_ip, args.room_joins) < 0 or args.burst < 1:
        parser.error("--rate, --joins-per-ip and --room-joins must be 0 or more, and --burst at least 1")
    for option in ("login_timeout", "ping_interval", "keepalive", "slow_after"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be more than 0")
    if args.history_keep < 1 or args.grace < 0:
        parser.error("--history-keep must be at least 1 and --grace 0 or more")
    if args.max_per_ip < 1:
        parser.error("--max-per-ip must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.files_keep <= 0 or args.files_stall <= 0:
        parser.error("--files-keep and --files-stall must be more than 0")
    return args


def config_from(args: argparse.Namespace) -> Config:
    return Config(max_members=args.max_clients, sendq=args.sendq, slow_after=args.slow_after, rate=args.rate,
                  burst=args.burst, login_timeout=args.login_timeout, max_per_address=args.max_per_ip,
                  joins_per_address=args.joins_per_ip, room_joins=args.room_joins,
                  ping_interval=args.ping_interval, keepalive=args.keepalive, history_keep=args.history_keep,
                  grace=args.grace)


def file_limits(args: argparse.Namespace) -> FileLimits:
    """The files' limits; with --cluster, off: a file is kept by one server, and the others could not serve it."""
    return FileLimits(enabled=(args.files or "").lower() != "none" and not args.cluster, keep=args.files_keep,
                      max_file=args.max_file_size, user_quota=args.files_quota, total=args.files_total,
                      stall=args.files_stall)


def files_directory(args: argparse.Namespace, history_file: Path | None) -> Path | None:
    """Where shared files go: --files, or files-PORT beside the history file (None: a temporary folder)."""
    if args.files is not None and args.files.lower() != "none":
        return Path(args.files)
    return default_directory(history_file, args.port) if history_file is not None and args.port else None


def history_path(args: argparse.Namespace) -> Path | None:
    """Where the history lives: --history, or the data directory's file for this port (none for port 0,
    which is a new port every time)."""
    if args.history is not None:
        return None if args.history.lower() == "none" else Path(args.history)
    return history.default_path(args.port) if args.port else None


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


def bind_error_message(exc: OSError, host: str, port: int, platform: str = sys.platform) -> str:
    """One sentence a person can act on, for an address the server could not take."""
    other = 8081 if port == 8080 else 8080
    instead = f"{invocation.command('server', fresh=False)} {'' if host == DEFAULT_HOST else host + ' '}{other}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: no such host or address"
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
        return f"port {port} on {host} is already in use (is another server running?); try another port: {instead}"
    if exc.errno in (errno.EACCES, errno.EPERM, getattr(errno, "WSAEACCES", None)):
        if platform.startswith("linux") and port < 1024:
            return (f"port {port} needs root on Linux, as every port below 1024 does: use {instead} instead "
                    '(or see "What port 80 needs" in the README)')
        return (f"port {port} needs administrator rights here; try a port from 1024 up: {instead} "
                '(or see "What port 80 needs" in the README)')
    if exc.errno in (errno.EADDRNOTAVAIL, getattr(errno, "WSAEADDRNOTAVAIL", None)):
        return f"cannot listen on {host}: this computer has no such address"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


class _LossCountingHandler(logging.handlers.QueueHandler):
    """Hands records to the log thread; when stderr is not being read and the queue is full, a record is
    counted instead of waiting, so no thread of the room ever blocks on its log."""

    def __init__(self, records: queue.Queue[Any]) -> None:
        super().__init__(records)
        self.lost = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.lost += 1


class _LossReportingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records on the log thread, first saying how many were lost while stderr was blocked."""

    def __init__(self, source: _LossCountingHandler) -> None:
        super().__init__(sys.stderr)
        self.source = source
        self.reported = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.report_lost(record.name)
        super().emit(record)

    def report_lost(self, name: str = "chatroom.server") -> None:
        lost = self.source.lost
        if lost > self.reported:
            super().emit(logging.makeLogRecord({
                "name": name, "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": "%d log lines were lost while the log output was not being read",
                "args": (lost - self.reported,)}))
            self.reported = lost


class _LogThread(logging.handlers.QueueListener):
    def stop_within(self, seconds: float) -> None:
        """Stop, but never wait for ever on a stderr that nobody reads; once it has drained, say what was
        lost since the last line it wrote."""
        deadline = time.monotonic() + seconds
        try:
            self.queue.put(self._sentinel, timeout=seconds)  # type: ignore[attr-defined]
        except queue.Full:
            return
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if not self._thread.is_alive():
                for handler in self.handlers:
                    if isinstance(handler, _LossReportingHandler):
                        handler.report_lost()


def start_logging(level: int) -> _LogThread:
    records: queue.Queue[Any] = queue.Queue(LOG_QUEUE)
    counting = _LossCountingHandler(records)
    writer = _LossReportingHandler(counting)
    writer.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [counting]
    root.setLevel(level)
    thread = _LogThread(records, writer)
    thread.start()
    return thread


def _name() -> str:
    return program_name("server.py", "chatroom-server")


def listening_port(started: str) -> int:
    """The port named by the line `main` prints first once it listens (for tools and tests that start a server
    on port 0); ValueError or IndexError for any other line."""
    return int(started.split(" port ")[1].split(";")[0].split()[0])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prog = _name()
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    try:
        context, password = load_access(args)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    config = config_from(args)
    try:
        server = ChatServer((args.host, args.port), config, tls_context=context, password=password)
    except OSError as exc:
        print(f"{prog}: error: {bind_error_message(exc, args.host, args.port)}", file=sys.stderr)
        return 2
    # The history file only once the port is ours: a start that fails leaves no file behind, and a second server
    # on the same port is told about the port, not about the file the first one holds.
    try:
        kept = history.History(history_path(args), keep=config.history_keep, remember=config.catchup)
    except history.HistoryError as exc:
        server.server_close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        server.room = join_cluster(args.cluster, config, kept, server) if args.cluster else Room(config, kept)
    except ValueError as exc:
        kept.close()
        server.server_close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        server.use_files(FileStore(file_limits(args), files_directory(args, server.room.history.path),
                                   server.room.history))
    except OSError as exc:
        server.server_close()
        print(f"{prog}: error: cannot keep shared files in {exc.filename}: {exc.strerror}; choose another folder "
              "with --files DIR, or --files none", file=sys.stderr)
        return 2
    log_thread = start_logging(level)
    try:
        return _serve(server, args, context is not None, password is not None)
    finally:
        log_thread.stop_within(2.0)


def join_cluster(url: str, config: Config, kept: history.History, server: ChatServer) -> Room:
    """The room shared through Redis at `url` (imported only here), started; ValueError says why it cannot be."""
    try:
        from .cluster import ClusterError, Engine
        from .cluster.room import ClusterRoom
    except ImportError as exc:
        if not (exc.name or "").startswith("redis"):
            raise
        raise ValueError("--cluster needs the redis package: pip install -e .[cluster]") from None
    try:
        room = ClusterRoom(config, kept, Engine(url, grace=config.grace, floor=kept.last_id))
        room.start(server.apply, lambda exc: threading.Thread(target=server.shutdown, daemon=True).start())
    except ClusterError as exc:
        raise ValueError(str(exc)) from None
    return room


def _serve(server: ChatServer, args: argparse.Namespace, tls_on: bool, password_on: bool) -> int:
    stopping = False

    def stop_on_signal(signum: int, frame: object) -> None:
        """The first Ctrl+C (SIGTERM, Ctrl+Break) stops the server; later ones only cut the goodbyes short."""
        nonlocal stopping
        if stopping:
            server.hurry()
            return
        stopping = True
        raise KeyboardInterrupt

    # SIGBREAK is Ctrl+Break on Windows, and what a launcher can send to a console process there.
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop_on_signal)
    if password_on:
        log.info("the room needs a password")
        if not tls_on:
            log.warning("the room password and the chat travel in clear text: "
                        "use --tls-cert and --tls-key on a network you do not trust")
    host = args.host if args.host not in ("0.0.0.0", "::") else "<this computer's address>"
    extras = (" --tls" if tls_on else "")
    print(f"chatroom server listening on {args.host} port {server.port}{' (TLS)' if tls_on else ''}; "
          f"connect with: {invocation.command('client')} {host} {server.port}{extras}  (Ctrl+C stops it)",
          flush=True)
    kept = server.room.history.path
    print(f"history: {kept}" if kept else "history: in memory only (--history FILE keeps it across restarts)",
          flush=True)
    limits = server.files.limits
    print(f"files: {server.files.directory}{' (temporary)' if server.files.temporary else ''}, kept "
          f"{duration_text(limits.keep)}, at most {_size_words(limits.max_file)} each" if limits.enabled
          else f"files: off ({'not shared across servers' if args.cluster else '--files none'})", flush=True)
    if args.cluster:  # last: the first three lines are the same with or without it (tests/server_process.py)
        print(f"cluster: {redis_address(args.cluster)}, one room with every server that uses it", flush=True)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        log.info("stopping: telling %d users", len(server.room.names()))
    finally:
        stopping = True
        server.stop()
    return 1 if server.sender.crashed else 0
