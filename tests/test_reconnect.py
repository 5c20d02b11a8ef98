"""Sessions that survive, from the client's side: the console client (in a pty) loses its connection to a real
server process mid-chat and comes back by itself, with exactly what it missed, its name and its typed line;
the client core does the same against the in-process server, compared by event ids.

A relay in front of the server cuts the client's connections and keeps it out while others talk, so what it
misses does not depend on timing.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient

from chatroom.client import core
from chatroom.protocol import CaughtUp, Hello

pytest.importorskip("termios", reason="needs a pseudo-terminal (POSIX)")
from test_client_pty import ROOT, PtyClient  # noqa: E402


class Relay:
    """Passes TCP connections on to the server's port. `cut` ends every connection through it; while `held`,
    it listens no more, so a client's attempts are refused until `release`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.pairs: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.release()

    def release(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def hold(self) -> None:
        assert self.listener is not None
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread, which then ends
        self.listener.close()
        self.listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=TIMEOUT)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.pairs += [client, server]
            for source, target in [(client, server), (server, client)]:
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):  # one side gone: the other goes too, as a lost connection would
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for sock in pairs:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        if self.listener is not None:
            self.hold()
        self.cut()


class ServerProcess:
    """`python server.py PORT --history FILE`, which can be killed (-9) and started again on its port."""

    def __init__(self, history: Path) -> None:
        self.history = history
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), str(self.port), "--history", str(self.history), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        first = self.proc.stdout.readline()  # the start-up line: listening from now on
        assert " port " in first, first
        self.port = int(first.split(" port ")[1].split(";")[0].split()[0])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT)
            self.proc.stdout.close()


@pytest.fixture
def room(tmp_path: Path) -> Iterator[tuple[ServerProcess, Relay]]:
    server = ServerProcess(tmp_path / "room.sqlite3")
    relay = Relay(server.port)
    yield server, relay
    relay.close()
    server.stop()


@pytest.fixture
def alice(room) -> Iterator[PtyClient]:
    client = PtyClient(room[1].port, "alice")
    client.shows("Welcome, alice")
    yield client
    client.close()


def talker(port: int, name: str) -> JsonClient:
    client = JsonClient(port)
    assert client.login(name)["type"] == "welcome"
    return client


def say(client: JsonClient, *texts: str) -> None:
    """Say each text and wait for its echo, so the server has it."""
    for text in texts:
        client.say(text)
        client.expect_event("message", text=text)


def assert_caught_up_once(alice: PtyClient, missed: list[str], count: int) -> None:
    alice.shows(f"— {count} messages while you were away —")
    screen = alice.text()
    rows = [screen.index(f"<bob> {text}" if text.startswith("m") else f"<carol> {text}") for text in missed]
    assert rows == sorted(rows) and rows[-1] < screen.index("while you were away")
    for text in missed:
        assert screen.count(f"> {text}") == 1, screen


def test_a_cut_connection_comes_back_by_itself_with_what_was_missed_its_name_and_its_typed_line(room, alice):
    server, relay = room
    bob = talker(server.port, "bob")
    try:
        say(bob, "m0")
        alice.shows("<bob> m0")
        alice.type("half-")
        relay.hold()
        relay.cut()
        alice.shows("-- connection lost; reconnecting in ")
        assert "Ctrl+C to quit" in alice.text()
        bob.expect_event("reconnecting", name="alice")
        say(bob, "m1", "m2")
        alice.type("\x15queued while away\rtyped")  # Ctrl+U, a line for later, and one being typed
        alice.until(lambda client: client.input_line() == "> typed")
        relay.release()
        alice.shows("-- reconnected", timeout=TIMEOUT * 2)  # attempts refused while held wait 1, 2, 4 s
        alice.shows("Welcome back, alice!")
        assert_caught_up_once(alice, ["m1", "m2"], 2)
        assert bob.expect_event("join", name="alice")["back"] is True
        assert bob.expect_event("message", sender="alice")["text"] == "queued while away"
        alice.until(lambda client: client.input_line() == "> typed")
        assert alice.text().count("<bob> m0") == 1
        assert "alice is reconnecting" not in alice.text()  # my own absence, replayed, is not news to me
    finally:
        bob.close()


def test_after_a_kill_9_and_a_restart_the_client_comes_back_and_catches_up(room, alice):
    server, relay = room
    bob = talker(server.port, "bob")
    say(bob, "m0")
    alice.shows("<bob> m0")
    # The history writer answers a question after committing what came before it: m0 and the resume tokens
    # are on disk now. (A kill within the ~100 ms before a commit may lose them, as docs/security.md says.)
    bob.say("/history 500")  # more than the room has in memory, so the disk is asked
    bob.expect_event("found")
    bob.close()
    alice.type("still typing")
    relay.hold()
    server.kill()
    alice.shows("-- connection lost; reconnecting in ")
    server.start()
    carol = talker(server.port, "carol")
    try:
        say(carol, "after 1", "after 2")
        relay.release()
        alice.shows("-- reconnected", timeout=TIMEOUT * 2)  # attempts refused while held wait 1, 2, 4 s
        assert_caught_up_once(alice, ["after 1", "after 2"], 2)
        assert "Welcome back, alice!" in alice.text()  # the restarted server kept the name for its owner
        assert carol.expect_event("join", name="alice")["back"] is True
        alice.until(lambda client: client.input_line() == "> still typing")
        assert alice.text().count("<bob> m0") == 1
    finally:
        carol.close()


def test_with_no_reconnect_a_lost_connection_ends_the_client_with_status_3(room):
    client = PtyClient(room[1].port, "amy", "--no-reconnect")
    try:
        client.shows("Welcome, amy")
        room[1].cut()
        status, _ = client.finish()
        assert status == 3 and "Connection lost" in client.text()
    finally:
        client.close()


def test_ctrl_c_while_waiting_to_reconnect_quits_with_status_0(room, alice):
    server, relay = room
    relay.hold()
    relay.cut()
    alice.shows("-- connection lost; reconnecting in ")
    alice.type("\x03")
    status, _ = alice.finish()
    assert status == 0


def test_the_core_comes_back_to_a_real_server_with_exactly_the_missed_ids_and_the_held_private(server, clients):
    relay = Relay(server.port)
    hello = Hello("amy", reconnect=True)
    connection = core.connect("127.0.0.1", relay.port, hello)
    welcome = core.login(connection, hello, lambda reason: "", lambda reason: "")
    background = core.Background(core.Session(connection, welcome, core.dialer("127.0.0.1", relay.port, None)))
    background.start()

    def next_item() -> object:
        item = background.inbox.get(timeout=TIMEOUT * 2)
        return getattr(item, "event", item)

    try:
        bob = clients()
        bob.login("bob")
        assert next_item().name == "bob"  # joined: amy has seen an id
        relay.hold()
        relay.cut()
        assert next_item().state == "lost"
        bob.expect_event("reconnecting", name="amy")
        missed = []
        for text in ["m1", "m2"]:
            bob.say(text)
            missed.append(bob.expect_event("message", text=text)["seq"])
        bob.say("/msg amy psst")
        missed.append(bob.expect_event("private", text="psst")["seq"])
        assert bob.expect_event("error")["code"] == "held"
        relay.release()
        assert next_item().state == "back"
        assert next_item().resumed is True
        replayed = []
        while not isinstance(item := next_item(), CaughtUp):
            replayed.append(item.seq)
        assert replayed == missed and (item.count, item.missing) == (3, 0)
        background.send("thanks")
        assert bob.expect_event("message", sender="amy")["text"] == "thanks"
    finally:
        background.quit()
        background.join(TIMEOUT)
        relay.close()
    while not isinstance(item := background.inbox.get(timeout=TIMEOUT), core.Ended):
        pass
    assert item == core.Ended(core.OK, lost=False)
