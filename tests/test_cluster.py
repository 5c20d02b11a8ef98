"""The cluster's engine against a real redis-server: one order for every server, names decided once across servers,
dead servers swept once, and Redis killed or paused without a half-published event or a lost one."""

from __future__ import annotations

import functools
import logging
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import TIMEOUT
from redis_fixture import RedisServer, running_redis

from chatroom import names
from chatroom.protocol import Event, Joined, Left, Message, Private, Reconnecting, Renamed
from chatroom.server.grace import HELD_PRIVATES

cluster = pytest.importorskip("chatroom.server.cluster", reason="the redis package is missing: pip install -e "
                                                                ".[cluster]")
from chatroom.server.cluster import (  # noqa: E402  (after the skip: it imports redis)
    Bounced, ClusterError, ClusterUnavailable, Engine, Gap, NameRefused, NotMember, Published, Record, Seat,
    Undeliverable,
)

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"beat_every": 0.1}  # sweeps ten times a second: the tests wait less
# A call's bound is its timeout (1 s), and as much again waiting for a pooled connection; the margin is for a
# busy machine. Still well under the 5 s pause, which a call without its bound would wait out.
BOUND = 4.0


class Collector:
    """What a reader delivered, and waits for it (each bounded by TIMEOUT)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._changed = threading.Condition()

    def __call__(self, batch: list[Record]) -> None:
        with self._changed:
            self.records += batch
            self._changed.notify_all()

    def wait(self, done: Callable[[list[Record]], bool], timeout: float = TIMEOUT) -> list[Record]:
        with self._changed:
            assert self._changed.wait_for(lambda: done(self.records), timeout), f"not delivered: {self.records[-5:]}"
            return list(self.records)

    def events(self) -> list[Event]:
        with self._changed:
            return [record.event for record in self.records if isinstance(record, Published)]


E = TypeVar("E", bound=Event)


def published(records: list[Record], kind: type[E]) -> list[E]:
    """The events of one kind among the records."""
    return [r.event for r in records if isinstance(r, Published) and isinstance(r.event, kind)]


def messages(records: list[Record]) -> list[Message]:
    return published(records, Message)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def engines(redis_server: RedisServer) -> Iterator[Callable[..., Engine]]:
    """Started engines (servers of one room), each stopped at the end."""
    started: list[Engine] = []
    failures: list[BaseException] = []

    def start(on_swept: Callable[[], None] = lambda: None, **options: object) -> Engine:
        engine = Engine(redis_server.url, **{**QUICK, **options})  # type: ignore[arg-type]  # the tests' choices
        engine.start(on_swept, failures.append)
        started.append(engine)
        return engine

    yield start
    with ThreadPoolExecutor(max(1, len(started))) as pool:  # each waits for its reader's XREAD: all at once
        list(pool.map(Engine.stop, started))
    assert not failures


def follow(engine: Engine, after: int = 0) -> Collector:
    collector = Collector()
    engine.follow(after, collector)
    return collector


def hold_on(call: Callable[[], object], timeout: float = TIMEOUT) -> object:
    """`call`'s answer, tried again while the cluster is unavailable (Redis coming back, a server joining again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClusterUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- one order --------------------------------------------------------------------------------------------------

def test_many_threads_on_three_servers_make_one_order_without_loss_or_doubling(engines):
    servers = [engines() for _ in range(3)]
    readers = [follow(server) for server in servers]
    threads_per_server, each = 4, 50
    returned: dict[str, int] = {}
    lock = threading.Lock()

    def talk(server: Engine, name: str) -> None:
        seat = server.claim(name).seat
        for n in range(each):
            text = f"{name} {n}"
            seq = server.publish(seat, Message(seq=0, sender=name, text=text))
            with lock:
                returned[text] = seq

    names_ = [(server, f"s{i}t{t}") for i, server in enumerate(servers) for t in range(threads_per_server)]
    with ThreadPoolExecutor(len(names_)) as pool:
        for future in [pool.submit(talk, server, name) for server, name in names_]:
            future.result()
    total = len(names_) * each
    seen = [reader.wait(lambda records: len(messages(records)) == total) for reader in readers]
    orders = [[(m.seq, m.sender, m.text) for m in messages(records)] for records in seen]
    assert orders[0] == orders[1] == orders[2]
    assert sorted(text for _, _, text in orders[0]) == sorted(returned)  # each once
    assert all(returned[text] == seq for seq, _, text in orders[0])
    for records in seen:  # consecutive ids: the joins and the messages, nothing skipped but the epoch's start
        seqs = [r.event.seq for r in records if isinstance(r, Published)]  # type: ignore[attr-defined]  # all have
        assert seqs == list(range(seqs[0], seqs[0] + len(names_) + total))
        assert [r for r in records if isinstance(r, Gap)] == [Gap(0, seqs[0], records[0].epoch)]  # type: ignore
        for sender in {name for _, name in names_}:  # and one sender's messages in the order sent
            mine = [m.text for m in messages(records) if m.sender == sender]
            assert mine == [f"{sender} {n}" for n in range(each)]
    # A server started late reads the same from the stream.
    late = follow(engines())
    assert [(m.seq, m.sender, m.text) for m in messages(late.wait(lambda r: len(messages(r)) == total))] == orders[0]


# --- names ------------------------------------------------------------------------------------------------------

def test_300_concurrent_claims_of_100_names_give_exactly_one_winner_each(engines):
    servers = [engines() for _ in range(3)]
    variants = {i: [f"user{i}", f"USER{i}", f"us\u0435r{i}"] for i in range(100)}  # case; a Cyrillic е
    assert all(len({names.key(v) for v in group}) == 2 and len({names.skeleton(v) for v in group}) == 1
               for group in variants.values())
    claims = [(i, name) for i, group in variants.items() for name in group]
    random.shuffle(claims)

    def claim(n: int) -> str:
        try:
            servers[n % 3].claim(claims[n][1], max_members=1000)
            return "won"
        except NameRefused as refused:
            return refused.code

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(claim, range(len(claims))))
    assert Counter(claims[n][0] for n, outcome in enumerate(outcomes) if outcome == "won") == Counter(range(100))
    assert set(outcomes) == {"won", "name_taken", "name_lookalike"}
    snapshot = servers[0].snapshot()
    assert sorted(names.skeleton(name) for name, _ in snapshot.members) == sorted(
        names.skeleton(group[0]) for group in variants.values())
    assert len(published(servers[1].recent(0), Joined)) == 100


def test_a_room_full_and_a_reconnecting_name_are_refused_across_servers(engines):
    one, two = engines(grace=30), engines(grace=30)
    alice = one.claim("alice", token_hash="t", max_members=2)
    two.claim("bob", max_members=2)
    with pytest.raises(NameRefused) as full:
        two.claim("carol", max_members=2)
    assert full.value.code == "room_full"
    one.leave(alice.seat, "lost", keep=True)
    with pytest.raises(NameRefused) as reserved:
        two.claim("ALICE", max_members=10)
    assert reserved.value.code == "name_reserved" and reserved.value.holder == "alice"
    assert 29 < reserved.value.wait <= 30


def test_renames_racing_across_servers_give_one_winner_each(engines):
    servers = [engines() for _ in range(3)]
    reader = follow(servers[0])
    rounds = 30
    seats = [servers[n].claim(f"member{n}").seat for n in range(3)]
    for r in range(rounds):
        targets = [f"carol{r}", f"CAROL{r}", f"c\u0430rol{r}"]  # the same key twice, and a look-alike
        random.shuffle(targets)
        outcomes = race([functools.partial(renamed, servers[n], seats[n], targets[n]) for n in range(3)])
        won = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, Seat)]
        assert len(won) == 1 and {o for o in outcomes if isinstance(o, str)} <= {"name_lookalike", "name_taken"}
        seats[won[0]] = outcomes[won[0]]  # type: ignore[call-overload]  # a Seat, as just checked
        loser = (won[0] + 1) % 3  # the loser's seat is still its own
        servers[loser].publish(seats[loser], Message(seq=0, sender=seats[loser].name, text="still here"))
    renames = published(reader.wait(lambda records: len(published(records, Renamed)) == rounds), Renamed)
    assert [names.skeleton(e.new) for e in renames] == [names.skeleton(f"carol{r}") for r in range(rounds)]
    assert sorted(name for name, _ in servers[2].snapshot().members) == sorted(seat.name for seat in seats)


def renamed(server: Engine, seat: Seat, name: str) -> Seat:
    return server.rename(seat, name)[0]


def race(calls: list[Callable[[], object]]) -> list[object]:
    """Each call in a thread of its own, all let go at once: what each returned, or the code of its refusal."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> object:
        barrier.wait(TIMEOUT)
        try:
            return call()
        except NameRefused as refused:
            return refused.code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_a_resume_token_works_once(engines):
    one, two = engines(grace=30), engines(grace=30)
    first = one.claim("alice", token_hash="t1")
    one.leave(first.seat, "lost", keep=True)
    back = two.claim("Alice", token_hash="t2", presented="t1")
    assert back.resumed and back.seat.name == "alice"
    with pytest.raises(NameRefused) as again:  # the same token a second time: the name is someone's
        one.claim("alice", token_hash="t3", presented="t1")
    assert again.value.code == "name_taken"
    two.leave(back.seat, "lost", keep=True)
    with pytest.raises(NameRefused) as spent:
        one.claim("alice", token_hash="t3", presented="t1")
    assert spent.value.code == "name_reserved"
    assert one.claim("alice", token_hash="t3", presented="t2").resumed
    with pytest.raises(NotMember):  # the seat of before the resume is no longer anyone's
        two.publish(back.seat, Message(seq=0, sender="alice", text="ghost"))
    assert two.leave(back.seat, "closed", keep=False) is None  # and the old connection's end says nothing


# --- private messages -------------------------------------------------------------------------------------------

def test_private_messages_route_wait_bounce_and_never_sit_in_the_stream(engines, redis_server):
    one, two = engines(grace=0.5), engines(grace=0.5)
    reader = follow(two)
    raw = redis_server_client(redis_server)
    alice = one.claim("alice", token_hash="ta").seat
    bob = two.claim("bob", token_hash="tb").seat
    sent = one.whisper(alice, Private(seq=0, sender="alice", to="BOB", text="psst"))
    assert sent.to == "bob" and not sent.held
    with pytest.raises(Undeliverable) as nobody:
        one.whisper(alice, Private(seq=0, sender="alice", to="carol", text="hello?"))
    assert nobody.value.code == "unknown_user"
    two.leave(bob, "lost", keep=True)
    held = [one.whisper(alice, Private(seq=0, sender="alice", to="bob", text=f"wait {n}"))
            for n in range(HELD_PRIVATES)]
    assert all(w.held for w in held)
    assert raw.llen("chatroom:{room}:held:bob") == HELD_PRIVATES
    assert not [item for item in raw.lrange("chatroom:{room}:held:bob", 0, -1) if "wait" in item]
    with pytest.raises(Undeliverable) as full:
        one.whisper(alice, Private(seq=0, sender="alice", to="bob", text="one too many"))
    assert full.value == Undeliverable("not_delivered", "bob")
    back = one.claim("bob", token_hash="tb2", presented="tb")
    assert [p.text for p in back.held] == [f"wait {n}" for n in range(HELD_PRIVATES)]
    assert [p.seq for p in back.held] == [w.seq for w in held]
    one.leave(back.seat, "lost", keep=True)
    one.whisper(alice, Private(seq=0, sender="alice", to="bob", text="never read"))
    records = reader.wait(lambda records: any(isinstance(r, Bounced) for r in records))
    assert [r.private.text for r in records if isinstance(r, Bounced)] == ["never read"]
    first = next(r for r in records if isinstance(r, Published) and isinstance(r.event, Private))
    assert first.event == Private(seq=sent.seq, sender="alice", to="bob", text="psst", ts=first.event.ts)
    assert [r.held for r in records if isinstance(r, Published) and isinstance(r.event, Private)] == [
        False, *[True] * HELD_PRIVATES, True]
    # Redis itself: no text in the stream; each text under its own key for the grace and a minute at most.
    stream = raw.xrange("chatroom:{room}:log")
    assert not [value for _, fields in stream for value in fields.values() if "psst" in value or "never" in value]
    assert 0 < raw.pttl(f"chatroom:{{room}}:pm:{sent.seq}") <= one.private_ttl
    raw.close()


def redis_server_client(server: RedisServer):  # type: ignore[no-untyped-def]  # redis's client, for looking inside
    import redis

    return redis.Redis.from_url(server.url, decode_responses=True, protocol=2)


def test_a_redis_that_writes_to_disk_is_refused(redis_server):
    raw = redis_server_client(redis_server)
    raw.config_set("save", "3600 1")
    raw.close()
    engine = Engine(redis_server.url)
    with pytest.raises(ClusterError, match="--save '' --appendonly no"):
        engine.start(lambda: None, lambda exc: None)


def test_no_redis_is_one_clear_sentence_at_once():
    with socket.socket() as probe:  # a port nothing listens on (also on Windows, which has no AF_UNIX for redis)
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    engine = Engine(url)
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable, match=r"^cannot reach the cluster's Redis at redis://127\.0\.0\.1:\d+/0 \("):
        engine.start(lambda: None, lambda exc: None)
    assert time.monotonic() - started < BOUND


# --- dead servers -----------------------------------------------------------------------------------------------

DEAD_SERVER = """
import sys, time
from chatroom.server.cluster import Engine
engine = Engine(sys.argv[1], grace=1.5, alive=1.5, beat_every=0.1)
engine.start(lambda: None, lambda exc: None)
for n in range(10):
    engine.claim(f"kept{n}", token_hash=f"token{n}")
    engine.claim(f"plain{n}")
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_dead_servers_members_are_reconnecting_then_lost_exactly_once(engines, redis_server):
    dead = subprocess.Popen([sys.executable, "-c", DEAD_SERVER, redis_server.url], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert dead.stdout is not None and dead.stdout.readline() == "ready\n"
        sweepers = [engines(grace=1.5) for _ in range(3)]
        reader = follow(sweepers[0])
        time.sleep(1)  # alive: nobody is swept while its heartbeats come
        assert not published(reader.records, Reconnecting)
        dead.kill()
        dead.wait(TIMEOUT)
    finally:
        dead.kill()
        dead.wait(TIMEOUT)
        assert dead.stdout is not None
        dead.stdout.close()
    reader.wait(lambda records: bool(published(records, Reconnecting)))
    back = sweepers[2].claim("kept0", token_hash="new", presented="token0")  # resumes on another server
    assert back.resumed
    records = reader.wait(lambda rs: len(published(rs, Left)) == 19)
    reconnecting = Counter(event.name for event in published(records, Reconnecting))
    left = Counter((event.name, event.reason) for event in published(records, Left))
    assert reconnecting == Counter(f"kept{n}" for n in range(10))
    assert left == Counter([*((f"kept{n}", "lost") for n in range(1, 10)), *((f"plain{n}", "lost") for n in range(10))])
    assert sorted(sweepers[1].snapshot().members) == [("kept0", False)]


def test_a_server_that_stops_leaves_its_members_reconnecting_for_another(engines):
    one, two = engines(grace=30), engines(grace=30)
    reader = follow(two)
    one.claim("alice", token_hash="t")
    one.claim("bob")
    one.stop()
    records = reader.wait(lambda rs: bool(published(rs, Left)))
    assert sorted((type(r.event).__name__, getattr(r.event, "name", ""), getattr(r.event, "reason", ""))
                  for r in records if isinstance(r, Published) and not isinstance(r.event, Joined)) == [
        ("Left", "bob", "shutdown"), ("Reconnecting", "alice", "")]
    assert two.claim("alice", presented="t").resumed


def test_a_server_taken_for_dead_is_told_and_joins_again(engines):
    swept = threading.Event()
    one = engines(on_swept=swept.set, alive=0.3, beat_every=1.0)  # its heartbeat lapses between two beats
    seat = one.claim("alice").seat
    engines()  # another server, which sweeps
    assert swept.wait(TIMEOUT)
    with pytest.raises(NotMember):
        one.publish(seat, Message(seq=0, sender="alice", text="from a ghost"))
    assert not hold_on(lambda: one.claim("alice")).resumed  # type: ignore[attr-defined]


# --- Redis gone, Redis paused -------------------------------------------------------------------------------------

class Talker:
    """A member of a server who says numbered lines until stopped, claiming its name again when its seat is gone
    (Redis lost it); what was acknowledged, what failed, and how long each failure took."""

    def __init__(self, server: Engine, name: str) -> None:
        self.server, self.name = server, name
        self.acknowledged: dict[str, int] = {}
        self.failed: list[str] = []
        self.failed_after: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._talk)
        self.thread.start()

    def _talk(self) -> None:
        seat = None
        n = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if seat is None:
                    seat = self.server.claim(self.name).seat
                text = f"{self.name} {n}"
                n += 1
                self.acknowledged[text] = self.server.publish(seat, Message(seq=0, sender=self.name, text=text))
            except ClusterUnavailable:
                if seat is not None:
                    self.failed.append(text)
                self.failed_after.append(time.monotonic() - started)
                self.stopping.wait(0.05)
            except (NotMember, NameRefused):
                seat = None  # Redis came back empty: the name is free again
            self.stopping.wait(0.005)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(TIMEOUT)


def talkers(servers: list[Engine]) -> list[Talker]:
    return [Talker(server, f"talker{n}") for n, server in enumerate(servers)]


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def lost_ids(records: list[Record]) -> Gap:
    """The ids a reader did not get when Redis lost its data: the gap before the second epoch."""
    epochs = [r for r in records if isinstance(r, Gap) and r.epoch]
    assert len(epochs) == 2, epochs  # the room's first, and the one after the loss
    return epochs[1]


def test_redis_killed_mid_traffic_publishes_nothing_by_halves_and_ids_keep_growing(engines, redis_server, caplog):
    caplog.set_level(logging.WARNING, "chatroom.server")
    swept = threading.Event()
    servers = [engines(on_swept=swept.set) for _ in range(2)]
    readers = [follow(server) for server in servers]
    people = talkers(servers)
    try:
        wait_for(lambda: all(len(t.acknowledged) >= 20 for t in people))
        redis_server.kill()
        wait_for(lambda: all(len(t.failed_after) >= 3 for t in people))
        before = {t.name: len(t.acknowledged) for t in people}
        redis_server.start()
        wait_for(lambda: all(len(t.acknowledged) >= before[t.name] + 20 for t in people))
    finally:
        for talker in people:
            talker.stop()
    assert swept.is_set()  # the servers found their places gone with Redis's data, and joined again
    assert max(t for talker in people for t in talker.failed_after) < BOUND
    acknowledged = {text: seq for talker in people for text, seq in talker.acknowledged.items()}
    failed = {text for talker in people for text in talker.failed}
    last = max(acknowledged.values())
    seen = [reader.wait(lambda rs: any(m.seq == last for m in messages(rs))) for reader in readers]
    for records in seen:
        seqs = [r.event.seq for r in records if isinstance(r, Published)]  # type: ignore[attr-defined]  # all have
        assert seqs == sorted(set(seqs))  # ids only grow, also across the loss
        lost = lost_ids(records)
        delivered = {m.text: m.seq for m in messages(records)}
        for text, seq in delivered.items():  # every event whole, with its id; or one whose answer was lost
            assert acknowledged.get(text) == seq or text in failed
        for text, seq in acknowledged.items():  # what Redis acknowledged: here, or lost with Redis's memory
            assert delivered.get(text) == seq or lost.after < seq < lost.before
    for mine, other in [seen, seen[::-1]]:  # what one server has and another has not is in the other's gap
        theirs = {m.seq for m in messages(other)}
        gap = lost_ids(other)
        assert all(gap.after < m.seq < gap.before for m in messages(mine) if m.seq not in theirs)
    said = Counter(r.getMessage().split(" (")[0] for r in caplog.records if "cluster's Redis" in r.getMessage())
    where = redis_server.url
    assert said == {f"the cluster's Redis at {where} is unreachable": 2,  # once per server
                    f"the cluster's Redis at {where} is reachable again": 2}


@pytest.mark.slow
def test_redis_paused_5_s_drops_nobody_fails_fast_and_loses_nothing(engines, redis_server):
    servers = [engines() for _ in range(3)]
    readers = [follow(server) for server in servers]
    people = talkers(servers)
    try:
        wait_for(lambda: all(len(t.acknowledged) >= 20 for t in people))
        redis_server.pause()
        paused = time.monotonic()
        wait_for(lambda: time.monotonic() - paused >= 5, timeout=10)
        redis_server.resume()
        before = {t.name: len(t.acknowledged) for t in people}
        wait_for(lambda: all(len(t.acknowledged) >= before[t.name] + 20 for t in people))
    finally:
        for talker in people:
            talker.stop()
    assert all(len(t.failed_after) >= 2 for t in people)  # they failed, again and again ...
    assert max(t for talker in people for t in talker.failed_after) < BOUND  # ... each within its bound
    acknowledged = {text: seq for talker in people for text, seq in talker.acknowledged.items()}
    failed = {text for talker in people for text in talker.failed}
    last = max(acknowledged.values())
    seen = [reader.wait(lambda rs: any(m.seq == last for m in messages(rs))) for reader in readers]
    assert seen[0] == seen[1] == seen[2]  # one order, nothing partial
    delivered = {m.text: m.seq for m in messages(seen[0])}
    assert all(delivered.get(text) == seq for text, seq in acknowledged.items())  # nothing lost
    # A line refused is not delivered; unless Redis stopped between running the script and answering it: then
    # it reached everyone, and its sender heard of a failure.
    assert set(delivered) - set(acknowledged) <= failed
    assert len(set(delivered) - set(acknowledged)) <= 1
    assert not published(seen[0], Reconnecting) and not published(seen[0], Left)
    assert [r for r in seen[0] if isinstance(r, Gap)] == [seen[0][0]]  # the room's first epoch alone


def test_a_leave_while_redis_is_away_is_made_when_it_is_back(engines, redis_server):
    one, two = engines(grace=30), engines()
    reader = follow(two)
    seat = one.claim("alice", token_hash="t").seat
    redis_server.pause()
    try:
        started = time.monotonic()
        assert one.leave(seat, "lost", keep=True) is None  # Redis did not answer: the leave waits ...
        assert time.monotonic() - started < BOUND
    finally:
        redis_server.resume()
    assert published(reader.wait(lambda rs: bool(published(rs, Reconnecting))), Reconnecting)[0].name == "alice"
    assert two.claim("alice", presented="t").resumed  # ... and was made


def test_a_failing_reader_or_callback_is_reported_not_silent(redis_server, caplog):
    failures: list[BaseException] = []
    engine = Engine(redis_server.url, **QUICK)  # type: ignore[arg-type]
    engine.start(lambda: None, failures.append)
    try:
        def deliver(batch: list[Record]) -> None:
            raise RuntimeError("the room broke")

        engine.follow(0, deliver)
        engine.claim("alice")
        wait_for(lambda: bool(failures))
        assert str(failures[0]) == "the room broke"
        assert "the cluster's reader failed" in caplog.text
    finally:
        engine.stop()


def test_an_answer_to_a_call_made_before_redis_went_does_not_say_it_is_back(caplog):
    from chatroom.server.cluster.link import Availability
    caplog.set_level(logging.WARNING, "chatroom.server")
    availability = Availability("redis://127.0.0.1:1/0")
    before = time.monotonic()  # a read waiting in XREAD when Redis went, answered after another call failed
    availability.failed(ConnectionError("refused"))
    availability.ok(before)
    assert availability.down
    availability.ok(time.monotonic())
    assert not availability.down
    said = [record.getMessage().split(" (")[0] for record in caplog.records]
    assert said == ["the cluster's Redis at redis://127.0.0.1:1/0 is unreachable",
                    "the cluster's Redis at redis://127.0.0.1:1/0 is reachable again"]
