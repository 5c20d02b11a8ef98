"""The room's promise under load and faults: no healthy member is ever dropped or frozen (issue #9).

Each test here failed on the server before the delivery core was reworked.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trustme
from conftest import (
    TIMEOUT, JsonClient, PlainClient, RawClient, expect_stop_after_failure, wait_until, wine_limit,
)

from chatroom.protocol import LINE_LIMIT, Hello
from chatroom.server.outbox import Outbox
from chatroom.server.config import Config
from chatroom.server.main import listening_port

ROOT = Path(__file__).resolve().parent.parent


class Reader(threading.Thread):
    """A member that reads as fast as it can in its own thread, until it has `count` messages."""

    def __init__(self, client: JsonClient, count: int) -> None:
        super().__init__(daemon=True)
        self.client, self.count = client, count
        self.texts: list[str] = []
        self.other: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while len(self.texts) < self.count:
                event = self.client.event(timeout=TIMEOUT * 4)
                if event["type"] == "message":
                    self.texts.append(event["text"])
                else:
                    self.other.append(event)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_bursts_within_the_limits_drop_no_member(make_server):
    """Nine members from one address each send a full burst of the longest lines JSON doubles in size,
    while one more only reads: with the default options everyone stays, and all see one order."""
    server = make_server()  # default limits: a burst of 10, 10 connections per address
    senders = [JsonClient(server.port) for _ in range(9)]
    watchers = [JsonClient(server.port)]
    members = senders + watchers
    try:
        for number, client in enumerate(members):
            client.login(f"m{number}")
        senders[0].expect_event("join", name=f"m{len(members) - 1}")
        total = 10 * len(senders)
        readers = [Reader(client, total) for client in members]
        for reader in readers:
            reader.start()
        line = "\\" * (LINE_LIMIT - 8)
        for number, client in enumerate(senders):
            client.send("".join(f"{number}.{index:02d}{line}\n" for index in range(10)))
        for reader in readers:
            reader.join(TIMEOUT * 6)
        for reader in readers:
            assert reader.error is None, reader.error
            assert not [event for event in reader.other if event["type"] in ("leave", "bye", "error")]
        assert len(readers[0].texts) == total
        assert all(reader.texts == readers[0].texts for reader in readers)
        assert len(server.room.names()) == len(members)
    finally:
        for client in members:
            client.close()


def test_a_member_that_stops_reading_is_dropped_after_a_while_with_a_goodbye(make_server, caplog):
    caplog.set_level(logging.INFO, logger="chatroom.server")
    server = make_server(Config(rate=0, sendq=16 * 1024, slow_after=0.3, stall_after=60))
    talker, stopped = JsonClient(server.port), JsonClient(server.port)
    try:
        talker.login("talker")
        stopped.login("stopped")
        talker.expect_event("join", name="stopped")
        line = "y" * 2000
        sent = 0
        while "stopped" in server.room.names() and sent < 20_000:
            talker.send("".join(f"{line}\n" for _ in range(20)))
            for _ in range(20):
                talker.expect_event("message")
            sent += 20
        talker.say("/users")
        talker.expect_event("users")
        leaves = [json.loads(line) for line in talker.seen if '"type":"leave"' in line]
        assert [(event["name"], event["reason"]) for event in leaves] == [("stopped", "slow")]
        outbox = next(iter(handler.outbox for handler in server._handlers if handler.member
                           and handler.member.name == "stopped"), None)
        assert outbox is None or outbox.size <= outbox.cap
        # Once it reads again, the bytes it had begun to take end in a goodbye that says why.
        lines = stopped.expect_closed()
        assert json.loads(lines[-1]) == {"type": "bye", "reason": "slow"}
        left = [record.getMessage() for record in caplog.records if "stopped left" in record.getMessage()]
        assert left == ["stopped left (dropped for being too slow to read)"]
    finally:
        talker.close()
        stopped.close()


def test_a_join_bigger_than_sendq_is_whole(make_server):
    """History bounded by bytes: a newcomer always gets its welcome and history, before anyone hears of it."""
    server = make_server(Config(rate=0))
    old = JsonClient(server.port)
    newcomer = JsonClient(server.port)
    try:
        old.login("old")
        heavy = "\\" * (LINE_LIMIT - 10)
        old.send("".join(f"{heavy}{index:02d}\n" for index in range(40)))
        for _ in range(40):
            old.expect_event("message")
        welcome = newcomer.login("newcomer")
        assert welcome["type"] == "welcome"
        earlier = [newcomer.event() for _ in range(3)]
        assert all(event["type"] == "message" and event["earlier"] for event in earlier)
        joined = old.expect_event("join", name="newcomer")
        old.say("/users")
        assert old.expect_event("users")["users"] == ["old", "newcomer"]
        assert joined and not [line for line in old.seen if '"leave"' in line]
    finally:
        old.close()
        newcomer.close()


@pytest.mark.skipif(os.name == "nt", reason="the server tells of lost log lines as it ends on SIGTERM, which "
                                            "Windows does not send: terminate() ends a process outright")
@pytest.mark.slow
def test_the_room_keeps_going_when_nobody_reads_the_servers_stderr():
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "0", "-v", "--joins-per-ip", "0",
                             "--room-joins", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        port = listening_port(proc.stdout.readline())
        watcher = JsonClient(port)
        watcher.login("watcher")
        # Each visit logs a join and a leave: far more than a pipe holds (64 KiB) while stderr is unread.
        for number in range(1500):
            visitor = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            visitor.sendall(Hello(f"v{number}").encode() + b"/quit\n")
            visitor.recv(1)
            visitor.close()
        talker = JsonClient(port)
        talker.login("talker")
        talker.say("still here")
        assert watcher.expect_event("message", timeout=TIMEOUT * 2)["text"] == "still here"
        watcher.close()
        talker.close()
    finally:
        proc.terminate()
        proc.stdout.close()
        log = proc.stderr.read()  # drains it, so the server can finish
        proc.stderr.close()
        proc.wait(TIMEOUT)
    assert "log lines were lost while the log output was not being read" in log


# --- login deadlines ----------------------------------------------------------------------------

def test_a_trickle_without_newlines_cannot_hold_a_login(make_server):
    server = make_server(Config(login_timeout=0.5))
    trickler = RawClient(server.port)
    try:
        trickler.line()
        closed = threading.Event()

        def trickle() -> None:
            try:
                while not closed.wait(0.05):
                    trickler.sock.send(b"x")
            except OSError:
                pass

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        lines = trickler.expect_closed(timeout=TIMEOUT)
        closed.set()
        thread.join(TIMEOUT)
        assert "no login within 0.5 seconds" in lines[-1]
    finally:
        trickler.close()


def test_refused_answers_end_the_login(make_server):
    server = make_server()
    spammer = PlainClient(server.port)
    try:
        spammer.line()
        spammer.send("".join(f"bad name {number}\n" for number in range(10)))
        lines = spammer.expect_closed()
        assert lines.count("Choose another username:") == 4
        assert lines[-1] == "! 5 refused answers: goodbye"
    finally:
        spammer.close()


def test_a_person_may_think_after_a_refused_name(make_server):
    """The first answer is a client program's; a question asked again waits for a person."""
    server = make_server(Config(login_timeout=0.2, answer_timeout=TIMEOUT * 2))
    alice, slow = JsonClient(server.port), PlainClient(server.port)
    try:
        alice.login("alice")
        slow.line()
        slow.send("alice\n")
        assert slow.line() == '! the username "alice" is taken'
        assert slow.line() == "Choose another username:"
        with pytest.raises(TimeoutError):
            slow.line(timeout=0.6)  # three first-answer deadlines pass: still asked, not dropped
        slow.send("bob\n")
        assert "Welcome, bob!" in slow.line()
    finally:
        alice.close()
        slow.close()


def test_an_undecodable_or_long_name_is_asked_again_in_plain_mode(clients):
    client = clients(PlainClient)
    client.line()
    client.send(b"\xff\xfe\n")
    assert client.line() == "! that line was not valid UTF-8 and was not read"
    assert client.line() == "Choose another username:"
    client.send("n" * 5000 + "\n")
    assert client.line().startswith("! that line was longer than")
    assert client.line() == "Choose another username:"
    client.send("fine\n")
    assert "Welcome, fine!" in client.line()


# --- faults -------------------------------------------------------------------------------------

def test_a_failing_sender_stops_the_server_and_tells_everyone(make_server, monkeypatch, caplog):
    server = make_server()
    alice = JsonClient(server.port)
    try:
        alice.login("alice")
        real_take = Outbox.take

        def failing(self, now):  # in the sender's thread, whichever of its sends takes the message
            data = real_take(self, now)
            if b"boom" in data:
                raise RuntimeError("injected fault")
            return data

        monkeypatch.setattr(Outbox, "take", failing)
        alice.say("boom")
        wait_until(lambda: server.sender.crashed)
        monkeypatch.setattr(Outbox, "take", real_take)  # the fault was the sender's; the goodbye may take
        expect_stop_after_failure(server, "sender", alice, caplog.records)
    finally:
        alice.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@wine_limit("Z:\\proc\\self\\fd lists the descriptors Wine itself opens and caches")
def test_tls_connections_are_closed_by_the_server_not_the_garbage_collector(make_server, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem")
    server = make_server(Config(joins_per_address=0), tls_context=context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    gc.disable()  # only the server's own closing may count
    try:
        before = open_fds()
        for number in range(40):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
            with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
                tls_sock.recv(4096)  # the banner
                tls_sock.sendall(Hello(f"t{number}").encode() + b"/quit\n")
                data = b""
                while b'"bye"' not in data:
                    data += tls_sock.recv(4096)
        wait_until(lambda: not server._handlers)
        assert open_fds() <= before + 2
    finally:
        gc.enable()


@pytest.mark.skipif(os.name == "nt", reason="sends SIGINT to a process, which Windows cannot (Ctrl+Break goes to "
                                            "a whole console); test_wine_server.py stops a server there")
def test_a_second_ctrl_c_only_cuts_the_shutdown_short():
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "0", "--rate", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        port = listening_port(proc.stdout.readline())
        watcher = JsonClient(port)
        watcher.login("watcher")
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(Hello("stuck").encode())
        watcher.expect_event("join", name="stuck")
        line = "s" * 4000
        for _ in range(100):  # 8 MB: more than the kernel holds for a reader that stopped
            watcher.send("".join(f"{line}\n" for _ in range(20)))
            for _ in range(20):
                watcher.expect_event("message")
        proc.send_signal(signal.SIGINT)
        watcher.expect_event("shutdown")
        proc.send_signal(signal.SIGINT)  # while the server still waits for "stuck" to read the notice
        out, err = proc.communicate(timeout=TIMEOUT)
        watcher.close()
    finally:
        stuck.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
