"""Sending files, measured (issue #19's targets; docs/performance.md, "Sending files"): a chatroom server
process on loopback and the real client stack (loop, session, transfers) in this process.

Scenarios:
  throughput  one upload and one download of SIZE MB with the client's code (SHA-256 on both sides), plain and
              TLS: MB/s
  chat        other members chatting (SENDERS of them, RATE messages a second in all, everybody reading) while
              three SIZE MB transfers run (an upload and two downloads): their latency p50/p99 before and during,
              and whether anyone was dropped as too slow
  memory      50 downloads of one SIZE MB file at once, with readers that take their time: the server's
              resident memory before and at its peak
  resume      an upload whose data connection is cut mid-way (a relay), then resumed: bytes the server received
              in all against the file's size (0 re-sent: equal)
Usage: python scripts/bench_files.py [--scenarios throughput,chat,memory,resume] [--size MB] [--json FILE]
Linux (it reads the server's memory in /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatroom import tls  # noqa: E402 (after the path)
from chatroom.client.connection import Attempt, dialer  # noqa: E402
from chatroom.client.loop import Background, Loop, Received  # noqa: E402
from chatroom.client.session import Notice, Timing  # noqa: E402
from chatroom.client.transfers import Transfers  # noqa: E402
from chatroom.protocol import FileShared, Hello  # noqa: E402
from chatroom.server.main import listening_port  # noqa: E402

MB = 1_000_000
WAIT = 600.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pin(cpu: int) -> None:
    """On a machine with more than one CPU: the server alone on CPU 0, the clients (other computers, in life)
    on the others, as scripts/bench.py does."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        others = set(range(os.cpu_count() or 1)) - {0}
        os.sched_setaffinity(0, {0} if cpu == 0 else others)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class ServerProcess:
    def __init__(self, folder: Path, *extra: str) -> None:
        self.log = folder / "server.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "server.py"), "0", "--history", "none", "--files", str(folder / "store"),
                 "--rate", "0", "--max-per-ip", "1000", "--joins-per-ip", "0", "--room-joins", "0",
                 "--max-file-size", "2G", "--files-quota", "10G", "--files-total", "20G", *extra],
                stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=lambda: pin(0))
        first = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.port = listening_port(first)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()  # type: ignore[union-attr]


class Member:
    """The real client stack, without a screen."""

    def __init__(self, port: int, name: str, downloads: Path, context: Any = None) -> None:
        dial = dialer("127.0.0.1", port, context)
        attempt = Attempt(dial, Hello(name, reconnect=True))
        attempt.done.wait(30)
        assert isinstance(attempt.result, tuple), attempt.result
        connection, welcome = attempt.result
        self.background = Background(Loop(connection, welcome, dial, timing=Timing(first_delay=0.1),
                                          transfers=Transfers(downloads, retry=(0.1, 1.0))))
        self.background.start()
        self.seen: list[object] = []

    def wait(self, predicate: Any, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        for item in self.seen:
            if predicate(item):
                return item
        while True:
            item = self.background.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(item)
            if predicate(item):
                return item

    def shared(self, name: str) -> FileShared:
        item = self.wait(lambda i: isinstance(i, Received) and isinstance(i.event, FileShared) and i.event.name == name)
        return item.event  # type: ignore[no-any-return]

    def saved(self) -> None:
        self.wait(lambda i: isinstance(i, Notice) and ("saved to" in i.text or i.role == "error"))
        self.seen.clear()

    def close(self) -> None:
        self.background.quit()
        self.background.join(5)


def make_file(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    with open(path, "wb") as file:
        block = os.urandom(MB)
        for _ in range(size // MB):
            file.write(block)
        file.write(block[:size % MB])
    return path


def timed_upload(member: Member, path: Path) -> tuple[float, FileShared]:
    start = time.perf_counter()
    member.background.loop.send_file(str(path))
    shared = member.shared(path.name)
    return time.perf_counter() - start, shared


def timed_download(member: Member, shared: FileShared) -> float:
    start = time.perf_counter()
    member.background.send(f"/get {shared.id}")
    member.saved()
    return time.perf_counter() - start


# --- scenarios ---------------------------------------------------------------------------------------------

def throughput(folder: Path, size: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    authority = _authority(folder)
    for mode in ("plain", "tls"):
        extra = ("--tls-cert", str(folder / "cert.pem"), "--tls-key", str(folder / "key.pem")) if mode == "tls" else ()
        context = tls.client_context(str(folder / "ca.pem")) if mode == "tls" else None
        server = ServerProcess(folder, *extra)
        alice = Member(server.port, "alice", folder / f"{mode}-alice", context)
        bob = Member(server.port, "bob", folder / f"{mode}-bob", context)
        try:
            path = make_file(folder, f"{mode}.bin", size)
            up, shared = timed_upload(alice, path)
            down = timed_download(bob, shared)
            result[mode] = {"upload_MB_s": round(size / MB / up, 1), "download_MB_s": round(size / MB / down, 1)}
            print(f"  {mode}: upload {result[mode]['upload_MB_s']} MB/s, download {result[mode]['download_MB_s']} MB/s"
                  f" ({size / MB:g} MB, load {load()})", flush=True)
        finally:
            alice.close()
            bob.close()
            server.stop()
    del authority
    return result


def _authority(folder: Path) -> object:
    import trustme
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    return authority


class Chatter:
    """SENDERS chat members and as many readers in one thread: every message carries its send time, every
    delivery's latency is kept; `dropped` counts leaves for being too slow."""

    def __init__(self, port: int, members: int, senders: int, rate: float) -> None:
        self.selector = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        for number in range(members):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(json.dumps({"type": "hello", "name": f"m{number}"}).encode() + b"\n")
            self.socks.append(sock)
        self.buffers = {sock: b"" for sock in self.socks}
        for sock in self.socks:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
        self.senders, self.rate = self.socks[:senders], rate
        self.latencies: list[float] = []
        self.dropped = 0
        self.measuring = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        next_send, turn = time.perf_counter(), 0
        while not self.stop.is_set():
            now = time.perf_counter()
            if now >= next_send:
                self.senders[turn % len(self.senders)].send(f"t {now:.6f}\n".encode())
                turn += 1
                next_send += 1 / self.rate
            for key, _ in self.selector.select(max(0.0, next_send - time.perf_counter())):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                arrived = time.perf_counter()
                lines = (self.buffers[sock] + data).split(b"\n")
                self.buffers[sock] = lines.pop()
                for line in lines:
                    if b'"reason":"slow"' in line:
                        self.dropped += 1
                    match = re.search(rb'"text":"t (\d+\.\d+)"', line)
                    if match and self.measuring:
                        self.latencies.append((arrived - float(match.group(1))) * 1000)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()
        self.selector.close()


def chatter_process(port: int, members: int, senders: int, rate: float) -> None:
    """The chat members in a process of their own (the transfers' hashing must not hold their GIL): "measure"
    on stdin starts measuring, "report" prints the latencies since and how many were dropped, as a JSON line;
    the end of stdin ends it."""
    chatter = Chatter(port, members, senders, rate)
    try:
        for line in sys.stdin:
            if line.strip() == "measure":
                chatter.latencies, chatter.measuring = [], True
            elif line.strip() == "report":
                chatter.measuring = False
                print(json.dumps({"latencies": chatter.latencies, "dropped": chatter.dropped}), flush=True)
    finally:
        chatter.close()


class Chatting:
    """chatter_process, run and asked."""

    def __init__(self, port: int, members: int, senders: int, rate: float) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--chatter", f"{port},{members},{senders},{rate}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _say(self, word: str) -> None:
        self.proc.stdin.write(word + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def measure(self) -> None:
        self._say("measure")

    def report(self) -> tuple[list[float], int]:
        self._say("report")
        said = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        return said["latencies"], said["dropped"]

    def stop(self) -> None:
        self.proc.communicate("", timeout=60)


def chat(folder: Path, size: int, members: int = 20, senders: int = 5, rate: float = 50.0,
         seconds: float = 10.0) -> dict[str, Any]:
    server = ServerProcess(folder)
    chatter = Chatting(server.port, members, senders, rate)
    # The transferring clients stand for other computers: here they share the chat's CPU, so they yield it.
    os.setpriority(os.PRIO_PROCESS, 0, 10)
    uploader = Member(server.port, "alice", folder / "alice")
    downloaders = [Member(server.port, name, folder / name) for name in ("bob", "carol")]
    try:
        first = make_file(folder, "first.bin", size)
        second = make_file(folder, "second.bin", size)
        _, shared = timed_upload(uploader, first)
        time.sleep(1)
        chatter.measure()
        time.sleep(5)
        before, dropped_before = chatter.report()
        chatter.measure()
        started, rounds = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:  # three transfers at once, again and again
            second = second.rename(second.with_name(f"second-{rounds}.bin"))
            threads = [threading.Thread(target=timed_upload, args=(uploader, second))]
            threads += [threading.Thread(target=timed_download, args=(member, shared)) for member in downloaders]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            rounds += 1
        elapsed = time.perf_counter() - started
        during, dropped = chatter.report()
        result = {
            "members": members, "messages_per_s": rate, "transfers": "1 upload + 2 downloads", "rounds": rounds,
            "size_MB": size / MB, "seconds": round(elapsed, 1),
            "before_ms": {"p50": round(percentile(before, 0.5), 2), "p99": round(percentile(before, 0.99), 2),
                          "deliveries": len(before)},
            "during_ms": {"p50": round(percentile(during, 0.5), 2), "p99": round(percentile(during, 0.99), 2),
                          "max": round(max(during, default=0), 2), "deliveries": len(during)},
            "dropped_slow": dropped + dropped_before, "load": load(),
        }
        print(f"  chat p50/p99 before {result['before_ms']['p50']}/{result['before_ms']['p99']} ms, during three "
              f"{size / MB:g} MB transfers at once ({rounds} rounds, {elapsed:.1f} s) {result['during_ms']['p50']}/"
              f"{result['during_ms']['p99']} ms (max {result['during_ms']['max']}), dropped "
              f"{result['dropped_slow']}, load {load()}", flush=True)
        return result
    finally:
        chatter.stop()
        for member in [uploader, *downloaders]:
            member.close()
        server.stop()


def memory(folder: Path, size: int, readers: int = 50) -> dict[str, Any]:
    server = ServerProcess(folder)
    alice = Member(server.port, "alice", folder / "alice")
    try:
        _, shared = timed_upload(alice, make_file(folder, "many.bin", size))
        time.sleep(1)
        before = rss_kib(server.proc.pid)
        peak = before
        socks = []
        for number in range(readers):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(json.dumps({"type": "hello", "name": f"r{number}"}).encode() + b"\n/get " +
                         str(shared.id).encode() + b"\n")
            socks.append(sock)
        tokens = []
        for sock in socks:
            buffer = b""
            while b'"type":"slot"' not in buffer:
                buffer += sock.recv(65536)
            tokens.append(re.search(rb'"token":"([^"]+)"', buffer).group(1).decode())  # type: ignore[union-attr]
        links = []
        for token in tokens:
            link = socket.create_connection(("127.0.0.1", server.port))
            link.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            link.recv(200)  # the banner
            link.sendall(json.dumps({"type": "download", "token": token, "offset": 0}).encode() + b"\n")
            links.append(link)
        received = [0] * readers
        started = time.perf_counter()
        while min(received) < size:  # every reader takes its time: all 50 are under way at once
            for index, link in enumerate(links):
                if received[index] < size + 40:
                    link.settimeout(5)
                    data = link.recv(256 * 1024)
                    received[index] += len(data) if data else size
            peak = max(peak, rss_kib(server.proc.pid))
        elapsed = time.perf_counter() - started
        for link in links + socks:
            link.close()
        result = {"readers": readers, "size_MB": size / MB, "rss_before_MiB": round(before / 1024, 1),
                  "rss_peak_MiB": round(peak / 1024, 1), "growth_MiB": round((peak - before) / 1024, 1),
                  "seconds": round(elapsed, 1), "load": load()}
        print(f"  memory: {readers} downloads of {size / MB:g} MB at once: RSS {result['rss_before_MiB']} -> "
              f"{result['rss_peak_MiB']} MiB (+{result['growth_MiB']}), {elapsed:.1f} s, load {load()}", flush=True)
        return result
    finally:
        alice.close()
        server.stop()


class CuttingRelay:
    """Passes connections on; cuts the first data connection once `cut` bytes went through it."""

    def __init__(self, upstream: int, cut: int) -> None:
        self.upstream, self.cut = upstream, cut
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, upward: bool) -> None:
        moved, cutting = 0, False
        try:
            while data := source.recv(65536):
                if upward and b'"type": "upload"' in data[:200] and self.cuts == 0:
                    cutting, self.cuts = True, 1
                target.sendall(data)
                moved += len(data)
                if cutting and moved >= self.cut:
                    break
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


def resume(folder: Path, size: int) -> dict[str, Any]:
    server = ServerProcess(folder)
    relay = CuttingRelay(server.port, size // 2)
    alice = Member(relay.port, "alice", folder / "alice")
    try:
        took, shared = timed_upload(alice, make_file(folder, "cut.bin", size))
        log = server.log.read_text()
        resumed = int(re.search(r"resumes at byte (\d+)", log).group(1))  # type: ignore[union-attr]
        received = int(re.search(r"is shared; (\d+) bytes received", log).group(1))  # type: ignore[union-attr]
        result = {"size": size, "cut_after": size // 2, "resumed_at": resumed, "received_in_all": received,
                  "resent": received - size, "seconds": round(took, 1)}
        print(f"  resume: cut after {size // 2} bytes, resumed at {resumed}, the server received {received} bytes "
              f"for {size}: {received - size} re-sent", flush=True)
        return result
    finally:
        alice.close()
        relay.close()
        server.stop()


def main() -> int:
    pin(1)  # this process and its children: the clients
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default="throughput,chat,memory,resume")
    parser.add_argument("--size", type=float, default=100, help="MB per file (default 100)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--chatter", help=argparse.SUPPRESS)  # PORT,MEMBERS,SENDERS,RATE: the chat's own process
    args = parser.parse_args()
    if args.chatter:
        port, members, senders, rate = args.chatter.split(",")
        chatter_process(int(port), int(members), int(senders), float(rate))
        return 0
    size = int(args.size * MB)
    results: dict[str, Any] = {"load_at_start": load(), "cpus": os.cpu_count()}
    print(f"bench_files: {args.size:g} MB files, load {load()} on {os.cpu_count()} CPUs", flush=True)
    for scenario in args.scenarios.split(","):
        with tempfile.TemporaryDirectory(prefix="chatroom-bench-files-") as scratch:
            results[scenario] = {"throughput": throughput, "chat": chat, "memory": memory,
                                 "resume": resume}[scenario](Path(scratch), size)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
