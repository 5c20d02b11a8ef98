"""Shared fixtures: a real server on an ephemeral loopback port, and raw-socket clients."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatroom.protocol import Hello
from chatroom.server.config import Config
from chatroom.server.handler import ChatServer

TIMEOUT = 5.0

# Where the environment says not to write bytecode (this machine's does), every xdist worker would rewrite every
# test module's asserts anew and every server and client the tests start would compile chatroom anew: seconds
# of each run on 2 cores. The suite and the processes it starts keep Python's default, __pycache__ beside the
# sources (git ignores it). At import: pytest loads this file before xdist starts the workers, which inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# scripts/test-windows.sh runs the suite under a genuine Windows CPython in Wine, and says so with this.
UNDER_WINE = os.environ.get("CHATROOM_UNDER_WINE") == "1"
WINE_LIMIT = "a limit of the Windows set-up under Wine, not of Windows"


def wine_limit(reason: str) -> pytest.MarkDecorator:
    """Skips a test under Wine only, for one of the limits of Wine 8 or of the embeddable CPython it runs
    (docs/design.md, "Windows tests under Wine"); a real Windows runs it."""
    return pytest.mark.skipif(UNDER_WINE, reason=f"{WINE_LIMIT}: {reason}")


# Wine 8 reports a child that died while Wine was still starting it (before any of Python ran) as CreateProcess
# failing with ERROR_INTERNAL_ERROR (ntdll's NtCreateUserProcess: the new process's start-up did not succeed and
# left no exit code). Seen once in a CI run of the suite under Wine, never on Windows; the child ran none of the
# test's code, so starting it again is the same test.
WINE_LOST_THE_CHILD = 1359
WINE_START_ATTEMPTS = 3


def start_again_when_wine_loses_the_child(popen_init: Callable[..., None]) -> Callable[..., None]:
    """`subprocess.Popen.__init__`, tried again (with a warning that names it) when Wine lost the child at start."""
    @functools.wraps(popen_init)
    def init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        for attempt in range(1, WINE_START_ATTEMPTS + 1):
            try:
                return popen_init(self, *args, **kwargs)
            except OSError as error:
                if getattr(error, "winerror", None) != WINE_LOST_THE_CHILD or attempt == WINE_START_ATTEMPTS:
                    raise
                warnings.warn(f"Wine lost a child at its start ({error}); started it again", stacklevel=2)
    return init


if UNDER_WINE:
    subprocess.Popen.__init__ = start_again_when_wine_loses_the_child(subprocess.Popen.__init__)  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Under Wine, how many tests only Wine's limits kept from running: each is a test a real Windows runs."""
    if UNDER_WINE:
        skipped = [report for report in terminalreporter.stats.get("skipped", [])
                   if WINE_LIMIT in str(report.longrepr)]
        terminalreporter.write_line(f"{len(skipped)} skipped for the limits of Wine 8 or of its embeddable CPython "
                                    "(a real Windows runs them; -rs lists them)", yellow=True, bold=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow (seconds each) start first. xdist deals the tests out one at a time (pyproject's
    --maxschedchunk 1), so the slow ones run side by side from the start instead of one ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def _history_files_in_a_temporary_data_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers started on a port of their own keep their history in the data directory: not the user's."""
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data"))
    yield
    if old is None:
        del os.environ["XDG_DATA_HOME"]
    else:
        os.environ["XDG_DATA_HOME"] = old


class RawClient:
    """A socket that reads whole lines, each wait bounded by TIMEOUT."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self._buffer = b""
        self.seen: list[str] = []

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line within {timeout}s; seen: {self.seen[-5:]}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; seen: {self.seen[-5:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        self.seen.append(text)
        return text

    def expect(self, predicate: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """The first line for which predicate holds (lines before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.line(max(0.0, deadline - time.monotonic()))
            if predicate(text):
                return text

    def expect_closed(self, timeout: float = TIMEOUT) -> list[str]:
        """Read until the server closes the connection; the lines read on the way."""
        lines = []
        try:
            while True:
                lines.append(self.line(timeout))
        except EOFError:
            return lines
        except ConnectionResetError:
            return lines

    def close(self) -> None:
        self.sock.close()


class JsonClient(RawClient):
    def login(self, name: str) -> dict:
        self.line()  # banner
        self.send(Hello(name).encode())
        return self.event()

    def event(self, timeout: float = TIMEOUT) -> dict:
        return json.loads(self.line(timeout))

    def expect_event(self, type_: str, timeout: float = TIMEOUT, **fields: object) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            event = self.event(max(0.0, deadline - time.monotonic()))
            if event["type"] == type_ and all(event.get(k) == v for k, v in fields.items()):
                return event

    def say(self, text: str) -> None:
        self.send(text + "\n")


class PlainClient(RawClient):
    def login(self, name: str) -> str:
        self.line()  # banner
        self.send(name + "\n")
        return self.line()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ChatServer]]:
    started: list[tuple[ChatServer, threading.Thread]] = []

    def start(config: Config | None = None, **options: object) -> ChatServer:
        server = ChatServer(("127.0.0.1", 0), config or Config(), **options)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.stop(grace=1.0)
        thread.join(TIMEOUT)


@pytest.fixture
def server_config() -> Config | None:
    """The `server` fixture's configuration; a test overrides it with @pytest.mark.parametrize."""
    return None


@pytest.fixture
def server(make_server: Callable[..., ChatServer], server_config: Config | None) -> ChatServer:
    return make_server(server_config)


@pytest.fixture
def clients(server: ChatServer) -> Iterator[Callable[..., RawClient]]:
    opened: list[RawClient] = []

    def connect(kind: type[RawClient] = JsonClient) -> RawClient:
        client = kind(server.port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def expect_stop_after_failure(server: ChatServer, thread: str, client: RawClient, records: list) -> None:
    """After one of the server's threads failed: the server stops, tells `client`, and logged the failure."""
    failed = server.sender if thread == "sender" else server.reader
    assert failed is not None
    wait_until(lambda: server.stopping.is_set() or not failed.alive)
    server.stop(grace=1.0)
    events = [json.loads(line) for line in client.expect_closed()]
    assert {"type": "shutdown", "message": "the server is shutting down"} in events
    assert any(f"the {thread} thread failed" in record.getMessage() and record.exc_info for record in records)


def certificates(folder: Path) -> Path:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost, in `folder`: cert.pem, key.pem, ca.pem."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT, interval: float = 0.01) -> None:
    """Poll a condition that no socket event announces (e.g. the room's member list)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


def resumable(port: int, name: str, **fields: object) -> tuple[JsonClient, dict]:
    """A JSON client that logs in as the console client does (`reconnect`: a resume token), and its answer."""
    client = JsonClient(port)
    client.line()
    client.send(Hello(name, reconnect=True, **fields).encode())  # type: ignore[arg-type]
    return client, client.event()


def in_file(path: Path, sql: str) -> object:
    """The first value a query finds in a history file that a server has open (WAL lets others read it)."""
    with contextlib.closing(sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=TIMEOUT)) as db:
        return db.execute(sql).fetchone()[0]


@pytest.fixture
def fake_server() -> Iterator[object]:
    """A chatroom server the test plays (tests/fakeserver.py), closed after the test."""
    from fakeserver import FakeServer  # here: fakeserver imports this module

    with FakeServer() as fake:
        yield fake
