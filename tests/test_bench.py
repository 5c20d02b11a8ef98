"""The benchmark itself works: a smoke run of every installed server (a few seconds, 20 clients), its exact
accounting, the order servers take turns in, the ratios of issue #21, and the profiler's bookkeeping."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # the scripts import each other as a script run from there would

import bench  # noqa: E402  (after the path it is found on)
import bench_history  # noqa: E402
import bench_ledger  # noqa: E402
import loadgen  # noqa: E402
import profile_server  # noqa: E402
import trace_hops  # noqa: E402


def line(sender: int, seq: int, sent_ns: int = 0) -> bytes:
    return b'{"type":"message","seq":9,"sender":"u%d","text":"B|%d|%d|%d|xxxx"}\n' % (sender, sender, seq, sent_ns)


C_MISSING = loadgen.accounting_missing("c")  # built here once per test process (the C compiler's output cached)
NEEDS_C = pytest.mark.skipif(bool(C_MISSING), reason=f"the C accounting cannot run here: {C_MISSING}")


@pytest.fixture(params=["python", pytest.param("c", marks=NEEDS_C)])
def accounting(request) -> str:
    """Each accounting of the load generator's: the same books from the same bytes."""
    return request.param


def ledger(clients: int = 3, own: tuple[int, ...] = (0, 1, 2), target=None, **plan):
    target = target or bench.chatroom_target("chatroom", ROOT, 0, [])
    return loadgen.Ledger(loadgen.Plan(target, 0, clients=clients, senders=clients, rate=0.0, size=64, **plan),
                          list(own))


def test_ledger_counts_deliveries_in_order_and_not_a_senders_own_echo(accounting):
    book = ledger(accounting=accounting)
    data = line(1, 1) + line(0, 1) + line(2, 1) + line(1, 2)
    book.account(0, data[:30], 10**6)  # a line cut between two reads is counted once, when complete
    book.account(0, data[30:], 10**6)
    assert (book.deliveries, book.duplicated, book.out_of_order) == (3, 0, 0)
    assert book.lost([1, 2, 1]) == 0 + (1 + 1) + (1 + 2)  # receivers 1 and 2 got nothing yet
    assert book.latencies == [1.0, 1.0, 1.0]


def test_ledger_finds_every_duplicate_reordering_and_loss(accounting):
    book = ledger(own=(0,), accounting=accounting)
    book.account(0, line(1, 1) + line(1, 1) + line(1, 3) + line(1, 2) + line(2, 2), 0)
    assert (book.duplicated, book.out_of_order) == (1, 1)
    assert book.lost([0, 4, 2]) == (4 - 2) + (2 - 1)  # 1:2 and 1:4 missing; 2:1 missing


def test_fields_are_read_by_a_regex_when_a_stray_bar_breaks_the_fast_split():
    lines = line(1, 5, 7) + b'{"type":"users","note":"a|b"}\n' + line(2, 6, 8)
    assert loadgen.fields(lines) == ([b"1", b"2"], [b"5", b"6"], [b"7", b"8"])
    assert loadgen.fields(line(1, 5, 7) + line(2, 6, 8)) == ([b"1", b"2"], [b"5", b"6"], [b"7", b"8"])


def test_ledger_reads_a_read_with_a_stray_bar_by_the_regex(accounting):
    book = ledger(own=(0,), accounting=accounting)
    book.account(0, line(1, 1) + b'{"type":"users","note":"a|b"}\n' + line(2, 1) + line(2, 1), 10**6)
    assert (book.deliveries, book.duplicated, book.out_of_order) == (3, 1, 0) and book.latencies[:2] == [1.0, 1.0]
    assert list(book.last_seq[0]) == [0, 1, 1]


@pytest.mark.parametrize("sender", [b"01", b"+1", b"9"])
def test_ledger_stops_at_a_sender_that_is_no_client_of_the_run(accounting, sender):
    book = ledger(own=(0,), accounting=accounting)
    with pytest.raises(KeyError):
        book.account(0, line(1, 1).replace(b"B|1|", b"B|%s|" % sender), 0)


def test_ledger_paces_a_sender_by_the_next_client_of_its_own_process(accounting):
    book = ledger(clients=6, own=(1, 3, 5), accounting=accounting)
    book.account(3, line(1, 1) + line(1, 2) + line(5, 1), 0)
    assert book.ready == [1] and book.acked[1] == 2 and book.acked[5] == 0


def test_ledger_samples_every_nth_latency_across_reads(accounting):
    book = ledger(own=(0,), sample_every=3, accounting=accounting)
    for seq in range(1, 8):
        book.account(0, line(1, seq, 0), 5 * 10**6)
    assert book.latencies == [5.0, 5.0]


def test_ledger_notes_when_the_server_drops_a_silent_client(accounting):
    book = ledger(silent=frozenset({0}), own=(1,), accounting=accounting)
    book.account(1, b'{"type":"leave","seq":4,"name":"u0","reason":"slow","ts":1.0}\n', 0)
    assert set(book.dropped_at) == {0}


class Acks:
    """A socket as the engines see it after a read: what it was asked to set."""

    def __init__(self, data: bytes = b"") -> None:
        self.data, self.set = data, []

    def recv(self, size: int) -> bytes:
        return self.data

    def setsockopt(self, *option) -> None:
        self.set.append(option)


QUICK = (loadgen.socket.IPPROTO_TCP, loadgen.TCP_QUICKACK, 1)
LINUX = pytest.mark.skipif(loadgen.TCP_QUICKACK is None, reason="TCP_QUICKACK is Linux's")


@LINUX
@pytest.mark.parametrize("scenario", ["saturation", "light"])
def test_each_read_is_acknowledged_at_once_in_the_windowed_scenario_only(scenario):
    # ngircd leaves Nagle on: in the closed loop of the windowed scenario a delayed acknowledgement stalls it.
    plan = replace(bench.scenario_plan(scenario, bench.chatroom_target("chatroom", ROOT, 0, []), 0, 100,
                                       quick=True, engine="selectors"), stamps=False)
    expected = [QUICK] if scenario == "saturation" else []
    sock = Acks(line(1, 1))
    swarm = loadgen.Swarm.__new__(loadgen.Swarm)  # its reading side only: no server to log in to
    swarm.plan, swarm.ledger = plan, ledger(own=(0,))
    swarm.selector = type("Ready", (), {"select": lambda self, timeout: [(type("Key", (), {
        "fileobj": sock, "data": 0})(), 1)]})()
    swarm.poll(0)
    assert sock.set == expected and swarm.ledger.deliveries == 1
    receiver = loadgen.Receiver(type("LoopSwarm", (), {"plan": plan, "received": lambda *args: None})(), 0)
    receiver.connection_made(type("Transport", (), {"get_extra_info": lambda self, name: Acks()})())
    receiver.data_received(line(1, 1))
    assert receiver.sock.set == expected
    assert not replace(plan, delayed_acks=True).quick_acks  # bench.py --delayed-acks


def test_an_older_server_gets_only_the_flags_it_accepts(tmp_path):
    (tmp_path / "server.py").write_text("print('usage: server.py [--rate PER_SECOND] [--max-per-ip N]')\n")
    flags = bench.chatroom_flags(tmp_path / "server.py")
    assert "--rate" in flags and "--joins-per-ip" not in flags and "--history" not in flags
    assert "--joins-per-ip" in bench.chatroom_flags(ROOT / "server.py")


def test_a_server_with_a_history_file_gets_one_of_its_own_for_the_run(tmp_path):
    told = tmp_path / "history-path"
    (tmp_path / "server.py").write_text(
        "import pathlib, sys\n"
        "if '--help' in sys.argv: print('usage: server.py [--history FILE] [--history-keep N]'); sys.exit()\n"
        f"pathlib.Path({str(told)!r}).write_text(sys.argv[sys.argv.index('--history') + 1])\n")
    flags = bench.chatroom_flags(tmp_path / "server.py")
    assert flags[-2:] == ["--history", bench.HISTORY_SLOT]
    target = bench.Target("chatroom", [sys.executable, str(tmp_path / "server.py"), *flags], True, "", b"")
    with pytest.raises(RuntimeError, match="did not start"):  # it exits without listening
        bench.Server(target, bench.free_port())
    history = Path(told.read_text())
    assert history.name == "room.sqlite3" and history.parent.name.startswith("chatroom-bench-")
    assert not history.parent.exists()  # removed with the server
    assert bench.chatroom_flags(tmp_path / "server.py", history=False)[-2:] == ["--history", "none"]


def irc(sender: int, seq: int, sent_ns: int = 0) -> bytes:
    return b":u%d!~u%d@127.0.0.1 PRIVMSG #bench :B|%d|%d|%d|xxxx\r\n" % (sender, sender, sender, seq, sent_ns)


def test_ledger_reads_what_an_irc_server_relays_and_who_it_quit(accounting):
    target = bench.target("ngircd", 6667, bench.Checkouts(ROOT), {})
    book = ledger(own=(1,), target=target, silent=frozenset({0}), accounting=accounting)
    book.account(1, b":u2!~u2@127.0.0.1 JOIN :#bench\r\n" + irc(2, 1) + irc(0, 1)[:20], 10**6)
    book.account(1, irc(0, 1)[20:] + irc(2, 2) + b":u0!~u0@127.0.0.1 QUIT :Write buffer overflow\r\n", 10**6)
    assert (book.deliveries, book.duplicated, book.out_of_order) == (3, 0, 0)
    assert set(book.dropped_at) == {0}
    assert target.say == b"PRIVMSG #bench :" and target.welcome == b" 366 "  # sent before a payload; joined


def random_stream(rng: random.Random, clients: int, make, stray: bytes, leave: bytes) -> list[bytes]:
    """What one receiver might read: every client sending (its own echoes too), with losses, duplicates,
    older lines again, neighbours swapped, a field Python's int() reads but ledger.c leaves to it, leading
    zeros, lines without a payload, a stray "|" now and then (the "|" count of its read irregular)."""
    lines, next_seq = [], [1] * clients
    for _ in range(rng.randint(200, 400)):
        sender, roll = rng.randrange(clients), rng.random()
        seq = next_seq[sender]
        if roll < 0.04 and seq > 1:
            seq = rng.randint(max(1, seq - 3), seq - 1)  # again, or older
        else:
            seq += rng.randint(1, 3) if roll < 0.08 else 0  # some lost
            next_seq[sender] = seq + 1
        text = make(sender, seq, rng.randrange(10**18, 2 * 10**18))
        if roll > 0.99:
            text = text.replace(b"B|%d|%d|" % (sender, seq), b"B|%d|%s%d|" % (sender, rng.choice([b" ", b"00"]), seq))
        lines.append(text)
    for index in range(len(lines) - 1):
        if rng.random() < 0.03:
            lines[index], lines[index + 1] = lines[index + 1], lines[index]
    for extra in [leave, stray, stray, b"\n" * 3] + [b"%d\n" % index for index in range(5)]:
        lines.insert(rng.randrange(len(lines)), extra)
    return lines


@NEEDS_C
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("form", ["chatroom", "irc"])
def test_the_c_and_python_accountings_agree_on_every_count_of_a_random_stream(form, seed, monkeypatch):
    monkeypatch.setattr(loadgen, "FIRST_CAPACITY", 8)  # so that ledger.c's arrays grow, as for a long read
    rng = random.Random(f"{form}{seed}")
    clients, own = 9, (1, 4, 6, 8)
    if form == "irc":
        target, make = bench.target("ngircd", 6667, bench.Checkouts(ROOT), {}), irc
        stray, leave = b":u3!~u3@127.0.0.1 TOPIC #bench :a|b\r\n", b":u0!~u0@127.0.0.1 QUIT :Write buffer\r\n"
    else:
        target, make = bench.chatroom_target("chatroom", ROOT, 0, []), line
        stray, leave = b'{"type":"users","note":"a|b"}\n', b'{"type":"leave","seq":4,"name":"u0","reason":"x"}\n'
    chunks = {}  # each receiver's stream, cut at random
    for receiver in own:
        stream = b"".join(random_stream(rng, clients, make, stray, leave))
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(5, 60)))
        chunks[receiver] = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)])]
    turns = [receiver for receiver in own for _ in chunks[receiver]]
    rng.shuffle(turns)  # the receivers' reads interleaved, each stream in its order
    every = rng.choice([1, 3, 7])
    books = {accounting: ledger(clients, own, target, silent=frozenset({0}), sample_every=every,
                                accounting=accounting) for accounting in ("python", "c")}
    for receiver in turns:
        data, now = chunks[receiver].pop(0), rng.randrange(2 * 10**18, 3 * 10**18)
        for book in books.values():
            book.account(receiver, data, now)

    def seen(book):
        return (book.deliveries, book.duplicated, book.out_of_order, book.books.seen, book.latencies, book.ready,
                book.acked, sorted(book.dropped_at), book.tails, book.lost([400] * clients),
                {r: (list(book.last_seq[r]), list(book.gaps[r])) for r in own})

    python, c = seen(books["python"]), seen(books["c"])
    assert python == c
    assert python[1] and python[2] and python[4] and any(any(gaps) for _, gaps in python[-1].values())


COARSE_CPU_CLOCK = pytest.mark.skipif(os.name == "nt", reason="Windows' CPU clocks tick every 15.6 ms: a smoke run "
                                                              "reads 0")


@COARSE_CPU_CLOCK
def test_bench_ledger_times_an_accounting_per_delivery(accounting):
    assert 0 < bench_ledger.cost(accounting, clients=100, per_read=60, deliveries=6000) < 1000


@pytest.mark.skipif(os.name == "nt", reason="ledger.c is built for Linux and macOS only")
def test_without_a_c_compiler_the_accounting_is_pythons_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    assert loadgen.c_walk.__wrapped__() == (None, "false failed: exit status 1")
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert loadgen.c_walk.__wrapped__() == (None, "no C compiler (cc or gcc, or $CC)")
    assert list(tmp_path.rglob("*.so")) == []  # nothing half built left behind
    monkeypatch.setattr(loadgen, "c_walk", lambda: (None, "no C compiler (cc or gcc, or $CC)"))
    with pytest.raises(RuntimeError, match=r"^the C accounting is not available: no C compiler"):
        ledger(accounting="c")
    assert ledger(accounting="python").deliveries == 0


@NEEDS_C
def test_the_c_accounting_is_built_once_for_its_source_and_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    walk, missing = loadgen.c_walk.__wrapped__()
    assert walk is not None and missing == ""
    built = list((tmp_path / "chatroom").iterdir())
    assert len(built) == 1 and re.fullmatch(r"ledger-[0-9a-f]{16}\.so", built[0].name)  # no temporary left
    modified = built[0].stat().st_mtime_ns
    assert loadgen.c_walk.__wrapped__()[1] == "" and built[0].stat().st_mtime_ns == modified


@NEEDS_C
def test_a_read_longer_than_a_c_int_is_left_to_the_python_loop(monkeypatch):
    book = ledger(own=(0,), accounting="c")
    monkeypatch.setattr(loadgen, "C_INT_MAX", 10)  # 2 GiB in a real read
    monkeypatch.setattr(book, "_walk", lambda *args: pytest.fail("a length C cannot take went to C"))
    book.account(0, line(1, 1) + line(2, 1), 0)
    assert book.deliveries == 2


def test_a_ledger_samples_every_nth_latency_from_the_first_on():
    with pytest.raises(ValueError, match="sample_every is 1 or more"):
        ledger(sample_every=0)  # the C walk would divide by it


@NEEDS_C
def test_a_damaged_library_in_the_cache_is_built_again(monkeypatch, tmp_path):
    # Its name from a build elsewhere (a library loaded once stays loaded under its path: damage a copy).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "first"))
    assert loadgen.c_walk.__wrapped__()[1] == ""
    [built] = (tmp_path / "first" / "chatroom").iterdir()
    damaged = tmp_path / "second" / "chatroom" / built.name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a library")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "second"))
    walk, missing = loadgen.c_walk.__wrapped__()
    assert walk is not None and missing == "" and damaged.read_bytes()[:4] in (b"\x7fELF", b"\xcf\xfa\xed\xfe")


def test_the_ngircd_config_is_the_runs_own_with_penalties_off(tmp_path):
    target = bench.target("ngircd", 16667, bench.Checkouts(ROOT), {})
    files = dict(target.files)
    config = files["ngircd.cfg"]
    assert "Ports = 16667" in config and "Listen = 127.0.0.1" in config and "MaxPenaltyTime = 0" in config
    assert "MaxConnectionsIP = 0" in config and "{port}" not in config
    assert target.command[:3] == ["ngircd", "--nodaemon", "--config"]
    if shutil.which("ngircd") is None:
        return  # the rest needs ngircd itself
    for name, text in files.items():
        (tmp_path / name).write_text(text.replace(bench.SCRATCH, str(tmp_path)))
    checked = subprocess.run(["ngircd", "--configtest", "--config", str(tmp_path / "ngircd.cfg")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"PidFile = {tmp_path}/ngircd.pid" in checked.stdout and f"IncludeDir = {tmp_path}" in checked.stdout


def test_servers_take_turns_within_each_scenario_in_the_opposite_order_every_other_round(monkeypatch):
    order = []
    monkeypatch.setattr(bench, "run_one", lambda name, scenario, size, round_, *rest: order.append(
        (round_, scenario, size, name)) or bench.Result(name, scenario, size, 1.0, round=round_))
    args = bench.build_parser().parse_args(["--rounds", "2"])
    bench.run_all(["chatroom", "ngircd"], ["light", "saturation"], [100, 1000], args, bench.Checkouts(ROOT), {})
    assert order == [(1, "light", 0, "chatroom"), (1, "light", 0, "ngircd"),
                     (1, "saturation", 100, "chatroom"), (1, "saturation", 100, "ngircd"),
                     (1, "saturation", 1000, "chatroom"), (1, "saturation", 1000, "ngircd"),
                     (2, "light", 0, "ngircd"), (2, "light", 0, "chatroom"),
                     (2, "saturation", 100, "ngircd"), (2, "saturation", 100, "chatroom"),
                     (2, "saturation", 1000, "ngircd"), (2, "saturation", 1000, "chatroom")]


def result(target, scenario, clients, round_, **figures):
    return bench.Result(target, scenario, clients, 10.0, round=round_, deliveries=1,
                        generator_cpus=[1, 1], generator_cpu_percent=[30.0, 35.0], **figures)


def test_the_summary_gives_issue_21s_ratios_per_round_and_whether_each_goal_holds():
    results = [
        result("chatroom", "saturation", 100, 1, deliveries_per_s=1_800_000, server_cpu_us_per_delivery=0.34),
        result("ngircd", "saturation", 100, 1, deliveries_per_s=1_600_000, server_cpu_us_per_delivery=0.33),
        result("chatroom", "saturation", 100, 2, deliveries_per_s=1_500_000, server_cpu_us_per_delivery=0.36),
        result("ngircd", "saturation", 100, 2, deliveries_per_s=1_600_000, server_cpu_us_per_delivery=0.33),
        result("chatroom", "light", 100, 1, p50_ms=1.0, p99_ms=2.0),
        result("ngircd", "light", 100, 1, p50_ms=1.0, p99_ms=30.0),
        result("chatroom", "light", 100, 2, p50_ms=1.1, p99_ms=2.5),
        result("ngircd", "light", 100, 2, p50_ms=1.0, p99_ms=30.0),
        result("chatroom", "slow", 50, 1, slow_client_dropped_after_s=10.2, server_rss_growth_mib=5.0, p99_ms=3.0),
    ]
    lines = {line.label: line for line in bench.summary(results, ["chatroom", "ngircd"], [100], 2)}
    faster = lines["saturation N=100: deliveries/s, chatroom / ngircd"]
    assert (faster.values, faster.goal, faster.met, faster.generator_cpu) == ([1.12, 0.94], ">= 1", False, 65)
    cost = lines["saturation N=100: server CPU us per delivery, chatroom"]
    assert (cost.values, cost.met) == ([0.34, 0.36], False)
    assert lines["light: p50 latency, chatroom / ngircd"].values == [1.0, 1.1]
    assert lines["light: p50 latency, chatroom / ngircd"].met is True
    assert lines["light: p99 latency, chatroom"].met is True
    dropped = lines["slow reader: dropped after, chatroom"]
    assert dropped.values == [10.2, None] and dropped.met is None  # round 2 did not run it: no verdict
    table = bench.summary_table(list(lines.values()))
    assert "1.12, 0.94" in table and "NO" in table and ">= 1" in table


def test_the_profile_puts_each_sample_in_its_stage_and_splits_each_roles_cpu_by_them():
    raw = ("thread (11): Thread-3 (process_request_thread);ChatHandler._serve (chatroom/server/handler.py:165);"
           "Room.handle (chatroom/server/room.py:340);Outbox.put_all (chatroom/server/sender.py:80) 3\n"
           "thread (11): Thread-3 (process_request_thread);ChatHandler._serve (chatroom/server/handler.py:152);"
           "PlainStream.recv (chatroom/server/streams.py:62);wait_ready (chatroom/server/streams.py:25) 5\n"
           "thread (11): Thread-3 (process_request_thread);ChatHandler._serve (chatroom/server/handler.py:165);"
           "json_codec (chatroom/codecs.py:42);encode_json (chatroom/codecs.py:16);dumps (json/__init__.py:238) 1\n"
           "thread (12): sender;Sender._run (chatroom/server/sender.py:264);"
           "PlainStream.send_nowait (chatroom/server/streams.py:68) 2\n")
    roles = profile_server.roles_of('Thread 11 (idle): "Thread-3 (process_request_thread)"\n'
                                    'Thread 12 (active): "sender"\nThread 13 (idle): "MainThread"\n'
                                    'Thread 14 (idle): "reader"\n')
    assert roles == {11: "handlers", 12: "sender", 13: "other threads", 14: "reader"}
    by_stage = profile_server.samples_by_stage(raw, roles)
    assert by_stage["handlers"] == Counter({"fan-out to outboxes": 3, profile_server.WAITING: 5, "encoding": 1})
    times = {11: profile_server.ThreadTimes(user=0.3, system=0.1, voluntary=20),
             12: profile_server.ThreadTimes(user=0.1, system=0.1), 13: profile_server.ThreadTimes()}
    syscalls = profile_server.perf_counts("python-11,300,,syscalls:sys_enter_recvfrom,0,100.00,,\n"
                                          "python-12,<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n")
    found = profile_server.breakdown(by_stage, roles, times, syscalls, messages=10_000, clients=100)
    stages = {(role, stage): round(us, 3) for role, stage, us in found.stages}
    assert stages == {("handlers", "fan-out to outboxes"): 30.0, ("handlers", "encoding"): 10.0,
                      ("sender", "send (its Python and the syscall)"): 20.0}
    handlers = found.roles["handlers"]
    assert (handlers.threads, handlers.user_us, handlers.waits) == (1, 30.0, 0.002)
    assert handlers.syscalls == {"recv": pytest.approx(0.03)} and found.roles["sender"].syscalls == {}
    assert found.waiting_samples == 5 and found.deliveries_per_message == 99


def run_quick(*args: str, timeout: float = 100) -> tuple[subprocess.CompletedProcess, dict]:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{abs(hash(args))}.json"
    try:
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--seconds", "0.5",
                                 "--generators", "2", "--json", str(out), *args],
                                capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        return result, json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def check_results(report: dict, targets: set[str], scenarios: tuple[str, ...] = ("light", "saturation", "slow")):
    results = report["results"]
    assert {(r["target"], r["scenario"]) for r in results} == {(t, s) for t in targets for s in scenarios}
    for entry in results:
        assert entry["deliveries"] > 0 and entry["generators"] == 2, entry["notes"]
        assert len(entry["generator_cpu_percent"]) == 2 and entry["server_cpu_percent"] is not None
        if sys.platform == "linux":
            assert len(entry["cpu_busy_percent"]) == os.cpu_count()
        assert (entry["lost"], entry["duplicated"], entry["out_of_order"]) == (0, 0, 0), entry
        expected = "uvloop" if entry["scenario"] == "saturation" and loadgen.uvloop_available() else "selectors"
        assert entry["engine"] == expected and entry["accounting"] == ("python" if C_MISSING else "c")
        assert entry["generator_cpu_us_per_delivery"] > 0


POSIX = pytest.mark.skipif(os.name == "nt", reason="the benchmark reads /proc and raises limits with resource")


@POSIX
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_smoke_chatroom_with_and_without_history_and_a_baseline_checkout():
    result, report = run_quick("--targets", "chatroom,no-history", "--baseline", str(ROOT))
    assert "deliv/s" in result.stdout and "gen CPU %" in result.stdout and "goal (#21)" in result.stdout
    assert report["targets"] == ["chatroom", "no-history", "baseline"] and report["baseline_root"] == str(ROOT)
    flags = report["chatroom_flags"]
    assert flags["chatroom"][-6:] == ["--joins-per-ip", "0", "--room-joins", "0", "--history", bench.HISTORY_SLOT]
    assert flags["no-history"][-2:] == ["--history", "none"] and flags["baseline"] == flags["chatroom"]
    check_results(report, {"chatroom", "no-history", "baseline"})
    labels = {line["label"] for line in report["summary"]}
    assert "saturation N=20: deliveries/s, chatroom / no-history" in labels
    assert "saturation N=20: server CPU per delivery, chatroom / baseline" in labels


@POSIX
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["ngircd", "naive", "ncat"])
def test_bench_smoke_other_servers(name):
    if name in bench.INSTALL_HINTS and shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (Debian/Ubuntu: {bench.INSTALL_HINTS[name]})")
    _, report = run_quick("--targets", name)
    check_results(report, {name})


@POSIX
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_smoke_cluster_through_a_redis_of_its_own_with_its_cpu():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)")
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e .[cluster]")
    _, report = run_quick("--cluster", "--targets", "", "--scenarios", "light,steady")
    assert report["targets"] == ["cluster"] and report["chatroom_flags"]["cluster"][-2:] == ["--cluster", "{redis}"]
    check_results(report, {"cluster"}, ("light", "steady"))
    assert all(entry["redis_cpu_percent"] is not None for entry in report["results"])


@POSIX
@pytest.mark.timeout(60)
def test_the_selectors_engine_runs_saturation_too():
    _, report = run_quick("--targets", "chatroom", "--scenarios", "saturation", "--engine", "selectors")
    assert [entry["engine"] for entry in report["results"]] == ["selectors"]
    assert report["results"][0]["deliveries"] > 0 and report["results"][0]["lost"] == 0


@POSIX
@NEEDS_C
@pytest.mark.timeout(60)
def test_both_accountings_take_turns_in_one_run_each_with_its_summary():
    result, report = run_quick("--targets", "chatroom", "--scenarios", "saturation", "--accounting", "python,c")
    assert [entry["accounting"] for entry in report["results"]] == ["python", "c"] and "acct" in result.stdout
    assert all(entry["deliveries"] > 0 and entry["lost"] == 0 for entry in report["results"])
    labels = [line["label"] for line in report["summary"]]
    assert "saturation N=20: lost + duplicated + reordered, chatroom (python accounting)" in labels
    assert "saturation N=20: lost + duplicated + reordered, chatroom (c accounting)" in labels


@POSIX
def test_without_the_c_accounting_auto_says_so_once_and_c_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(bench, "accounting_missing", lambda accounting: "no C compiler" if accounting == "c" else "")
    runs = []
    monkeypatch.setattr(bench, "run_all", lambda names, scenarios, sizes, args, *rest: runs.append(args.accounting)
                        or [])
    assert bench.main(["--targets", "chatroom", "--scenarios", "light"]) == 0
    assert runs == [["python"]]
    out = capsys.readouterr().out
    assert out.count("note: the C accounting cannot run here (no C compiler): the generators checked") == 1
    with pytest.raises(SystemExit):
        bench.main(["--accounting", "python,c"])
    assert "error: the C accounting cannot run here: no C compiler (--accounting python" in capsys.readouterr().err


@POSIX
def test_a_missing_server_is_skipped_with_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    monkeypatch.setattr(bench, "run_all", lambda *args: [])
    assert bench.main(["--targets", "chatroom,ngircd", "--scenarios", "light"]) == 0
    assert "note: ngircd is not installed: skipped (Debian/Ubuntu: apt-get install ngircd)" in capsys.readouterr().out


def test_on_windows_the_benchmark_says_it_needs_linux_or_macos():
    # Run as Windows would: sys.platform "win32" and no resource module to import; sys.path as
    # `python scripts/bench.py` has it; asyncio imported first, as it imports on Windows (not with this fake).
    code = ("import asyncio, runpy, sys; sys.modules['resource'] = None; sys.argv = ['bench.py', '--quick']\n"
            "sys.path.insert(0, 'scripts')\n"
            "sys.platform = 'win32'\n"
            "runpy.run_path('scripts/bench.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith("bench.py: error: the benchmark needs Linux or macOS") and result.stdout == ""


@POSIX
def test_trace_hops_times_each_hop_of_a_line_through_the_server():
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "trace_hops.py"), "--count", "20",
                             "--interval", "0.002", "--members", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)  # a hang ends with the server it started, too
    try:
        out, errors = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, errors
    lines = out.splitlines()
    assert lines[0].startswith("20 lines, one every 0.002 s, 3 members")
    times = {line.split(maxsplit=1)[1]: float(line.split()[0]) for line in lines[1:]}
    assert list(times) == [label for _, label in trace_hops.HOPS[1:]] + [
        "sent to received by the last member, as its client saw it"], out
    parsed, made, handed, _woken, first_send, last_send = list(times.values())[:-1]
    # The reader's steps come in turn on its thread, and a send ends after it began. The sender thread keeps its
    # own time: one already running takes the line without being woken, so its wake-up may come after the send.
    assert parsed <= made <= handed and first_send <= last_send, out


@COARSE_CPU_CLOCK
@pytest.mark.parametrize("layout", ["rows", "trigram", "grouped"])
def test_bench_history_times_each_step_of_the_writer(layout):
    figures = bench_history.measure(groups=2, per=50, trigram=layout == "trigram", grouped=layout == "grouped")
    assert list(figures) == list(bench_history.STEPS) and all(value >= 0 for value in figures.values())
    if layout == "trigram":
        assert figures["index"] > 0
