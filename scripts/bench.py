"""Relay benchmark: chatroom's server beside ngircd (C), a naive threaded server and `ncat --chat`, on loopback.

Scenarios (see docs/performance.md):
  light       100 clients, 10 senders, 100 messages/s in total: end-to-end latency
  saturation  N clients all sending as fast as a bounded in-flight window allows: deliveries/s, latency,
              server CPU per delivery, peak RSS
  slow        50 clients, one never reads, the others send 1000 messages/s of 400 bytes: their latency,
              late or missing messages, the server's RSS, when the slow client was dropped
  steady      20 clients, all sending, 2000 messages/s in total: latency under a steady load (with --cluster,
              the CPU Redis takes)
A delivery is one message arriving at one receiver. Every payload carries its sender, a sequence number
and the send time, so lost, duplicated and out-of-order deliveries are counted per sender.

The servers take turns within each scenario (the order reversed every other round), --rounds times, and the
run ends with the ratios issue #21 states its targets in. The server under test runs alone on CPU 0; the
load generator (scripts/loadgen.py) is one or more processes on the other CPUs, and every figure comes with
their CPU use.
With --cluster the target `cluster` is this checkout's server with --cluster, through a redis-server (no
persistence) that each of its runs starts on a free port; its CPU use is reported beside the server's.
Usage: python scripts/bench.py [--targets chatroom,no-history,ngircd,baseline,naive,ncat,cluster] [--baseline DIR]
                               [--cluster] [--scenarios light,saturation,slow,steady] [--sizes 100,1000]
                               [--rounds R]
                               [--seconds S] [--generators K] [--engine auto|selectors|uvloop]
                               [--accounting auto,c,python] [--delayed-acks]
                               [--chatroom-root DIR] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from loadgen import (ACCOUNTINGS, KERNEL_STAMPS, STEP_TIMEOUT, Generators, Plan, Report, Target, accounting_missing,
                     can_pin, generator_cpus, pin, uvloop_available)

ROOT = Path(__file__).resolve().parent.parent
WINDOWS_REFUSAL = ("the benchmark needs Linux or macOS: it raises the open-file limit with the resource module, "
                   "measures the server through /proc, and drives up to 1000 sockets with one selector, which "
                   "Windows' select() caps at 512")
LATE_MS = 200.0  # a delivery slower than this counts as late in the slow-reader scenario
SATURATED = 0.9  # a CPU's generators above this share of it may be the limit rather than the server
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SCRATCH = "{scratch}"  # in a server's command and files: the directory made for its run, removed after it
HISTORY_SLOT = SCRATCH + "/room.sqlite3"  # a chatroom server's history file, of the run's own
NGIRCD_CONFIG = ROOT / "benchmarks" / "ngircd.conf"
IRC_CHANNEL = "#bench"
TARGETS = ("chatroom", "no-history", "baseline", "ngircd", "naive", "ncat", "cluster")
SCENARIOS = ("light", "saturation", "slow", "steady")
INSTALL_HINTS = {"ncat": "apt-get install ncat", "ngircd": "apt-get install ngircd",
                 "redis-server": "apt-get install redis-server"}
OPEN_LIMITS = ["--rate", "0", "--max-per-ip", "100000", "--max-clients", "100000", "--login-timeout", "120"]
LOGIN_LIMITS_OFF = ["--joins-per-ip", "0", "--room-joins", "0"]  # issue 9's; an older server has none
REDIS_URL = "{redis}"  # in the cluster target's command: the URL of the redis-server started for its run


# --- servers under test ---------------------------------------------------------------

def chatroom_flags(server_py: Path, history: bool = True) -> list[str]:
    """Every limit opened; the login limits of issue 9 only for a server that has them (older ones refuse them);
    a server that keeps its history on disk keeps it in a file of the run's own (HISTORY_SLOT), as it would
    by default, but not left behind in the user's data directory (`history` False: in memory only)."""
    flags = [*OPEN_LIMITS, "-q"]
    usage = subprocess.run([sys.executable, str(server_py), "--help"], capture_output=True, text=True,
                           timeout=30).stdout
    if "--joins-per-ip" in usage:
        flags += LOGIN_LIMITS_OFF
    if "--history FILE" in usage:
        flags += ["--history", HISTORY_SLOT if history else "none"]
    return flags


@dataclass(frozen=True)
class Checkouts:
    """The chatroom servers a run measures: this checkout (or --chatroom-root) and maybe a baseline, each
    with the flags its own --help admits (asked once per run)."""
    root: Path
    baseline: Path | None = None

    def flags(self) -> dict[str, list[str]]:
        found = {"chatroom": chatroom_flags(self.root / "server.py"),
                 "no-history": chatroom_flags(self.root / "server.py", history=False)}
        found["cluster"] = [*found["chatroom"], "--cluster", REDIS_URL]
        if self.baseline is not None:
            found["baseline"] = chatroom_flags(self.baseline / "server.py")
        return found


def chatroom_target(name: str, root: Path, port: int, flags: list[str]) -> Target:
    return Target(name, [sys.executable, str(root / "server.py"), str(port), *flags], True,
                  '{{"type":"hello","name":"{name}"}}', b'"welcome"', leave_marker=b'"leave"',
                  leave=rb'"type":"leave","seq":\d+,"name":"u(\d+)"')


def target(name: str, port: int, checkouts: Checkouts, flags: dict[str, list[str]]) -> Target:
    if name in ("chatroom", "no-history", "cluster"):
        return chatroom_target(name, checkouts.root, port, flags[name])
    if name == "baseline":
        assert checkouts.baseline is not None
        return chatroom_target(name, checkouts.baseline, port, flags[name])
    if name == "ngircd":
        config = NGIRCD_CONFIG.read_text().replace("{port}", str(port))
        return Target(name, ["ngircd", "--nodaemon", "--config", SCRATCH + "/ngircd.cfg"], True,
                      f"NICK {{name}}\r\nUSER {{name}} 0 * :{{name}}\r\nJOIN {IRC_CHANNEL}",
                      b" 366 ",  # the end of the channel's names: joined
                      say=f"PRIVMSG {IRC_CHANNEL} :".encode(), leave_marker=b" QUIT ", leave=rb":u(\d+)!\S* QUIT ",
                      files=(("ngircd.cfg", config), ("motd", "chatroom benchmark\n")))
    if name == "naive":
        return Target(name, [sys.executable, str(ROOT / "benchmarks" / "naive_threaded.py"), str(port)],
                      True, "{name}", b"welcome ")
    if name == "ncat":
        return Target(name, ["ncat", "-l", "--chat", "--max-conns", "100000", "127.0.0.1", str(port)],
                      False, "", b"")
    raise ValueError(f"unknown target {name}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except OSError:
        return None


def cpu_times() -> list[tuple[int, int]] | None:
    """(busy, total) clock ticks of each CPU since boot, kernel work included (Linux's /proc/stat)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    times = []
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(value) for value in values]
            times.append((sum(ticks) - ticks[3] - ticks[4], sum(ticks)))  # less idle and iowait
    return times


def busy_percent(before: list[tuple[int, int]] | None, after: list[tuple[int, int]] | None) -> list[float]:
    if not before or not after or len(before) != len(after):
        return []
    return [round((b1 - b0) / max(1, t1 - t0) * 100, 1) for (b0, t0), (b1, t1) in zip(before, after)]


def proc_memory_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Server:
    """A server under test, alone on CPU 0, with a directory of its own (its files, history and log)."""

    def __init__(self, target: Target, port: int) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="chatroom-bench-")
        directory = Path(self.scratch.name)
        for name, text in target.files:
            (directory / name).write_text(text.replace(SCRATCH, self.scratch.name))
        command = [arg.replace(SCRATCH, self.scratch.name) for arg in target.command]
        self.log = directory / "server.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                         preexec_fn=(lambda: pin(0)) if can_pin() else None)
        self.probe: socket.socket | None = None
        deadline = time.monotonic() + 10
        while True:
            try:
                # Kept open until the clients are in: ncat quits when a peer closes before it looked at it.
                self.probe = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    said = self.log.read_text(errors="replace").strip().splitlines()
                    self.stop()
                    raise RuntimeError(f"{target.name} did not start" + (f": {said[-1]}" if said else "")) \
                        from None
                time.sleep(0.05)

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.proc.pid)

    def release_probe(self) -> None:
        """Close the start-up probe; an open one that never reads would stall servers without send queues."""
        if self.probe is not None:
            self.probe.close()
            self.probe = None

    def stop(self) -> None:
        self.release_probe()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.scratch.cleanup()


class Redis:
    """A redis-server for one run of the cluster target: a free port, no persistence, in a directory of its own."""

    def __init__(self) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="chatroom-bench-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.scratch.name, "--loglevel", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        self.scratch.cleanup()


# --- one measurement -------------------------------------------------------------------------

@dataclass
class Result:
    target: str
    scenario: str
    clients: int
    seconds: float
    round: int = 1
    engine: str = ""  # the load generator's: selectors or uvloop
    accounting: str = ""  # who walked each delivery in the load generator: c or python (loadgen.Ledger)
    sent: int = 0
    deliveries: int = 0
    deliveries_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    late: int = 0
    server_cpu_us_per_delivery: float | None = None
    server_cpu_percent: float | None = None
    redis_cpu_percent: float | None = None  # the cluster target's Redis, over the same time as the server
    server_peak_rss_mib: float | None = None
    server_rss_growth_mib: float | None = None
    slow_client_dropped_after_s: float | None = None
    generators: int = 1
    generator_cpus: list[int | None] = field(default_factory=list)  # where each generator was pinned
    generator_cpu_percent: list[float] = field(default_factory=list)  # each generator's CPU use over the run
    generator_cpu_saturated: bool = False  # some CPU's generators used more than 90 % of it
    generator_cpu_us_per_delivery: float | None = None  # all the generators' CPU over the run, per delivery
    # How busy each CPU was over the run, whoever used it (kernel work on loopback, other programs too):
    # the server's CPU 0 well above the server's own share means something else was running there.
    cpu_busy_percent: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def measure(name: str, plan: Plan, server: Server, seconds: float, count: int,
            started_hook: Callable[[], None] | None = None) -> Result:
    """Run one plan with `count` generator processes and add up what they saw; `started_hook` is called
    when the clients are in and the run begins (scripts/profile_server.py starts its profiler there)."""
    count = max(1, min(count, plan.clients // 2))  # each process paces its senders with its own clients
    result = Result(plan.target.name, name, plan.clients, seconds, generators=count, engine=plan.engine,
                    accounting=plan.accounting)
    generators = Generators(plan, count)
    try:
        generators.gather("login", STEP_TIMEOUT + plan.clients / 20)
        server.release_probe()
        if started_hook is not None:
            started_hook()
        rss0 = proc_memory_kib(server.proc.pid, "VmRSS")
        cpu0, started, machine0 = server.cpu(), time.monotonic(), cpu_times()
        generators.tell(started + seconds)
        sent = [0] * plan.clients
        for share in generators.gather("run", seconds + STEP_TIMEOUT):
            for client, value in share.items():
                sent[client] = value
        generators.tell(sent)
        reports: list[Report] = generators.gather("drain", plan.drain_seconds + STEP_TIMEOUT)
        elapsed = time.monotonic() - started
        cpu1, rss1, machine1 = server.cpu(), proc_memory_kib(server.proc.pid, "VmRSS"), cpu_times()
        peak = proc_memory_kib(server.proc.pid, "VmHWM")
    finally:
        generators.stop()
    latencies = [value for report in reports for value in report.latencies]
    result.seconds = round(elapsed, 2)
    result.sent = sum(sent)
    result.deliveries = sum(report.deliveries for report in reports)
    result.deliveries_per_s = round(result.deliveries / elapsed)
    result.p50_ms, result.p99_ms = percentile(latencies, 0.5), percentile(latencies, 0.99)
    result.max_ms = round(max(latencies), 3) if latencies else None
    result.lost = sum(report.lost for report in reports)
    result.duplicated = sum(report.duplicated for report in reports)
    result.out_of_order = sum(report.out_of_order for report in reports)
    if plan.silent:
        result.late = sum(1 for value in latencies if value > LATE_MS)
    if cpu0 is not None and cpu1 is not None:
        result.server_cpu_percent = round((cpu1 - cpu0) / elapsed * 100, 1)
        if result.deliveries:
            result.server_cpu_us_per_delivery = round((cpu1 - cpu0) / result.deliveries * 1e6, 3)
    result.server_peak_rss_mib = round(peak / 1024, 1) if peak else None
    if rss0 and rss1:
        result.server_rss_growth_mib = round((rss1 - rss0) / 1024, 1)
    result.generator_cpus = generators.cpus
    result.cpu_busy_percent = busy_percent(machine0, machine1)
    result.generator_cpu_percent = [round(report.cpu_seconds / elapsed * 100, 1) for report in reports]
    if result.deliveries:
        result.generator_cpu_us_per_delivery = round(
            sum(report.cpu_seconds for report in reports) / result.deliveries * 1e6, 3)
    per_cpu: dict[int | None, float] = {}
    for cpu, report in zip(generators.cpus, reports):
        per_cpu[cpu] = per_cpu.get(cpu, 0.0) + report.cpu_seconds / elapsed
    busiest = max(per_cpu.values())
    result.generator_cpu_saturated = busiest > SATURATED
    if result.generator_cpu_saturated:
        result.notes.append(f"load generators used {busiest:.0%} of a CPU: figures may be limited by them")
    dropped = {}
    for report in reports:
        for client, when in report.dropped_at.items():
            dropped[client] = min(when, dropped.get(client, when))
    for client in sorted(plan.silent):
        if client in dropped:
            result.slow_client_dropped_after_s = round(dropped[client] - started, 2)
        else:
            result.notes.append(f"the slow client u{client} was never dropped")
    others = len(dropped.keys() - plan.silent)
    if others:
        result.notes.append(f"{others} clients were dropped by the server")
    return result


def engine_for(stamps: bool, asked: str) -> str:
    """`auto`: uvloop where the plan wants no kernel receive stamps (saturation) and uvloop is installed."""
    if asked != "auto":
        return asked
    return "uvloop" if not stamps and uvloop_available() else "selectors"


def accounting_for(asked: str) -> str:
    """`auto`: the C accounting where it builds, else the Python loop."""
    if asked != "auto":
        return asked
    return "python" if accounting_missing("c") else "c"


def scenario_plan(name: str, target: Target, port: int, size: int, quick: bool, engine: str = "auto",
                  accounting: str = "auto", delayed_acks: bool = False) -> Plan:
    if name == "light":
        plan = Plan(target, port, clients=20 if quick else 100, senders=5 if quick else 10, rate=100.0, size=64)
    elif name == "steady":
        plan = Plan(target, port, clients=20, senders=20, rate=2000.0, size=64)
    elif name == "saturation":
        plan = Plan(target, port, clients=size, senders=size, rate=0.0, size=64,
                    window=max(1, 200 // size),  # messages a sender may have in flight; bounds every queue
                    sample_every=max(1, size // 10), drain_seconds=10.0, stamps=False)
    else:
        clients = 20 if quick else 50
        # A server that judges readers over time drops the silent one seconds after its buffers fill, maybe
        # after the senders stop: wait up to 15 s more for it (not in a smoke run).
        plan = Plan(target, port, clients=clients, senders=clients, rate=200.0 if quick else 1000.0, size=400,
                    silent=frozenset({0}), await_drop=not quick, drain_seconds=15.0)
    chosen = engine_for(plan.stamps, engine)
    # The uvloop engine reads no kernel stamps: its latencies end when the generator reads.
    return replace(plan, engine=chosen, stamps=plan.stamps and chosen == "selectors",
                   accounting=accounting_for(accounting), delayed_acks=delayed_acks)


def run_one(name: str, scenario: str, size: int, round_: int, args: argparse.Namespace, checkouts: Checkouts,
            flags: dict[str, list[str]], accounting: str) -> Result:
    port = free_port()
    server_target = target(name, port, checkouts, flags)
    plan = scenario_plan(scenario, server_target, port, size, args.quick, args.engine, accounting,
                         args.delayed_acks)
    server = redis = None
    redis_began: tuple[float, float] | None = None  # Redis's CPU seconds and the time when the run began

    def begun() -> None:
        nonlocal redis_began
        if redis is not None and (cpu := redis.cpu()) is not None:
            redis_began = (cpu, time.monotonic())

    try:
        if name == "cluster":
            redis = Redis()
            plan = replace(plan, target=replace(server_target, command=[
                arg.replace(REDIS_URL, redis.url) for arg in server_target.command]))
        server = Server(plan.target, port)
        result = measure(scenario, plan, server, args.seconds, args.generators, begun)
        if redis is not None and redis_began is not None and (cpu := redis.cpu()) is not None:
            result.redis_cpu_percent = round((cpu - redis_began[0]) / (time.monotonic() - redis_began[1]) * 100, 1)
    except (OSError, RuntimeError) as exc:
        result = Result(name, scenario, plan.clients, args.seconds, engine=plan.engine,
                        accounting=plan.accounting, notes=[f"failed: {exc}"])
    finally:
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
    result.round = round_
    print(f"  round {round_} {name} {scenario} N={plan.clients}: {result.deliveries_per_s} deliveries/s, "
          f"server {cell(result.server_cpu_us_per_delivery)} us/delivery, generators ({plan.engine}, "
          f"{plan.accounting} accounting) {cell(result.generator_cpu_percent)} % CPU, "
          f"{cell(result.generator_cpu_us_per_delivery)} us/delivery, p50 {result.p50_ms} p99 {result.p99_ms} ms, "
          f"lost {result.lost}", file=sys.stderr, flush=True)
    return result


def run_all(names: list[str], scenarios: list[str], sizes: list[int], args: argparse.Namespace,
            checkouts: Checkouts, flags: dict[str, list[str]]) -> list[Result]:
    """Every round runs every scenario; within a scenario (and size) the servers take turns, each with every
    accounting asked for, in the opposite order every other round, so a slow patch of the shared machine does
    not fall on one server."""
    turns = [(name, accounting) for name in names for accounting in args.accounting]
    results = []
    for round_ in range(1, args.rounds + 1):
        for scenario in scenarios:
            for size in sizes if scenario == "saturation" else [0]:
                for name, accounting in turns if round_ % 2 else reversed(turns):
                    results.append(run_one(name, scenario, size, round_, args, checkouts, flags, accounting))
    return results


# --- reporting ------------------------------------------------------------------------------

COLUMNS = [("round", "rnd"), ("target", "target"), ("scenario", "scenario"), ("clients", "N"),
           ("deliveries_per_s", "deliv/s"), ("engine", "generator"), ("accounting", "acct"),
           ("generator_cpu_percent", "gen CPU %"), ("generator_cpu_us_per_delivery", "gen us/deliv"),
           ("server_cpu_percent", "srv CPU %"), ("redis_cpu_percent", "Redis CPU %"),
           ("cpu_busy_percent", "CPUs busy %"),
           ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
           ("server_cpu_us_per_delivery", "CPU us/deliv"), ("server_peak_rss_mib", "peak MiB"),
           ("lost", "lost"), ("duplicated", "dup"), ("out_of_order", "ooo"), ("late", "late"),
           ("slow_client_dropped_after_s", "dropped s"), ("server_rss_growth_mib", "RSS +MiB")]


def cell(value: object, joint: str = "+") -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return joint.join(f"{item:g}" for item in value) or "-"
    return str(value)


def aligned(rows: list[list[str]], left: int = 0) -> list[str]:
    """Columns padded to one width each; the first `left` columns flush left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(text.ljust(width) if i < left else text.rjust(width)
                      for i, (text, width) in enumerate(zip(row, widths))).rstrip() for row in rows]


def table(results: list[Result]) -> str:
    rows = [[title for _, title in COLUMNS]]
    for result in results:
        values = asdict(result)
        # Generators' shares add up ("+"); the CPUs are listed in order, CPU 0 (the server's) first ("/").
        rows.append([cell(values[key], "/" if key == "cpu_busy_percent" else "+") for key, _ in COLUMNS])
    lines = aligned(rows)
    for result in results:
        for note in result.notes:
            lines.append(f"note: round {result.round} {result.target} {result.scenario} N={result.clients}: {note}")
    return "\n".join(lines)


@dataclass
class Ratio:
    """One line of the summary: a figure per round, the goal issue #21 sets for it, and whether it holds."""
    label: str
    values: list[float | None]
    unit: str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal, or a round without the figure
    generator_cpu: float | None = None  # the busiest share of a CPU the generators took in these runs, %


def _busiest(results: list[Result]) -> float | None:
    """The generators' CPU use, added up per CPU, at its highest over these runs."""
    highest = None
    for result in results:
        per_cpu: dict[int | None, float] = {}
        for cpu, percent in zip(result.generator_cpus or [None] * len(result.generator_cpu_percent),
                                result.generator_cpu_percent):
            per_cpu[cpu] = per_cpu.get(cpu, 0.0) + percent
        if per_cpu:
            highest = max(highest or 0.0, max(per_cpu.values()))
    return None if highest is None else round(highest)


class Summary:
    """The ratios of issue #21, from one run: every figure per round, side by side."""

    def __init__(self, results: list[Result], rounds: int) -> None:
        self.rounds = rounds
        self.index = {(r.target, r.scenario, r.clients, r.round): r for r in results if r.deliveries}
        self.lines: list[Ratio] = []

    def runs(self, name: str, scenario: str, clients: int) -> list[Result | None]:
        return [self.index.get((name, scenario, clients, round_)) for round_ in range(1, self.rounds + 1)]

    def add(self, label: str, runs: list[list[Result | None]], figure: Callable[..., float | None], unit: str = "",
            goal: Callable[[float], bool] | None = None, goal_text: str = "") -> None:
        """One figure per round from the runs of that round (one list per server involved)."""
        values: list[float | None] = []
        for in_round in zip(*runs):
            present = [run for run in in_round if run is not None]
            values.append(figure(*in_round) if len(present) == len(in_round) else None)
        met = None
        if goal is not None and values and all(value is not None for value in values):
            met = all(goal(value) for value in values if value is not None)
        involved = [run for group in runs for run in group if run is not None]
        self.lines.append(Ratio(label, values, unit, goal_text, met, _busiest(involved)))

    def build(self, names: list[str], sizes: list[int]) -> list[Ratio]:
        def ratio(key: str) -> Callable[[Result, Result], float | None]:
            def divide(a: Result, b: Result) -> float | None:
                top, bottom = getattr(a, key), getattr(b, key)
                return None if top is None or not bottom else round(top / bottom, 2)
            return divide

        def per_delivery(run: Result) -> float | None:
            return run.server_cpu_us_per_delivery

        others = [name for name in ("ngircd", "no-history", "baseline") if name in names and name != "chatroom"]
        deliveries_goals = {("ngircd", 100): 1.0, ("ngircd", 1000): 1.3, ("no-history", 100): 0.95,
                            ("no-history", 1000): 0.95}
        for size in sizes:
            chatroom = self.runs("chatroom", "saturation", size)
            for other in others:
                floor = deliveries_goals.get((other, size))
                self.add(f"saturation N={size}: deliveries/s, chatroom / {other}",
                         [chatroom, self.runs(other, "saturation", size)], ratio("deliveries_per_s"), "x",
                         None if floor is None else (lambda value, floor=floor: value >= floor),
                         "" if floor is None else f">= {floor:g}")
            for name in ["chatroom", *others]:
                self.add(f"saturation N={size}: server CPU us per delivery, {name}",
                         [self.runs(name, "saturation", size)], per_delivery, "us",
                         *((lambda value: value <= 0.35, "<= 0.35") if name == "chatroom" and size == 100 else ()))
            if "baseline" in others:
                self.add(f"saturation N={size}: server CPU per delivery, chatroom / baseline",
                         [chatroom, self.runs("baseline", "saturation", size)], ratio("server_cpu_us_per_delivery"),
                         "x")
            self.add(f"saturation N={size}: lost + duplicated + reordered, chatroom", [chatroom],
                     lambda run: run.lost + run.duplicated + run.out_of_order, "", lambda value: value == 0, "0")
        light = [run for run in self.index.values() if run.target == "chatroom" and run.scenario == "light"]
        if light:
            clients = light[0].clients
            chatroom = self.runs("chatroom", "light", clients)
            for other in others:
                self.add(f"light: p50 latency, chatroom / {other}", [chatroom, self.runs(other, "light", clients)],
                         ratio("p50_ms"), "x", *((lambda value: value <= 1.2, "<= 1.2") if other == "ngircd" else ()))
            self.add("light: p99 latency, chatroom", [chatroom], lambda run: run.p99_ms, "ms",
                     lambda value: value <= 3.0, "<= 3")
        slow = [run for run in self.index.values() if run.target == "chatroom" and run.scenario == "slow"]
        if slow:
            chatroom = self.runs("chatroom", "slow", slow[0].clients)
            self.add("slow reader: dropped after, chatroom", [chatroom],
                     lambda run: run.slow_client_dropped_after_s, "s", lambda value: value is not None, "dropped")
            self.add("slow reader: others' late + lost, chatroom", [chatroom], lambda run: run.late + run.lost, "",
                     lambda value: value == 0, "0")
            self.add("slow reader: others' p99 latency, chatroom", [chatroom], lambda run: run.p99_ms, "ms")
            self.add("slow reader: server RSS growth, chatroom", [chatroom], lambda run: run.server_rss_growth_mib,
                     "MiB", lambda value: value < 20, "< 20")
        return self.lines


def summary(results: list[Result], names: list[str], sizes: list[int], rounds: int) -> list[Ratio]:
    return Summary(results, rounds).build(names, sizes)


def summary_table(ratios: list[Ratio]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    rows = [["figure", "per round", "", "goal (#21)", "met", "gen CPU % (max)"]]
    for line in ratios:
        rows.append([line.label, ", ".join(number(value) for value in line.values), line.unit, line.goal,
                     {True: "yes", False: "NO", None: ""}[line.met], number(line.generator_cpu)])
    return "\n".join(aligned(rows, left=1))


def raise_file_limit() -> None:
    import resource  # POSIX only: main() has refused Windows already

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def commit_of(root: Path) -> str | None:
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or None


def listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Relay benchmark for chatroom (see docs/performance.md).")
    parser.add_argument("--targets", default="chatroom,no-history,ngircd",
                        help="comma-separated, in the order they take turns: chatroom (this checkout's server, "
                             "its history on disk), no-history (the same with --history none), baseline (the "
                             "server of --baseline DIR), ngircd, naive, ncat (default: chatroom,no-history,ngircd, "
                             "and baseline with --baseline; ngircd and ncat are skipped when not installed)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also measure the server.py of this checkout (e.g. main before a change) as the "
                             "target 'baseline', taking turns with the others in the same run")
    parser.add_argument("--cluster", action="store_true",
                        help="also measure this checkout's server with --cluster, through a redis-server started for "
                             "each run (the target 'cluster'; needs redis-server and pip install -e .[cluster])")
    parser.add_argument("--scenarios", default="light,saturation,slow",
                        help="comma-separated, of light, saturation, slow, steady (default: light,saturation,slow)")
    parser.add_argument("--sizes", default="100,1000", help="saturation client counts (default 100,1000)")
    parser.add_argument("--rounds", type=int, metavar="R",
                        help="how many times every scenario is run for every server (default 2; 1 with --quick)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (default 10)")
    parser.add_argument("--generators", type=int, default=max(2, (os.cpu_count() or 2) - 1), metavar="K",
                        help="load generator processes, each driving every K-th client, pinned to the CPUs "
                             "other than the server's (default: one per such CPU, at least 2)")
    parser.add_argument("--engine", choices=("auto", "selectors", "uvloop"), default="auto",
                        help="what runs the generators' clients: auto (default) is uvloop for saturation, when "
                             "installed (pip install -e .[bench]), and selectors where latency is measured with "
                             "the kernel's receive stamps (light, slow)")
    parser.add_argument("--delayed-acks", action="store_true",
                        help="in saturation too, let the generators' kernel delay its acknowledgements (by "
                             "default each read is acknowledged at once there: a server that leaves Nagle on, "
                             "as ngircd does, otherwise stalls on the closed loop; docs/performance.md)")
    parser.add_argument("--accounting", type=listed, default="auto", metavar="auto,c,python",
                        help="who checks each delivery in the generators: c (scripts/ledger.c, built with the "
                             "system's C compiler on first use), python (the same accounting in a Python loop, "
                             "several times its CPU per delivery), auto (default: c where it builds); several, "
                             "comma-separated, take turns like the servers, each with a summary of its own")
    parser.add_argument("--chatroom-root", type=Path, default=ROOT, metavar="DIR",
                        help="measure the server.py of this checkout instead of this one's; every chatroom "
                             "server gets the flags its own --help admits")
    parser.add_argument("--json", metavar="FILE", help="also write the results and the summary as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20 clients, 2 seconds each, saturation N=20, one round")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if sys.platform == "win32":
        print(f"bench.py: error: {WINDOWS_REFUSAL}", file=sys.stderr)
        return 2
    if args.generators < 1:
        parser.error("--generators must be at least 1")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.engine == "uvloop" and not uvloop_available():
        parser.error("uvloop is not installed: pip install -e .[bench] (or uvloop alone), or --engine selectors")
    unknown_accounting = set(args.accounting) - {"auto", *ACCOUNTINGS}
    if unknown_accounting or not args.accounting:
        parser.error(f"--accounting takes auto, c or python, separated by commas, not {','.join(args.accounting)!r}")
    if "c" in args.accounting and accounting_missing("c"):
        parser.error(f"the C accounting cannot run here: {accounting_missing('c')} (--accounting python needs none)")
    names, scenarios = listed(args.targets), listed(args.scenarios)
    if args.baseline is not None and "baseline" not in names:
        names.append("baseline")
    if args.cluster and "cluster" not in names:
        names.append("cluster")
    unknown = set(names) - set(TARGETS) | set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown target or scenario: {', '.join(sorted(unknown))}")
    if "baseline" in names and args.baseline is None:
        parser.error("the target baseline needs --baseline DIR")
    for root in (args.chatroom_root, args.baseline):
        if root is not None and not (root / "server.py").is_file():
            parser.error(f"no server.py in {root}")
    try:
        sizes = [int(size) for size in listed(args.sizes)]
    except ValueError:
        parser.error(f"--sizes takes numbers separated by commas, not {args.sizes!r}")
    if args.quick:
        args.seconds, sizes = min(args.seconds, 2.0), [20]
    args.rounds = args.rounds or (1 if args.quick else 2)
    skipped = []
    for program, hint in INSTALL_HINTS.items():
        name = "cluster" if program == "redis-server" else program
        if name in names and shutil.which(program) is None:
            names.remove(name)
            what = "" if name == program else f"the target {name} "
            skipped.append(f"{program} is not installed: {what}skipped (Debian/Ubuntu: {hint})")
    raise_file_limit()
    pin(generator_cpus(1)[0])  # this process only waits on its generators: keep it off the server's CPU
    load_before = os.getloadavg()[0]
    checkouts = Checkouts(args.chatroom_root.resolve(), args.baseline.resolve() if args.baseline else None)
    flags = checkouts.flags()
    if "auto" in args.accounting and accounting_missing("c"):
        skipped.append(f"the C accounting cannot run here ({accounting_missing('c')}): the generators checked each "
                       "delivery in Python, at several times its CPU (the acct column)")
    args.accounting = list(dict.fromkeys(accounting_for(asked) for asked in args.accounting))
    results = run_all(names, scenarios, sizes, args, checkouts, flags)
    ratios = []
    for accounting in args.accounting:  # with several, a summary of each: a ratio compares like with like
        found = summary([result for result in results if result.accounting == accounting], names, sizes,
                        args.rounds)
        if len(args.accounting) > 1:
            for line in found:
                line.label += f" ({accounting} accounting)"
        ratios += found
    commit, baseline_commit = commit_of(checkouts.root), checkouts.baseline and commit_of(checkouts.baseline)
    print(f"chatroom relay benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, chatroom {checkouts.root} at {commit or 'unknown commit'}"
          + (f", baseline {checkouts.baseline} at {baseline_commit or 'unknown commit'}" if checkouts.baseline
             else "")
          + f", {args.rounds} round(s), load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(table(results))
    print()
    print(summary_table(ratios))
    for note in skipped:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M"), "chatroom_root": str(checkouts.root), "chatroom_commit": commit,
            "baseline_root": str(checkouts.baseline) if checkouts.baseline else None,
            "baseline_commit": baseline_commit, "chatroom_flags": flags, "targets": names, "rounds": args.rounds,
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "kernel_stamps": KERNEL_STAMPS,
            "accountings": args.accounting,
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "skipped": skipped,
            "results": [asdict(result) for result in results], "summary": [asdict(ratio) for ratio in ratios]},
            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
