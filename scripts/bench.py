"""Relay benchmark: chatroom's server beside a naive threaded server and `ncat --chat`, on loopback.

Scenarios (see docs/performance.md):
  light       100 clients, 10 senders, 100 messages/s in total: end-to-end latency
  saturation  N clients all sending as fast as a bounded in-flight window allows: deliveries/s, latency,
              server CPU per delivery, peak RSS
  slow        50 clients, one never reads, the others send 1000 messages/s of 400 bytes: their latency,
              late or missing messages, the server's RSS, when the slow client was dropped
A delivery is one message arriving at one receiver. Every payload carries its sender, a sequence number
and the send time, so lost, duplicated and out-of-order deliveries are counted per sender.

The server under test runs on CPU 0 and this load generator on CPU 1 where the OS allows pinning.
Usage: python scripts/bench.py [--targets chatroom,naive,ncat] [--scenarios light,saturation,slow]
                               [--sizes 100,500,1000] [--seconds S] [--json FILE] [--quick]
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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = re.compile(rb"B\|(\d+)\|(\d+)\|(\d+)\|")
WINDOWS_REFUSAL = ("the benchmark needs Linux or macOS: it raises the open-file limit with the resource module, "
                   "measures the server through /proc, and drives up to 1000 sockets with one selector, which "
                   "Windows' select() caps at 512")
LATE_MS = 200.0  # a delivery slower than this counts as late in the slow-reader scenario
# Linux stamps each arriving segment in the kernel: latency then ends when the data reached the receiver's
# socket, not when this single-threaded generator got round to reading that socket.
# (Python names no SO_TIMESTAMPNS; 35 is its number on Linux.)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
KERNEL_STAMPS = SO_TIMESTAMPNS is not None
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- servers under test ---------------------------------------------------------------

@dataclass
class Target:
    name: str
    command: list[str]
    login: bool  # sends a name line and waits for a welcome line
    hello: str  # the login line, {name} is replaced
    welcome: bytes  # what the welcome line contains


def targets(port: int) -> dict[str, Target]:
    python = sys.executable
    return {
        "chatroom": Target("chatroom", [python, str(ROOT / "server.py"), str(port), "--rate", "0", "--max-per-ip",
                                        "100000", "--max-clients", "100000", "--login-timeout", "120", "--joins-per-ip", "0",
                                        "--room-joins", "0", "-q"],
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


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {cpu})


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except OSError:
        return None


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
        self.proc = subprocess.Popen(target.command, stdout=subprocess.DEVNULL,
                                     preexec_fn=(lambda: pin(0)) if hasattr(os, "sched_setaffinity") else None)
        deadline = time.monotonic() + 10
        while True:
            try:
                # Kept open until the clients are in: ncat quits when a peer closes before it looked at it.
                self.probe: socket.socket | None = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
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


# --- the load generator -------------------------------------------------------------------

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
    server_peak_rss_mib: float | None = None
    server_rss_growth_mib: float | None = None
    slow_client_dropped_after_s: float | None = None
    generator_cpu_saturated: bool = False
    notes: list[str] = field(default_factory=list)


class Swarm:
    """N non-blocking clients on one selector; counts every delivery per sender."""

    def __init__(self, target: Target, port: int, count: int, sample_every: int = 1) -> None:
        self.count = count
        self.sample_every = sample_every
        self.selector = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.tails = [b""] * count
        self.last_seq = [[0] * count for _ in range(count)]  # [receiver][sender]
        self.received = [[0] * count for _ in range(count)]
        self.sent = [0] * count
        self.acked = [0] * count  # seen by the sender's acknowledging receiver, (s + 1) % count
        self.latencies: list[float] = []
        self.deliveries = 0
        self.duplicated = self.out_of_order = 0
        self.readers = set(range(count))
        self.dropped_at: dict[int, float] = {}
        self._samples = 0
        for index in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if KERNEL_STAMPS:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if target.login:
                sock.sendall(target.hello.format(name=f"u{index}").encode() + b"\n")
            self.socks.append(sock)
        if target.login:
            for sock in self.socks:
                self._await(sock, target.welcome)
        else:
            time.sleep(min(5.0, 0.5 + count / 500))  # ncat has no welcome: give it time to register everyone
        for index, sock in enumerate(self.socks):
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, index)

    @staticmethod
    def _await(sock: socket.socket, marker: bytes) -> None:
        data = b""
        while marker not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a connection during login")
            data += chunk

    def send(self, sender: int, size: int) -> None:
        self.sent[sender] += 1
        head = f"B|{sender}|{self.sent[sender]}|{time.time_ns()}|".encode()
        line = head + b"x" * max(0, size - len(head)) + b"\n"
        sock = self.socks[sender]
        sock.setblocking(True)
        try:
            sock.sendall(line)
        except OSError:
            self.dropped_at.setdefault(sender, time.monotonic())  # the server dropped this client
        sock.setblocking(False)

    def stop_reading(self, index: int) -> None:
        self.readers.discard(index)
        self.selector.unregister(self.socks[index])

    def poll(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            receiver = key.data
            stamp = None
            try:
                if KERNEL_STAMPS:
                    data, ancillary, _, _ = key.fileobj.recvmsg(1 << 18, socket.CMSG_SPACE(16))
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            seconds, nanoseconds = struct.unpack("qq", value[:16])
                            stamp = seconds * 1_000_000_000 + nanoseconds
                else:
                    data = key.fileobj.recv(1 << 18)
            except ConnectionError:
                data = b""
            if not data:
                self.selector.unregister(key.fileobj)
                self.readers.discard(receiver)
                continue
            self._account(receiver, data, stamp or time.time_ns())

    def _account(self, receiver: int, data: bytes, now: int) -> None:
        data = self.tails[receiver] + data
        cut = data.rfind(b"\n") + 1
        self.tails[receiver] = data[cut:]
        last, received = self.last_seq[receiver], self.received[receiver]
        for match in PAYLOAD.finditer(data, 0, cut):
            sender, seq = int(match[1]), int(match[2])
            if sender == receiver:
                continue  # our server echoes a sender's own line: not a delivery
            self.deliveries += 1
            if seq <= last[sender]:
                if seq == last[sender]:
                    self.duplicated += 1
                else:
                    self.out_of_order += 1
                continue
            last[sender] = seq
            received[sender] += 1
            if (sender + 1) % self.count == receiver:
                self.acked[sender] = seq
            self._samples += 1
            if self._samples % self.sample_every == 0:
                self.latencies.append((now - int(match[3])) / 1e6)
        if b'"leave"' in data[:cut]:
            for name in re.findall(rb'"type":"leave","seq":\d+,"name":"u(\d+)"', data[:cut]):
                self.dropped_at.setdefault(int(name), time.monotonic())

    def lost(self, receivers: set[int], senders: range) -> int:
        return sum(self.sent[s] - self.received[r][s] for r in receivers for s in senders if s != r)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.selector.close()


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def drain(swarm: Swarm, receivers: set[int], senders: range, seconds: float) -> None:
    """Read until every message sent has reached every receiver, or the time is up."""
    deadline = time.monotonic() + seconds
    while swarm.lost(receivers, senders) and time.monotonic() < deadline:
        swarm.poll(0.05)


def finish(result: Result, swarm: Swarm, server: Server, cpu0: float | None, started: float, gen0: float,
           receivers: set[int], senders: range) -> Result:
    elapsed = time.monotonic() - started
    gen_cpu = time.process_time() - gen0
    cpu1 = server.cpu()
    result.seconds = round(elapsed, 2)
    result.sent = sum(swarm.sent)
    result.deliveries = swarm.deliveries
    result.deliveries_per_s = round(swarm.deliveries / elapsed)
    result.p50_ms = percentile(swarm.latencies, 0.5)
    result.p99_ms = percentile(swarm.latencies, 0.99)
    result.max_ms = round(max(swarm.latencies), 3) if swarm.latencies else None
    result.duplicated, result.out_of_order = swarm.duplicated, swarm.out_of_order
    result.lost = swarm.lost(receivers, senders)
    if cpu0 is not None and cpu1 is not None and swarm.deliveries:
        result.server_cpu_us_per_delivery = round((cpu1 - cpu0) / swarm.deliveries * 1e6, 3)
    peak = proc_memory_kib(server.proc.pid, "VmHWM")
    result.server_peak_rss_mib = round(peak / 1024, 1) if peak else None
    result.generator_cpu_saturated = gen_cpu / elapsed > 0.9
    if result.generator_cpu_saturated:
        result.notes.append(f"load generator CPU {gen_cpu / elapsed:.0%}: figures may be limited by it")
    return result


def light(target: Target, port: int, server: Server, seconds: float, clients: int = 100, senders: int = 10,
          rate: float = 100.0) -> Result:
    swarm = Swarm(target, port, clients)
    server.release_probe()
    try:
        result = Result(target.name, "light", clients, seconds)
        cpu0, gen0, started = server.cpu(), time.process_time(), time.monotonic()
        interval = 1.0 / rate
        next_send, turn = started, 0
        while time.monotonic() < started + seconds:
            now = time.monotonic()
            if now >= next_send:
                swarm.send(turn % senders, 64)
                turn += 1
                next_send += interval
            swarm.poll(max(0.0, min(next_send - time.monotonic(), 0.01)))
        drain(swarm, set(range(clients)), range(senders), 5)
        return finish(result, swarm, server, cpu0, started, gen0, set(range(clients)), range(senders))
    finally:
        swarm.close()


def saturation(target: Target, port: int, server: Server, seconds: float, clients: int) -> Result:
    window = max(1, 200 // clients)  # messages a sender may have in flight; keeps every queue bounded
    swarm = Swarm(target, port, clients, sample_every=max(1, clients // 10))
    server.release_probe()
    try:
        result = Result(target.name, "saturation", clients, seconds)
        result.notes.append(f"in-flight window {window} per sender")
        cpu0, gen0, started = server.cpu(), time.process_time(), time.monotonic()
        while time.monotonic() < started + seconds:
            for sender in range(clients):
                if swarm.sent[sender] - swarm.acked[sender] < window and sender not in swarm.dropped_at:
                    swarm.send(sender, 64)
            swarm.poll(0.001)
        drain(swarm, set(range(clients)), range(clients), 10)
        if swarm.dropped_at:
            result.notes.append(f"{len(swarm.dropped_at)} clients were dropped by the server")
        return finish(result, swarm, server, cpu0, started, gen0, set(range(clients)), range(clients))
    finally:
        swarm.close()


def slow_reader(target: Target, port: int, server: Server, seconds: float, clients: int = 50,
                rate: float = 1000.0) -> Result:
    swarm = Swarm(target, port, clients)
    server.release_probe()
    try:
        result = Result(target.name, "slow", clients, seconds)
        rss0 = proc_memory_kib(server.proc.pid, "VmRSS")
        swarm.stop_reading(0)  # client 0 never reads again
        cpu0, gen0, started = server.cpu(), time.process_time(), time.monotonic()
        interval = 1.0 / rate
        next_send, turn = started, 0
        others = range(1, clients)
        while time.monotonic() < started + seconds:
            while time.monotonic() >= next_send:
                swarm.send(others[turn % len(others)], 400)
                turn += 1
                next_send += interval
            swarm.poll(max(0.0, min(next_send - time.monotonic(), 0.01)))
        readers = set(others)
        drain(swarm, readers, others, 5)
        finish(result, swarm, server, cpu0, started, gen0, readers, others)
        rss1 = proc_memory_kib(server.proc.pid, "VmRSS")
        if rss0 and rss1:
            result.server_rss_growth_mib = round((rss1 - rss0) / 1024, 1)
        result.late = sum(1 for value in swarm.latencies if value > LATE_MS)
        if 0 in swarm.dropped_at:
            result.slow_client_dropped_after_s = round(swarm.dropped_at[0] - started, 2)
        else:
            result.notes.append("the slow client was never dropped")
        return result
    finally:
        swarm.close()


# --- running and reporting ------------------------------------------------------------------

COLUMNS = [("target", "target"), ("scenario", "scenario"), ("clients", "N"), ("deliveries_per_s", "deliv/s"),
           ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
           ("server_cpu_us_per_delivery", "CPU us/deliv"), ("server_peak_rss_mib", "peak MiB"),
           ("lost", "lost"), ("duplicated", "dup"), ("out_of_order", "ooo"), ("late", "late"),
           ("slow_client_dropped_after_s", "dropped s"), ("server_rss_growth_mib", "RSS +MiB")]


def table(results: list[Result]) -> str:
    rows = [[title for _, title in COLUMNS]]
    for result in results:
        values = asdict(result)
        rows.append(["-" if values[key] is None else str(values[key]) for key, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    for result in results:
        for note in result.notes:
            lines.append(f"note: {result.target} {result.scenario} N={result.clients}: {note}")
    return "\n".join(lines)


def raise_file_limit() -> None:
    import resource  # POSIX only: main() has refused Windows already

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(target: Target, scenario: str, sizes: list[int], seconds: float, quick: bool) -> list[Result]:
    results = []
    runs = [(scenario, size) for size in sizes] if scenario == "saturation" else [(scenario, 0)]
    for name, size in runs:
        port = free_port()
        target = targets(port)[target.name]
        server = Server(target, port)
        try:
            if name == "light":
                result = light(target, port, server, seconds, clients=20 if quick else 100,
                               senders=5 if quick else 10)
            elif name == "saturation":
                result = saturation(target, port, server, seconds, size)
            else:
                result = slow_reader(target, port, server, seconds, clients=20 if quick else 50,
                                     rate=200 if quick else 1000)
        except (OSError, RuntimeError) as exc:
            result = Result(target.name, name, size or 0, seconds, notes=[f"failed: {exc!r}"])
        finally:
            server.stop()
        print(f"  {target.name} {name}{f' N={size}' if size else ''}: {result.deliveries_per_s} deliveries/s, "
              f"p99 {result.p99_ms} ms, lost {result.lost}", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Relay benchmark for chatroom (see docs/performance.md).")
    parser.add_argument("--targets", default="chatroom,naive,ncat",
                        help="comma-separated: chatroom, naive, ncat (default: all; ncat is skipped if missing)")
    parser.add_argument("--scenarios", default="light,saturation,slow", help="comma-separated (default: all)")
    parser.add_argument("--sizes", default="100,500,1000", help="saturation client counts (default 100,500,1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (default 20)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20 clients, 2 seconds each, saturation N=20")
    args = parser.parse_args(argv)
    if sys.platform == "win32":
        print(f"bench.py: error: {WINDOWS_REFUSAL}", file=sys.stderr)
        return 2
    if args.quick:
        args.seconds, args.sizes = min(args.seconds, 2.0), "20"
    raise_file_limit()
    pin(1)
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
    results: list[Result] = []
    for name in chosen:
        for scenario in scenarios:
            results += run(targets(0)[name], scenario, sizes, args.seconds, args.quick)
    print(f"chatroom relay benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print(table(results))
    for note in skipped:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "skipped": skipped,
                                               "results": [asdict(result) for result in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
