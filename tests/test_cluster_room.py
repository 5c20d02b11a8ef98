"""One room on three servers (--cluster) against a real redis-server: the same ids in the same order for everyone,
names unique across servers, private messages and resumes across servers, Redis killed or paused, a late server's
history. The servers run in this process on 127.0.0.1, as the other server tests' do."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient, in_file, resumable, wait_until
from redis_fixture import RedisServer, running_redis
from server_process import ServerProcess

from chatroom.protocol import Hello, Left, Message
from chatroom.server.config import Config
from chatroom.server.handler import ChatServer
from chatroom.server.history import History
from chatroom.server.main import join_cluster

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("redis") is not None:
    from chatroom.server.cluster import ClusterUnavailable, Engine, Published
    from chatroom.server.cluster import room as cluster_room
    from chatroom.server.cluster.room import ClusterRoom


def serve(*args: str, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """server.py with these arguments, stopped by its first output line if it starts (SIGINT, as Ctrl+C; on
    Windows, where a signal to a process sharing our console would stop us too, terminated). Its stderr goes to
    a file: -X importtime writes more than a pipe holds on Windows before the first line comes out."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen([sys.executable, *python, str(ROOT / "server.py"), "0", "--history", "none",
                                    *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)
        assert process.stdout is not None
        first = process.stdout.readline()
        if "listening" in first:
            if sys.platform == "win32":
                process.terminate()
            else:
                process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=TIMEOUT)
        errors.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, first + out, errors.read())


def test_without_cluster_nothing_of_it_is_imported():
    started = serve("-q", python=("-X", "importtime"))
    assert "listening" in started.stdout, started.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in started.stderr.splitlines() if "import time:" in line}
    assert "chatroom.server.main" in imported
    assert not {name for name in imported if name.startswith(("redis", "chatroom.server.cluster"))}


def test_cluster_without_the_redis_package_says_what_to_install():
    code = ("import sys; sys.modules['redis'] = None; from chatroom.server.main import main; "
            "sys.exit(main(['0', '--history', 'none', '--cluster', 'redis://127.0.0.1:1/0']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(": error: --cluster needs the redis package: pip install -e .[cluster]"), line


def test_cluster_with_redis_unreachable_says_so_in_one_line():
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e .[cluster]")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = serve("--cluster", f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 2 and "listening" not in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert "error:" in line and f"127.0.0.1:{port}" in line, line

CONFIG = Config(rate=0, joins_per_address=0, room_joins=0, max_per_address=200, max_members=200)
SERVERS = 3
CLIENTS = 20  # per server (the 3 x 100 is the benchmark's: this keeps the suite's seconds few)
LINES = 5  # each client's messages


class Cluster:
    """Servers of one room, sharing a redis-server; more can be started late."""

    def __init__(self, redis: RedisServer, make_server: Callable[..., ChatServer], folder: Path) -> None:
        self.redis = redis
        self.make_server = make_server
        self.folder = folder
        self.servers: list[ChatServer] = []
        self.clients: list[JsonClient] = []

    def start(self, history: Path | None = None, **engine: float) -> ChatServer:
        """A server of the room, as main starts it; with `engine` options (alive, beat_every), its engine's."""
        server = self.make_server(CONFIG)
        kept = History(history, keep=CONFIG.history_keep, remember=CONFIG.catchup)
        if engine:
            room = ClusterRoom(CONFIG, kept, Engine(self.redis.url, grace=CONFIG.grace, floor=kept.last_id, **engine))
            room.start(server.apply, lambda exc: server.shutdown())
            server.room = room
        else:
            server.room = join_cluster(self.redis.url, CONFIG, kept, server)
        self.servers.append(server)
        return server

    def client(self, server: int, name: str) -> tuple[JsonClient, dict]:
        client = JsonClient(self.servers[server].port)
        self.clients.append(client)
        return client, client.login(name)

    def resumable(self, server: int, name: str, **fields: object) -> tuple[JsonClient, dict]:
        client, welcome = resumable(self.servers[server].port, name, **fields)
        self.clients.append(client)
        return client, welcome


@pytest.fixture
def cluster(tmp_path: Path, make_server: Callable[..., ChatServer]) -> Iterator[Cluster]:
    with running_redis(tmp_path) as redis:
        # Set up after the servers' fixture, so torn down before it: the servers stop while Redis still answers.
        room = Cluster(redis, make_server, tmp_path)
        try:
            yield room
        finally:
            for client in room.clients:
                client.close()
            with ThreadPoolExecutor(len(room.servers) or 1) as pool:  # each waits for its reader's XREAD
                list(pool.map(_stop, room.servers))


def _stop(server: ChatServer) -> None:
    server.shutdown()
    server.stop(grace=0.5)


def messages_until(client: JsonClient, count: int) -> list[tuple[int, str, str]]:
    """(id, sender, text) of the next `count` messages the client receives."""
    seen = []
    while len(seen) < count:
        event = client.event()
        if event["type"] == "message":
            seen.append((event["seq"], event["sender"], event["text"]))
    return seen


def test_cluster_with_a_redis_that_writes_to_disk_is_refused_in_one_line(tmp_path):
    import redis

    with running_redis(tmp_path) as server:
        with redis.Redis.from_url(server.url) as raw:
            raw.config_set("save", "3600 1")
        result = serve("--cluster", server.url)
    assert result.returncode == 2 and "listening" not in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert "writes its data to disk" in line and "--save '' --appendonly no" in line, line


def test_clients_on_three_servers_see_the_same_messages_with_the_same_ids_in_the_same_order(cluster):
    for _ in range(SERVERS):
        cluster.start()
    logins = [cluster.client(n % SERVERS, f"u{n}") for n in range(SERVERS * CLIENTS)]
    assert all(welcome["type"] == "welcome" for _, welcome in logins)
    clients = [client for client, _ in logins]

    def talk(n: int) -> list[tuple[int, str, str]]:
        for line in range(LINES):
            clients[n].say(f"line {line} of u{n}")
        return messages_until(clients[n], len(clients) * LINES)

    with ThreadPoolExecutor(len(clients)) as pool:
        seen = list(pool.map(talk, range(len(clients))))
    assert all(each == seen[0] for each in seen)
    ids = [seq for seq, _, _ in seen[0]]
    assert ids == sorted(set(ids))
    assert sorted(text for _, _, text in seen[0]) == sorted(f"line {line} of u{n}" for n in range(len(clients))
                                                            for line in range(LINES))
    for n in range(len(clients)):  # each one's lines in the order it sent them
        assert [text for _, sender, text in seen[n] if sender == f"u{n}"] == [f"line {i} of u{n}" for i in range(LINES)]


def test_names_are_unique_across_servers_whatever_their_case_or_look(cluster):
    for _ in range(SERVERS):
        cluster.start()
    assert cluster.client(0, "alice")[1]["type"] == "welcome"
    assert cluster.client(1, "ALICE")[1]["code"] == "name_taken"
    lookalike = cluster.client(2, "\u0430lice")[1]  # a Cyrillic a
    assert lookalike["code"] == "name_lookalike" and '"alice"' in lookalike["message"]
    # Three servers race for one name: one wins.
    with ThreadPoolExecutor(SERVERS) as pool:
        answers = list(pool.map(lambda n: cluster.client(n, ["carol", "Carol", "CAROL"][n])[1], range(SERVERS)))
    assert sorted(answer["type"] for answer in answers) == ["error", "error", "welcome"]
    bob = cluster.client(1, "bob")[0]
    bob.say("/nick Alice")
    assert bob.expect_event("error")["code"] == "name_taken"
    bob.say("/nick robert")
    renamed = bob.expect_event("rename")
    assert (renamed["old"], renamed["new"]) == ("bob", "robert")
    bob.say("/users")
    users = bob.expect_event("users")["users"]
    assert sorted(name for name in users if name.lower() != "carol") == ["alice", "robert"] and len(users) == 3


def test_a_private_message_reaches_its_recipient_on_another_server_and_nobody_else(cluster):
    for _ in range(SERVERS):
        cluster.start()
    alice, bob, carol = (cluster.client(n, name)[0] for n, name in enumerate(["alice", "bob", "carol"]))
    alice.say("/msg BOB only for you")
    private = bob.expect_event("private")
    assert (private["sender"], private["to"], private["text"]) == ("alice", "bob", "only for you")
    assert alice.expect_event("private")["seq"] == private["seq"]
    alice.say("/msg nobody hello")
    assert alice.expect_event("error")["code"] == "unknown_user"
    alice.say("public")
    assert carol.expect_event("message")["seq"] > private["seq"]  # carol got the public line, never the private
    assert not any('"private"' in line for line in carol.seen)


def test_a_member_resumes_on_another_server_with_nothing_missing_and_its_held_messages(cluster):
    for _ in range(SERVERS):
        cluster.start()
    alice, welcome = cluster.resumable(0, "alice")
    bob = cluster.client(1, "bob")[0]
    bob.say("before")
    last = alice.expect_event("message", text="before")["seq"]
    alice.close()
    bob.expect_event("reconnecting", name="alice")
    for text in ("while away 1", "while away 2"):
        bob.say(text)
    bob.say("/msg alice kept for you")
    assert bob.expect_event("error")["code"] == "held"
    back, answer = cluster.resumable(2, "alice", resume=welcome["token"], after=last,
                                     epoch=welcome["epoch"])
    assert answer["resumed"] is True
    replayed = []
    while (event := back.event())["type"] != "caught_up":
        replayed.append(event)
    assert event["missing"] == 0
    assert [e["text"] for e in replayed if e["type"] in ("message", "private")] == \
        ["while away 1", "while away 2", "kept for you"]
    bob.expect_event("join", name="alice", back=True)


def test_a_dead_servers_member_is_reconnecting_and_resumes_on_another_with_nothing_missing(cluster):
    doomed = cluster.start(alive=0.5, beat_every=0.1)  # its heartbeat lasts 0.5 s: the others see it dead soon
    cluster.start(beat_every=0.1)  # sweeps ten times a second
    alice, welcome = cluster.resumable(0, "alice")
    bob = cluster.client(1, "bob")[0]
    bob.say("before")
    last = alice.expect_event("message", text="before")["seq"]
    # As kill -9 leaves it: no more heartbeats, sweeps or leaves from that server, its connections gone.
    engine = doomed.room.engine

    def dead(*args: object) -> NoReturn:
        raise ClusterUnavailable("dead")

    engine._keeper.beat = engine._keeper.sweep = dead
    engine.leave = lambda *args: None
    alice.close()
    bob.expect_event("reconnecting", name="alice")
    bob.say("while away")
    bob.expect_event("message", text="while away")  # in the room's order before alice comes back: her catch-up's
    back, answer = cluster.resumable(1, "alice", resume=welcome["token"], after=last, epoch=welcome["epoch"])
    assert answer["resumed"] is True
    caught_up = back.expect_event("caught_up")
    assert caught_up["missing"] == 0
    assert [json.loads(line).get("text") for line in back.seen if '"message"' in line] == ["while away"]
    bob.expect_event("join", name="alice", back=True)


def test_a_join_whose_own_join_does_not_come_back_in_time_is_refused_and_not_seated(cluster, monkeypatch):
    monkeypatch.setattr(cluster_room, "SEEN_WAIT", 0.3)
    server = cluster.start()
    follower = server.room.engine._follower
    deliver, gate = follower.deliver, threading.Event()
    follower.deliver = lambda records: (gate.wait(TIMEOUT), deliver(records))  # the stream's answers held back
    try:
        alice = JsonClient(server.port)
        cluster.clients.append(alice)
        alice.line()
        alice.send(Hello("alice").encode())
        assert alice.event()["code"] == "cluster_unavailable"
    finally:
        gate.set()
    # Her join was numbered in Redis before the refusal: the room's order has it, then her leave (her seat given
    # back). Once the held stream has come through to the leave, she is nobody's to list.
    wait_until(lambda: any(isinstance(event, Left) and event.name == "alice"
                           for event in list(server.room._recent._events)))
    assert "alice" not in server.room.names()
    bob, welcome = cluster.client(0, "bob")
    assert welcome["type"] == "welcome" and "alice" not in welcome["users"]


@pytest.mark.slow
def test_a_server_killed_with_sigkill_leaves_its_member_reconnecting_and_it_resumes_on_another(tmp_path):
    # The real thing, as the issue asks: two server processes, one killed -9; its heartbeat lapses after 10 s.
    with running_redis(tmp_path) as redis:
        doomed = ServerProcess(None, "--cluster", redis.url, "--rate", "0")
        other = ServerProcess(None, "--cluster", redis.url, "--rate", "0")
        alice = bob = back = None
        try:
            alice, welcome = resumable(doomed.port, "alice")
            bob = JsonClient(other.port)
            bob.login("bob")
            bob.say("before")
            last = alice.expect_event("message", text="before")["seq"]
            doomed.kill()
            bob.expect_event("reconnecting", name="alice", timeout=20)  # heartbeat 10 s, then a sweep
            bob.say("while away")
            bob.expect_event("message", text="while away")
            back, answer = resumable(other.port, "alice", resume=welcome["token"], after=last,
                                     epoch=welcome["epoch"])
            assert answer["resumed"] is True
            assert back.expect_event("caught_up")["missing"] == 0
            assert [json.loads(line).get("text") for line in back.seen if '"message"' in line] == ["while away"]
            bob.expect_event("join", name="alice", back=True)
        finally:
            for client in (alice, bob, back):
                if client is not None:
                    client.close()
            doomed.stop()
            other.stop()


def test_redis_killed_mid_traffic_refuses_lines_and_ids_grow_after_it_returns(cluster):
    cluster.start()
    cluster.start()
    alice, welcome = cluster.resumable(0, "alice")
    bob = cluster.client(1, "bob")[0]
    alice.say("first")
    before = bob.expect_event("message", text="first")["seq"]
    cluster.redis.kill()
    alice.say("never sent")
    refused = alice.expect_event("error")
    assert refused["code"] == "cluster_unavailable" and '"never sent"' in refused["message"]
    cluster.redis.start()  # empty, as a Redis without persistence comes back
    # Each server finds it was forgotten: its connections end as lost, so that their clients log in again.
    assert {"type": "bye", "reason": "lost"} in [json.loads(line) for line in alice.expect_closed()]
    bob.expect_closed()
    alice, _ = cluster.resumable(0, "alice", resume=welcome["token"])
    bob = cluster.client(1, "bob")[0]
    alice.say("second")
    after = bob.expect_event("message", text="second")["seq"]
    assert after > before
    assert not any("never sent" in line for line in bob.seen)


def test_redis_paused_drops_nobody_and_the_room_goes_on_when_it_answers(cluster):
    cluster.start()
    cluster.start()
    alice = cluster.client(0, "alice")[0]
    bob = cluster.client(1, "bob")[0]
    cluster.redis.pause()
    try:
        alice.say("in the pause")
        assert alice.expect_event("error")["code"] == "cluster_unavailable"
        threading.Event().wait(3.0)  # the pause itself: what the test is about (no event to wait for)
    finally:
        cluster.redis.resume()
    alice.say("after the pause")
    assert bob.expect_event("message", text="after the pause")["seq"] == \
        alice.expect_event("message", text="after the pause")["seq"]
    assert not any('"reconnecting"' in line or '"leave"' in line for line in alice.seen + bob.seen)


def test_a_refused_line_that_reached_the_room_after_all_is_said_so_to_its_sender(cluster):
    server = cluster.start()
    alice = cluster.client(0, "alice")[0]
    cluster.redis.pause()
    try:
        alice.say("maybe")
        assert alice.expect_event("error")["code"] == "cluster_unavailable"
    finally:
        cluster.redis.resume()
    # Redis ran it and answered too late (a pause between the two, which no test can time): the stream has it.
    room = server.room
    [ref] = room._unsure
    room._deliver([Published(Message(seq=room._seq + 1, sender="alice", text="maybe"), room.engine.server_id, ref)])
    assert alice.expect_event("message", text="maybe")
    late = alice.expect_event("error")
    assert late["code"] == "sent_after_all" and '"maybe"' in late["message"]


def test_a_server_started_late_has_the_same_history(cluster, tmp_path):
    first = cluster.start(tmp_path / "first.sqlite3")
    alice = cluster.client(0, "alice")[0]
    for n in range(5):
        alice.say(f"kept {n}")
    alice.expect_event("message", text="kept 4")
    late = cluster.start(tmp_path / "late.sqlite3")
    query = "SELECT group_concat(id) FROM (SELECT id FROM events ORDER BY id)"
    wait_until(lambda: in_file(tmp_path / "late.sqlite3", query) == in_file(tmp_path / "first.sqlite3", query))
    carol = cluster.client(1, "carol")[0]
    carol.say("/history 5")
    found = carol.expect_event("found")
    assert [m["text"] for m in found["messages"]] == [f"kept {n}" for n in range(5)]
    assert first.room.names() == ["alice", "carol"]
    assert late.room.names() == ["alice", "carol"]  # the late server's picture: the stream it read did not undo it
