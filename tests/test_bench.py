"""The benchmark itself works: a few seconds, 20 clients, our server and the naive one; its exact accounting."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def line(sender: int, seq: int, sent_ns: int = 0) -> bytes:
    return b'{"type":"message","seq":9,"sender":"u%d","text":"B|%d|%d|%d|xxxx"}\n' % (sender, sender, seq, sent_ns)


def ledger(clients: int = 3, own: tuple[int, ...] = (0, 1, 2), **plan):
    target = bench.Target("chatroom", [], True, "", b"")
    return bench.Ledger(bench.Plan(target, 0, clients=clients, senders=clients, rate=0.0, size=64, **plan),
                        list(own))


def test_ledger_counts_deliveries_in_order_and_not_a_senders_own_echo():
    book = ledger()
    data = line(1, 1) + line(0, 1) + line(2, 1) + line(1, 2)
    book.account(0, data[:30], 10**6)  # a line cut between two reads is counted once, when complete
    book.account(0, data[30:], 10**6)
    assert (book.deliveries, book.duplicated, book.out_of_order) == (3, 0, 0)
    assert book.lost([1, 2, 1]) == 0 + (1 + 1) + (1 + 2)  # receivers 1 and 2 got nothing yet
    assert book.latencies == [1.0, 1.0, 1.0]


def test_ledger_finds_every_duplicate_reordering_and_loss():
    book = ledger(own=(0,))
    book.account(0, line(1, 1) + line(1, 1) + line(1, 3) + line(1, 2) + line(2, 2), 0)
    assert (book.duplicated, book.out_of_order) == (1, 1)
    assert book.lost([0, 4, 2]) == (4 - 2) + (2 - 1)  # 1:2 and 1:4 missing; 2:1 missing


def test_fields_are_read_by_a_regex_when_a_stray_bar_breaks_the_fast_split():
    lines = line(1, 5, 7) + b'{"type":"users","note":"a|b"}\n' + line(2, 6, 8)
    assert bench.fields(lines) == ([b"1", b"2"], [b"5", b"6"], [b"7", b"8"])
    assert bench.fields(line(1, 5, 7) + line(2, 6, 8)) == ([b"1", b"2"], [b"5", b"6"], [b"7", b"8"])


def test_ledger_paces_a_sender_by_the_next_client_of_its_own_process():
    book = ledger(clients=6, own=(1, 3, 5))
    book.account(3, line(1, 1) + line(1, 2) + line(5, 1), 0)
    assert book.ready == [1] and book.acked[1] == 2 and book.acked[5] == 0


def test_ledger_samples_every_nth_latency_across_reads():
    book = ledger(own=(0,), sample_every=3)
    for seq in range(1, 8):
        book.account(0, line(1, seq, 0), 5 * 10**6)
    assert book.latencies == [5.0, 5.0]


def test_ledger_notes_when_the_server_drops_a_silent_client():
    book = ledger(silent=frozenset({0}), own=(1,))
    book.account(1, b'{"type":"leave","seq":4,"name":"u0","reason":"slow","ts":1.0}\n', 0)
    assert set(book.dropped_at) == {0}


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


@pytest.mark.skipif(os.name == "nt", reason="the benchmark reads /proc and raises limits with resource (POSIX)")
@pytest.mark.timeout(120)
def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--targets",
                             "chatroom,naive", "--seconds", "1", "--generators", "2", "--json", str(out)],
                            capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "deliv/s" in result.stdout and "gen CPU %" in result.stdout
    report = json.loads(out.read_text())
    assert report["chatroom_flags"][-6:] == ["--joins-per-ip", "0", "--room-joins", "0", "--history",
                                             bench.HISTORY_SLOT]
    results = report["results"]
    assert {(r["target"], r["scenario"]) for r in results} == {
        (target, scenario) for target in ("chatroom", "naive") for scenario in ("light", "saturation", "slow")}
    for entry in results:
        assert entry["deliveries"] > 0 and entry["generators"] == 2
        assert len(entry["generator_cpu_percent"]) == 2 and entry["server_cpu_percent"] is not None
        if sys.platform == "linux":
            assert len(entry["cpu_busy_percent"]) == os.cpu_count()
        if entry["target"] == "chatroom":
            assert (entry["lost"], entry["duplicated"], entry["out_of_order"]) == (0, 0, 0)


def test_on_windows_the_benchmark_says_it_needs_linux_or_macos():
    # Run as Windows would: sys.platform "win32" and no resource module to import.
    code = ("import runpy, sys; sys.modules['resource'] = None; sys.argv = ['bench.py', '--quick']\n"
            "sys.platform = 'win32'\n"
            "runpy.run_path('scripts/bench.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith("bench.py: error: the benchmark needs Linux or macOS") and result.stdout == ""
