"""Relay benchmark: chatroom's server beside a naive threaded server and `ncat --chat`, on loopback.

Scenarios (see docs/performance.md):
  light       100 clients, 10 senders, 100 messages/s in total: end-to-end latency
  saturation  N clients all sending as fast as a bounded in-flight window allows: deliveries/s, latency,
              server CPU per delivery, peak RSS
  slow        50 clients, one never reads, the others send 1000 messages/s of 400 bytes: their latency,
              late or missing messages, the server's RSS, when the slow client was dropped
A delivery is one message arriving at one receiver. Every payload carries its sender, a sequence number
and the send time, so lost, duplicated and out-of-order deliveries are counted per sender.

The server under test runs on CPU 0. The load generator is one or more processes (--generators), each with
its own share of the clients, pinned to the other CPUs where the OS allows; each checks its own receivers
and this process adds up their counts. Every figure comes with each generator's CPU use.
Usage: python scripts/bench.py [--targets chatroom,naive,ncat] [--scenarios light,saturation,slow]
                               [--sizes 100,500,1000] [--seconds S] [--generators K]
                               [--chatroom-root DIR] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # multiprocessing is imported where used: on Windows main() must refuse before that fails
    from multiprocessing.connection import Connection

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = re.compile(rb"B\|(\d+)\|(\d+)\|(\d+)\|")
LEAVE = re.compile(rb'"type":"leave","seq":\d+,"name":"u(\d+)"')
WINDOWS_REFUSAL = ("the benchmark needs Linux or macOS: it raises the open-file limit with the resource module, "
                   "measures the server through /proc, and drives up to 1000 sockets with one selector, which "
                   "Windows' select() caps at 512")
LATE_MS = 200.0  # a delivery slower than this counts as late in the slow-reader scenario
SATURATED = 0.9  # a CPU's generators above this share of it may be the limit rather than the server
# Linux stamps each arriving segment in the kernel: latency then ends when the data reached the receiver's
# socket, not when a generator got round to reading that socket.
# (Python names no SO_TIMESTAMPNS; 35 is its number on Linux.)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
KERNEL_STAMPS = SO_TIMESTAMPNS is not None
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
HISTORY_SLOT = "{history}"  # in a server's command: the path of a history file made for that run
STEP_TIMEOUT = 60.0  # longest wait for a generator to log its clients in or to drain, beyond the run itself


# --- servers under test ---------------------------------------------------------------

@dataclass
class Target:
    name: str
    command: list[str]
    login: bool  # sends a name line and waits for a welcome line
    hello: str  # the login line, {name} is replaced
    welcome: bytes  # what the welcome line contains


def chatroom_flags(server_py: Path, history: bool = True) -> list[str]:
    """Every limit opened; the login limits of issue 9 only for a server that has them (older ones refuse them);
    a server that keeps its history on disk keeps it in a file of the run's own (HISTORY_SLOT), as it would
    by default, but not left behind in the user's data directory (`history` False: in memory only)."""
    flags = ["--rate", "0", "--max-per-ip", "100000", "--max-clients", "100000", "--login-timeout", "120", "-q"]
    usage = subprocess.run([sys.executable, str(server_py), "--help"], capture_output=True, text=True,
                           timeout=30).stdout
    if "--joins-per-ip" in usage:
        flags += ["--joins-per-ip", "0", "--room-joins", "0"]
    if "--history FILE" in usage:
        flags += ["--history", HISTORY_SLOT if history else "none"]
    return flags


def targets(port: int, chatroom_root: Path = ROOT, flags: list[str] | None = None) -> dict[str, Target]:
    python = sys.executable
    server_py = chatroom_root / "server.py"
    return {
        "chatroom": Target("chatroom", [python, str(server_py), str(port),
                                        *(chatroom_flags(server_py) if flags is None else flags)],
                           True, '{{"type":"hello","name":"{name}"}}', b'"welcome"'),
        "naive": Target("naive", [python, str(ROOT / "benchmarks" / "naive_threaded.py"), str(port)],
                        True, "{name}", b"welcome "),
        "ncat": Target("ncat", ["ncat", "-l", "--chat", "--max-conns", "100000", "127.0.0.1", str(port)],
                       False, "", b""),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1


def pin(cpu: int | None) -> None:
    if cpu is not None and can_pin():
        os.sched_setaffinity(0, {cpu})


def generator_cpus(count: int) -> list[int | None]:
    """CPU 0 is the server's; the generators share the others in turn (all on CPU 1 of a 2-core machine)."""
    if not can_pin():
        return [None] * count
    spare = list(range(1, os.cpu_count() or 2))
    return [spare[index % len(spare)] for index in range(count)]


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
    def __init__(self, target: Target, port: int) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="chatroom-bench-")
        history = str(Path(self.scratch.name) / "room.sqlite3")
        command = [history if arg == HISTORY_SLOT else arg for arg in target.command]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
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
                    self.stop()
                    raise RuntimeError(f"{target.name} did not start") from None
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
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.scratch.cleanup()


# --- what one run asks of the generators, and what they answer ---------------------------------

@dataclass(frozen=True)
class Plan:
    """One scenario run, the same for every generator process; each takes the clients i with i % K == k."""
    target: Target
    port: int
    clients: int
    senders: int  # clients 0 .. senders-1 send, except the silent ones
    rate: float  # messages per second over all senders; 0: saturation (each sender keeps `window` in flight)
    size: int  # payload bytes
    silent: frozenset[int] = frozenset()  # clients that never read
    window: int = 1
    sample_every: int = 1  # keep every n-th latency
    drain_seconds: float = 5.0
    await_drop: bool = False  # keep draining until a silent client is dropped (the slow scenario)
    # Kernel receive stamps cost the generator a recvmsg and its ancillary data per read; saturation's
    # latencies are queueing (tens of ms and more), where the stamp changes nothing but the generator's load.
    stamps: bool = KERNEL_STAMPS

    def sending(self) -> list[int]:
        return [index for index in range(self.senders) if index not in self.silent]


@dataclass
class Report:
    """One generator's share of a run: counts over its own receivers."""
    deliveries: int
    lost: int
    duplicated: int
    out_of_order: int
    latencies: list[float]
    dropped_at: dict[int, float]  # client -> monotonic time the server dropped it
    cpu_seconds: float  # from the start of the run to the end of its drain


@dataclass
class Result:
    target: str
    scenario: str
    clients: int
    seconds: float
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
    server_peak_rss_mib: float | None = None
    server_rss_growth_mib: float | None = None
    slow_client_dropped_after_s: float | None = None
    generators: int = 1
    generator_cpus: list[int | None] = field(default_factory=list)  # where each generator was pinned
    generator_cpu_percent: list[float] = field(default_factory=list)  # each generator's CPU use over the run
    generator_cpu_saturated: bool = False  # some CPU's generators used more than 90 % of it
    # How busy each CPU was over the run, whoever used it (kernel work on loopback, other programs too):
    # the server's CPU 0 well above the server's own share means something else was running there.
    cpu_busy_percent: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- one generator process ---------------------------------------------------------------------

def fields(lines: bytes) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The senders, sequence numbers and send times of the payloads in whole lines."""
    # A payload is the only place with a "|" (names are u<N>, events carry none): one split then slicing
    # costs the generator about half of what a regex match per delivery does.
    parts = lines.split(b"|")
    if len(parts) % 4 != 1:
        found = PAYLOAD.findall(lines)
        return [m[0] for m in found], [m[1] for m in found], [m[2] for m in found]
    return parts[1::4], parts[2::4], parts[3::4]


class Ledger:
    """What one generator's receivers got, per sender: exact counts, no sockets (tests feed it bytes)."""

    def __init__(self, plan: Plan, own: list[int]) -> None:
        self.plan = plan
        self.own = own
        self.tails = {client: b"" for client in own}
        self.last_seq = {client: [0] * plan.clients for client in own}  # [receiver][sender]
        self.gaps = {client: [0] * plan.clients for client in own}  # messages skipped over, [receiver][sender]
        self.acked = [0] * plan.clients
        # A sender's window is acknowledged by the next client of this same process, so each generator
        # paces its own senders without hearing from the others.
        self.acker = {own[(i + 1) % len(own)]: client for i, client in enumerate(own)}
        self.ready: list[int] = []  # senders whose window opened again
        self.latencies: list[float] = []
        self.deliveries = self.duplicated = self.out_of_order = 0
        self.dropped_at: dict[int, float] = {}  # client -> monotonic time the server dropped it
        self._seen = 0  # deliveries so far, to sample every n-th latency

    def account(self, receiver: int, data: bytes, now: int) -> None:
        """`data` has arrived for `receiver` (at `now`, ns since the epoch)."""
        # The generator's hot loop: one comparison per delivery when all is well, the rest off the fast path.
        data = self.tails[receiver] + data
        cut = data.rfind(b"\n") + 1
        self.tails[receiver] = data[cut:]
        senders, seqs, stamps = fields(data[:cut])
        last = self.last_seq[receiver]
        echoes = last[receiver]  # a sender's own line coming back (our server echoes it) is not a delivery
        for sender, seq in zip(map(int, senders), map(int, seqs)):
            if seq == last[sender] + 1:
                last[sender] = seq
            else:
                self._irregular(receiver, sender, seq)
        echoes = last[receiver] - echoes
        self.deliveries += len(seqs) - echoes
        every = self.plan.sample_every
        first = (every - 1 - self._seen) % every
        self._seen += len(seqs)
        sampled = zip(senders[first::every], stamps[first::every])
        self.latencies += [(now - int(sent)) / 1e6 for sender, sent in sampled if int(sender) != receiver]
        paced = self.acker.get(receiver)
        if paced is not None and last[paced] > self.acked[paced]:
            self.acked[paced] = last[paced]
            self.ready.append(paced)
        if self.plan.silent and data.find(b'"leave"', 0, cut) >= 0:  # a scan of every byte: only where asked
            for name in LEAVE.findall(data, 0, cut):
                self.dropped_at.setdefault(int(name), time.monotonic())

    def _irregular(self, receiver: int, sender: int, seq: int) -> None:
        last = self.last_seq[receiver]
        if seq == last[sender]:
            self.duplicated += 1
        elif seq < last[sender]:
            self.out_of_order += 1
        else:
            self.gaps[receiver][sender] += seq - last[sender] - 1
            last[sender] = seq

    def lost(self, sent: list[int]) -> int:
        """Messages not (yet) received, over this process's receivers, including any the server dropped."""
        # Summed whole lists at a time (a non-sender's entries stay 0): drain() asks often, N can be 1000.
        total = sum(sent)
        return sum(total - sent[r] - (sum(self.last_seq[r]) - self.last_seq[r][r]) + sum(self.gaps[r])
                   - self.gaps[r][r] for r in self.own if r not in self.plan.silent)


class Swarm:
    """This process's clients on one selector, sending as told; what they receive goes to a Ledger."""

    def __init__(self, plan: Plan, own: list[int]) -> None:
        self.plan = plan
        self.own = own
        self.ledger = Ledger(plan, own)
        self.selector = selectors.DefaultSelector()
        self.socks: dict[int, socket.socket] = {}
        self.sent = [0] * plan.clients
        self.filler = b"x" * plan.size
        for client in own:
            sock = socket.create_connection(("127.0.0.1", plan.port), timeout=30)
            self.socks[client] = sock
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if plan.stamps:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if plan.target.login:
                sock.sendall(plan.target.hello.format(name=f"u{client}").encode() + b"\n")
        if plan.target.login:
            for sock in self.socks.values():
                self._await(sock, plan.target.welcome)
        else:
            time.sleep(min(5.0, 0.5 + plan.clients / 500))  # ncat has no welcome: time to register everyone
        for client, sock in self.socks.items():
            sock.setblocking(False)
            if client not in plan.silent:
                self.selector.register(sock, selectors.EVENT_READ, client)

    @staticmethod
    def _await(sock: socket.socket, marker: bytes) -> None:
        data = b""
        while marker not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a connection during login")
            data += chunk

    def send(self, sender: int) -> None:
        self.sent[sender] += 1
        head = f"B|{sender}|{self.sent[sender]}|{time.time_ns()}|".encode()
        line = head + self.filler[len(head):] + b"\n"
        sock = self.socks[sender]
        try:
            done = sock.send(line)
            if done < len(line):  # the kernel's buffer is full: wait for the rest, as a blocking client would
                sock.setblocking(True)
                try:
                    sock.sendall(line[done:])
                finally:
                    sock.setblocking(False)
        except OSError:
            self.ledger.dropped_at.setdefault(sender, time.monotonic())  # the server dropped this client

    def poll(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            stamp = None
            try:
                if self.plan.stamps:
                    data, ancillary, _, _ = key.fileobj.recvmsg(1 << 18, socket.CMSG_SPACE(16))
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            seconds, nanoseconds = struct.unpack("qq", value[:16])
                            stamp = seconds * 1_000_000_000 + nanoseconds
                else:
                    data = key.fileobj.recv(1 << 18)
            except ConnectionError:
                data = b""
            except BlockingIOError:
                continue
            if not data:  # the server closed this connection
                self.selector.unregister(key.fileobj)
                self.ledger.dropped_at.setdefault(key.data, time.monotonic())
                continue
            self.ledger.account(key.data, data, stamp or time.time_ns())

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        self.selector.close()


def paced_senders(swarm: Swarm, end: float) -> None:
    """light and slow: this process's senders in turn, at its share of the plan's rate."""
    everyone = swarm.plan.sending()
    mine = [client for client in everyone if client in swarm.socks]
    interval = len(everyone) / (swarm.plan.rate * len(mine)) if mine else float("inf")
    next_send, turn = time.monotonic(), 0
    while time.monotonic() < end:
        while time.monotonic() >= next_send:
            swarm.send(mine[turn % len(mine)])
            turn += 1
            next_send += interval
        swarm.poll(max(0.0, min(next_send - time.monotonic(), end - time.monotonic(), 0.01)))


def windowed_senders(swarm: Swarm, end: float) -> None:
    """saturation: every sender keeps `window` messages in flight; an acknowledgement reopens its window."""
    window, ledger = swarm.plan.window, swarm.ledger
    ledger.ready = [client for client in swarm.plan.sending() if client in swarm.socks]
    while time.monotonic() < end:
        ready, ledger.ready = ledger.ready, []
        for sender in ready:
            while swarm.sent[sender] - ledger.acked[sender] < window and sender not in ledger.dropped_at:
                swarm.send(sender)
        swarm.poll(0.001)


def drain(swarm: Swarm, sent: list[int], seconds: float) -> None:
    """Read until every message sent has reached every receiver (and, if asked, a silent client was dropped)."""
    plan, ledger = swarm.plan, swarm.ledger
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        awaiting_drop = plan.await_drop and not plan.silent <= ledger.dropped_at.keys()
        if not awaiting_drop and not ledger.lost(sent):
            break
        swarm.poll(0.05)


def generator(plan: Plan, index: int, count: int, cpu: int | None, conn: Connection) -> None:
    """One generator process: log in its clients, run when told, report, close when told."""
    pin(cpu)
    swarm = None
    try:
        swarm = Swarm(plan, list(range(index, plan.clients, count)))
        conn.send(("ready", None))
        end = conn.recv()
        if end is None:  # the run was called off
            return
        cpu0 = time.process_time()
        (paced_senders if plan.rate else windowed_senders)(swarm, end)
        conn.send(("sent", {client: swarm.sent[client] for client in swarm.own}))
        sent = conn.recv()
        if sent is None:
            return
        drain(swarm, sent, plan.drain_seconds)
        ledger = swarm.ledger
        conn.send(("done", Report(deliveries=ledger.deliveries, lost=ledger.lost(sent),
                                  duplicated=ledger.duplicated, out_of_order=ledger.out_of_order,
                                  latencies=ledger.latencies, dropped_at=ledger.dropped_at,
                                  cpu_seconds=time.process_time() - cpu0)))
        conn.recv()  # the sockets stay open until the server's figures are read
    except (OSError, RuntimeError, EOFError) as exc:
        try:
            conn.send(("error", repr(exc)))
        except OSError:
            pass
    finally:
        if swarm is not None:
            swarm.close()
        conn.close()


# --- the parent: start the generators, add up their reports -----------------------------------------

class Generators:
    """K generator processes for one plan, driven step by step over pipes."""

    def __init__(self, plan: Plan, count: int) -> None:
        import multiprocessing

        self.cpus = generator_cpus(count)
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                              else "spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for index, cpu in enumerate(self.cpus):
            parent, child = context.Pipe()
            proc = context.Process(target=generator, args=(plan, index, count, cpu, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def gather(self, step: str, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        answers = []
        for conn in self.conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"a load generator did not answer ({step}) in {timeout:.0f} s")
            try:
                kind, value = conn.recv()
            except EOFError:
                raise RuntimeError(f"a load generator died ({step})") from None
            if kind == "error":
                raise RuntimeError(f"a load generator failed: {value}")
            answers.append(value)
        return answers

    def tell(self, value: Any) -> None:
        for conn in self.conns:
            conn.send(value)

    def stop(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def measure(name: str, plan: Plan, server: Server, seconds: float, count: int) -> Result:
    """Run one plan with `count` generator processes and add up what they saw."""
    count = max(1, min(count, plan.clients // 2))  # each process paces its senders with its own clients
    result = Result(plan.target.name, name, plan.clients, seconds, generators=count)
    generators = Generators(plan, count)
    try:
        generators.gather("login", STEP_TIMEOUT + plan.clients / 20)
        server.release_probe()
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


def scenario_plan(name: str, target: Target, port: int, size: int, quick: bool) -> Plan:
    if name == "light":
        return Plan(target, port, clients=20 if quick else 100, senders=5 if quick else 10, rate=100.0, size=64)
    if name == "saturation":
        return Plan(target, port, clients=size, senders=size, rate=0.0, size=64,
                    window=max(1, 200 // size),  # messages a sender may have in flight; bounds every queue
                    sample_every=max(1, size // 10), drain_seconds=10.0, stamps=False)
    clients = 20 if quick else 50
    # A server that judges readers over time drops the silent one seconds after its buffers fill, maybe
    # after the senders stop: wait up to 15 s more for it (not in a smoke run).
    return Plan(target, port, clients=clients, senders=clients, rate=200.0 if quick else 1000.0, size=400,
                silent=frozenset({0}), await_drop=not quick, drain_seconds=15.0)


# --- running and reporting ------------------------------------------------------------------

COLUMNS = [("target", "target"), ("scenario", "scenario"), ("clients", "N"), ("deliveries_per_s", "deliv/s"),
           ("generator_cpu_percent", "gen CPU %"), ("server_cpu_percent", "srv CPU %"),
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


def table(results: list[Result]) -> str:
    rows = [[title for _, title in COLUMNS]]
    for result in results:
        values = asdict(result)
        # Generators' shares add up ("+"); the CPUs are listed in order, CPU 0 (the server's) first ("/").
        rows.append([cell(values[key], "/" if key == "cpu_busy_percent" else "+") for key, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.rjust(width) for text, width in zip(row, widths)) for row in rows]
    for result in results:
        for note in result.notes:
            lines.append(f"note: {result.target} {result.scenario} N={result.clients}: {note}")
    return "\n".join(lines)


def raise_file_limit() -> None:
    import resource  # POSIX only: main() has refused Windows already

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(name: str, scenario: str, sizes: list[int], seconds: float, quick: bool, generators: int,
        chatroom_root: Path, flags: list[str]) -> list[Result]:
    results = []
    for size in sizes if scenario == "saturation" else [0]:
        port = free_port()
        target = targets(port, chatroom_root, flags)[name]
        plan = scenario_plan(scenario, target, port, size, quick)
        server = None
        try:
            server = Server(target, port)
            result = measure(scenario, plan, server, seconds, generators)
        except (OSError, RuntimeError) as exc:
            result = Result(name, scenario, plan.clients, seconds, notes=[f"failed: {exc!r}"])
        finally:
            if server is not None:
                server.stop()
        print(f"  {name} {scenario} N={plan.clients}: {result.deliveries_per_s} deliveries/s, "
              f"generators {cell(result.generator_cpu_percent)} % CPU, p99 {result.p99_ms} ms, lost {result.lost}",
              file=sys.stderr, flush=True)
        results.append(result)
    return results


def commit_of(root: Path) -> str | None:
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Relay benchmark for chatroom (see docs/performance.md).")
    parser.add_argument("--targets", default="chatroom,naive,ncat",
                        help="comma-separated: chatroom, naive, ncat (default: all; ncat is skipped if missing)")
    parser.add_argument("--scenarios", default="light,saturation,slow", help="comma-separated (default: all)")
    parser.add_argument("--sizes", default="100,500,1000", help="saturation client counts (default 100,500,1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (default 20)")
    parser.add_argument("--generators", type=int, default=max(2, (os.cpu_count() or 2) - 1), metavar="K",
                        help="load generator processes, each driving every K-th client, pinned to the CPUs "
                             "other than the server's (default: one per such CPU, at least 2)")
    parser.add_argument("--chatroom-root", type=Path, default=ROOT, metavar="DIR",
                        help="measure the server.py of this checkout (e.g. an older commit's worktree) instead "
                             "of this one's; it gets the flags that version accepts")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--no-history", action="store_true",
                        help="the chatroom server keeps its history in memory only (--history none), to measure "
                             "what keeping it on disk costs")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20 clients, 2 seconds each, saturation N=20")
    args = parser.parse_args(argv)
    if sys.platform == "win32":
        print(f"bench.py: error: {WINDOWS_REFUSAL}", file=sys.stderr)
        return 2
    if args.generators < 1:
        parser.error("--generators must be at least 1")
    if not (args.chatroom_root / "server.py").is_file():
        parser.error(f"no server.py in {args.chatroom_root}")
    if args.quick:
        args.seconds, args.sizes = min(args.seconds, 2.0), "20"
    raise_file_limit()
    pin(generator_cpus(1)[0])  # this process only waits on its generators: keep it off the server's CPU
    load_before = os.getloadavg()[0]
    chosen = [name.strip() for name in args.targets.split(",") if name.strip()]
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(chosen) - {"chatroom", "naive", "ncat"} | set(scenarios) - {"light", "saturation", "slow"}
    if unknown:
        parser.error(f"unknown target or scenario: {', '.join(sorted(unknown))}")
    sizes = [int(size) for size in args.sizes.split(",")]
    skipped = []
    if "ncat" in chosen and shutil.which("ncat") is None:
        chosen.remove("ncat")
        skipped.append("ncat is not installed: skipped (Debian/Ubuntu: apt-get install ncat)")
    root = args.chatroom_root.resolve()
    flags = chatroom_flags(root / "server.py", history=not args.no_history) if "chatroom" in chosen else []
    results: list[Result] = []
    for name in chosen:
        for scenario in scenarios:
            results += run(name, scenario, sizes, args.seconds, args.quick, args.generators, root, flags)
    commit = commit_of(root)
    print(f"chatroom relay benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, chatroom {root} at {commit or 'unknown commit'}, "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(table(results))
    for note in skipped:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M"), "chatroom_root": str(root), "chatroom_commit": commit,
            "chatroom_flags": flags, "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "skipped": skipped,
            "results": [asdict(result) for result in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
