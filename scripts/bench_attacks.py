"""Issue #18's bar, measured: the room's latency for a bystander while one member does its worst within the
limits (p99 under 50 ms), and how long the history file takes to hold what the room said meanwhile.

Usage: python scripts/bench_attacks.py [--attacks none,search,history,blocks,guesses,squat] [--seconds 10]
                                       [--rounds 3] [--fill 30000] [--speakers 10] [--json FILE]

Each attack gets a server of its own (server.py with its default limits, and a copy of a history file of
--fill messages, about 500 bytes each, so that memory holds its full 1 MiB), bystanders who talk just under the
rate limit from addresses of their own (127.0.0.2 and up: Linux answers the whole of 127/8), a JSON-mode and a
plain-text listener, and the attacker, in a process of its own, from 127.0.0.1. A bystander's message carries
its send time; the listeners note its arrival (one clock: the same process). The file is read every 5 ms for
the newest id committed: the "commit" figures are from a message's arrival to its being on disk.
The attacks take turns, --rounds times (the order reversed every other round), so that a busy machine
weighs on all of them alike; each round prints a line, and the summary puts every round's samples together.
Linux only (the other loopback addresses).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import re
import selectors
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatroom.protocol import Hello  # noqa: E402  (after the path it is found on)
from chatroom.ratelimit import TokenBucket  # noqa: E402
from chatroom.server.config import Config  # noqa: E402
from chatroom.server.history import History, searchable  # noqa: E402
from chatroom.server.main import listening_port  # noqa: E402

LIMITS = Config()  # the server's defaults: the attacker keeps within them
ATTACKS = {
    "none": "nothing: the room's own latency, for comparison",
    "search": "/search of 8 short words found nowhere (every row on disk and every message in memory is read), "
              "10 at once then 2 a second",
    "history": "/history 500, 10 at once then 2 a second, every answer read",
    "blocks": "the largest message of several lines (2,031 lines in one 4 KB line), 10 at once then 2 a second",
    "guesses": "wrong passwords from 10 connections at a time, each closed at once (a room with a password)",
    "squat": "connect, hello with reconnect, close, as fast as the login limits let one address",
}
BLOCK = "a" + "\n" * 2030 + "b"
SEARCH = "/search " + " ".join(["qz", "xj", "vq", "jx", "zq", "qx", "wz", "zx"])
PASSWORD = "the room's password"
PROBE = re.compile(rb"probe (\d+) (\d+)")
SEQ = re.compile(rb'"seq":(\d+)')
TIMEOUT = 10.0


# --- the server and its file ---------------------------------------------------------------------------------

def fill(path: Path, count: int) -> None:
    """A history file of `count` messages of about 500 bytes, as the server writes them."""
    History(path).close()
    words = ["lunch", "meeting", "deploy", "review", "coffee", "release", "bug", "test", "design", "monday"]
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = []
        for seq in range(1, count + 1):
            text = " ".join(words[(seq * 7 + i) % len(words)] + str(i) for i in range(60))[:500]
            body = json.dumps({"type": "message", "seq": seq, "sender": "filler", "text": text, "ts": 1.0},
                              ensure_ascii=False, separators=(",", ":"))
            rows.append((seq, body, searchable(text)))
        db.executemany("INSERT INTO events VALUES (?, 'message', ?, ?)", rows)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('last_id', ?)", (str(count),))
        db.commit()


@contextlib.contextmanager
def server(history: Path, *options: str) -> Iterator[int]:
    """server.py on a free port with this history file; its port."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "0", "--history", str(history), "-q",
                             *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if " port " not in first:
            raise RuntimeError(f"the server did not start: {first!r}")
        yield listening_port(first)
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def login(sock: socket.socket, first_line: bytes) -> bytes:
    """Send the first line; what came back up to the end of the answer to it (the banner included)."""
    sock.sendall(first_line)
    data = b""
    while data.count(b"\n") < 2:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# --- the attacker, in a process of its own -------------------------------------------------------------------

def attack(name: str, port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    if name in ("search", "history", "blocks"):
        _flood(name, port, deadline)
    elif name == "guesses":
        while time.monotonic() < deadline:
            socks = [connect(port) for _ in range(LIMITS.max_per_address)]
            for sock in socks:
                sock.sendall(Hello("mallory", password="guess").encode())
                sock.close()
    elif name == "squat":
        number = 0
        while time.monotonic() < deadline:
            with contextlib.closing(connect(port)) as sock:
                answer = login(sock, Hello(f"squat{number}", reconnect=True).encode())
            number += 1
            if b"login_limited" in answer:
                time.sleep(0.1)


def _flood(name: str, port: int, deadline: float) -> None:
    """One member at its rate limit: a burst, then 2 a second; what comes back is read as it comes."""
    sock = connect(port)
    login(sock, Hello("attacker").encode())
    line = {"search": SEARCH + "\n", "history": "/history 500\n",
            "blocks": json.dumps({"type": "say", "text": BLOCK}) + "\n"}[name].encode()
    threading.Thread(target=_drain, args=(sock,), daemon=True).start()
    bucket = TokenBucket(LIMITS.rate, LIMITS.burst, time.monotonic())
    while (now := time.monotonic()) < deadline:
        if bucket.take(now):
            sock.sendall(line)
        else:
            time.sleep(min(bucket.wait(now), deadline - now))
    sock.close()


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(1 << 20):
            pass


# --- the bystanders ------------------------------------------------------------------------------------------

@dataclass
class Measured:
    attack: str
    seconds: float
    json_ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)
    commit_ms: list[float] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        def stats(values: list[float]) -> dict[str, float]:
            ordered = sorted(values) or [float("nan")]

            def pick(share: float) -> float:
                return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)
            return {"n": len(values), "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}
        return {"attack": self.attack, "json": stats(self.json_ms), "plain": stats(self.plain_ms),
                "commit": stats(self.commit_ms), "dropped": self.dropped}


class Bystanders:
    """`speakers` JSON members who talk just under the rate limit, and two listeners (JSON and plain text) who
    note when each of their messages arrives. One thread does all the reading."""

    def __init__(self, port: int, speakers: int, password: str | None) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.speakers = [self._join(f"speaker{k}", f"127.0.0.{k + 2}", password) for k in range(speakers)]
        self.json = self._join("listener", f"127.0.0.{speakers + 2}", password)
        self.plain = connect(port, f"127.0.0.{speakers + 3}")
        login(self.plain, b"plainlistener\n" + (PASSWORD.encode() + b"\n" if password else b""))
        self.arrived: dict[str, list[tuple[int, int, int]]] = {"json": [], "plain": []}  # (speaker, n, ns)
        self.seqs: dict[tuple[int, int], int] = {}  # a probe's id, from the JSON listener
        self.dropped: list[str] = []
        self.sent: dict[tuple[int, int], int] = {}
        self._stop = threading.Event()
        self._pending = {"json": b"", "plain": b""}
        for sock in self.speakers:
            self.selector.register(sock, selectors.EVENT_READ, None)
        self.selector.register(self.json, selectors.EVENT_READ, "json")
        self.selector.register(self.plain, selectors.EVENT_READ, "plain")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _join(self, name: str, source: str, password: str | None) -> socket.socket:
        sock = connect(self.port, source)
        answer = login(sock, Hello(name, password=password).encode())
        if b'"welcome"' not in answer:
            raise RuntimeError(f"{name} was refused: {answer!r}")
        return sock

    def talk(self, seconds: float) -> None:
        """Each speaker in turn, 90 % of the rate limit in all."""
        interval = 1 / (0.9 * LIMITS.rate * len(self.speakers))
        deadline, number = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            speaker = number % len(self.speakers)
            self.sent[(speaker, number)] = time.monotonic_ns()
            self.speakers[speaker].sendall(f"probe {speaker} {number}\n".encode())
            number += 1
            time.sleep(interval)
        time.sleep(0.5)  # the last ones arrive

    def _read(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1 << 20)
                except OSError:
                    data = b""
                now = time.monotonic_ns()
                if not data:
                    self.selector.unregister(sock)
                    if key.data:
                        self.dropped.append(key.data)
                    continue
                if key.data:
                    self._note(key.data, data, now)

    def _note(self, listener: str, data: bytes, now: int) -> None:
        data = self._pending[listener] + data
        *lines, self._pending[listener] = data.split(b"\n")
        for line in lines:
            if (probe := PROBE.search(line)) is None:
                continue
            speaker, number = int(probe[1]), int(probe[2])
            self.arrived[listener].append((speaker, number, now))
            if listener == "json" and (seq := SEQ.search(line)) is not None:
                self.seqs[(speaker, number)] = int(seq[1])

    def close(self) -> None:
        self._stop.set()
        self.reader.join(TIMEOUT)
        for sock in [*self.speakers, self.json, self.plain]:
            sock.close()
        self.selector.close()


class CommitWatch(threading.Thread):
    """The newest id in the file, every 5 ms: when each id got there."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: list[tuple[int, int]] = []  # (ns, newest id)
        self.done = threading.Event()

    def run(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path.as_uri() + "?mode=ro", uri=True)) as db:
            while not self.done.wait(0.005):
                newest = db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
                self.seen.append((time.monotonic_ns(), newest))

    def on_disk_at(self, seq: int) -> int | None:
        return next((ns for ns, newest in self.seen if newest >= seq), None)

    def stop(self) -> None:
        self.done.set()
        self.join(TIMEOUT)


def measure(name: str, template: Path, scratch: Path, seconds: float, speakers: int) -> Measured:
    """One attack against a server of its own: the bystanders' figures."""
    history = scratch / f"{name}.sqlite3"
    shutil.copy(template, history)
    password = PASSWORD if name == "guesses" else None
    options: list[str] = []
    if password:
        (scratch / "password").write_text(password + "\n")
        options = ["--password-file", str(scratch / "password")]
    measured = Measured(name, seconds)
    with server(history, *options) as port:
        bystanders = Bystanders(port, speakers, password)
        watch = CommitWatch(history)
        watch.start()
        spawn = multiprocessing.get_context("spawn")  # not fork: this process has threads
        attacker = spawn.Process(target=attack, args=(name, port, seconds), daemon=True)
        if name != "none":
            attacker.start()
        try:
            bystanders.talk(seconds)
        finally:
            if attacker.pid is not None:
                attacker.join(TIMEOUT)
                attacker.kill()
            watch.stop()
            bystanders.close()
    for listener, arrived in bystanders.arrived.items():
        latencies = measured.json_ms if listener == "json" else measured.plain_ms
        latencies += [(ns - bystanders.sent[(speaker, number)]) / 1e6 for speaker, number, ns in arrived]
    for key, seq in bystanders.seqs.items():
        on_disk = watch.on_disk_at(seq)
        arrival = next(ns for speaker, number, ns in bystanders.arrived["json"] if (speaker, number) == key)
        if on_disk is not None:
            measured.commit_ms.append(max(0, on_disk - arrival) / 1e6)
    measured.dropped = bystanders.dropped
    return measured


def run(attacks: list[str], seconds: float, fill_count: int, speakers: int, rounds: int = 1,
        report: Callable[[Measured], None] = lambda measured: None) -> list[Measured]:
    """Every attack, `rounds` times in turn; each attack's rounds put together."""
    together = {name: Measured(name, 0.0) for name in attacks}
    with tempfile.TemporaryDirectory(prefix="chatroom-attacks-") as folder:
        scratch = Path(folder)
        template = scratch / "template.sqlite3"
        fill(template, fill_count)
        for number in range(rounds):
            for name in attacks if number % 2 == 0 else attacks[::-1]:
                measured = measure(name, template, scratch, seconds, speakers)
                report(measured)
                whole = together[name]
                whole.seconds += measured.seconds
                whole.json_ms += measured.json_ms
                whole.plain_ms += measured.plain_ms
                whole.commit_ms += measured.commit_ms
                whole.dropped += measured.dropped
    return list(together.values())


def line(measured: Measured) -> str:
    summary = measured.summary()
    cells = [f"{summary['attack']:<8}"]
    for what in ("json", "plain", "commit"):
        stats = summary[what]
        assert isinstance(stats, dict)
        cells.append(f"{stats['p50']:>7} {stats['p99']:>7} {stats['max']:>7} ({stats['n']})")
    return "  ".join(cells) + (f"  dropped: {', '.join(measured.dropped)}" if measured.dropped else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="attacks:\n" + "\n".join(f"  {k:<8} {v}" for k, v in ATTACKS.items()))
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="which, separated by commas (default: all)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each attack's length (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="turns each attack takes (default 3)")
    parser.add_argument("--fill", type=int, default=30_000, help="messages in the history file (default 30000)")
    parser.add_argument("--speakers", type=int, default=10, help="bystanders who talk (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("bench_attacks.py: error: needs Linux (bystanders connect from 127.0.0.2 and up)", file=sys.stderr)
        return 2
    attacks = [name for name in args.attacks.split(",") if name]
    if unknown := set(attacks) - set(ATTACKS):
        parser.error(f"unknown attack: {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    heading = f"{'attack':<8}  {'JSON listener':<26}  {'plain-text listener':<26}  arrival to commit"
    print(f"bystander latency in ms (p50 p99 max (samples)), {args.seconds:g} s per attack and round, {args.fill} "
          f"messages on disk, {args.speakers} speakers\n{heading}")
    results = run(attacks, args.seconds, args.fill, args.speakers, args.rounds,
                  report=lambda measured: print(line(measured), flush=True))
    print(f"\nall {args.rounds} rounds together\n{heading}")
    for measured in results:
        print(line(measured))
    if args.json:
        args.json.write_text(json.dumps([asdict(m) | m.summary() for m in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
