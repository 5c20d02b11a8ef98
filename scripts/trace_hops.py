"""Where a message's time goes at light load, hop by hop: python scripts/trace_hops.py [--count N]
[--interval S] [--members M] [--history].

Starts chatroom's server (this checkout's, or PYTHONPATH's) in a child process pinned to CPU 0, with timestamps
taken at each hop of a line through it: the reader has the bytes, the session has parsed the line, the room has
made the message, the reader hands over to the sender, the sender thread wakes, its first and its last send of
the message. M members join (pinned to CPU 1); one of them says a line every S seconds, N times, each after every
member got the one before. Prints the median of each hop, counted from the reader having the
bytes, and the round trip the talking member's client saw (sent to received by the last member).

A line that arrives after the server slept for a while costs several times what the same line costs in a busy
loop (docs/performance.md, "Light load: where the time goes"): this is the instrument for that.
"""

from __future__ import annotations

import argparse
import atexit
import json
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: that checkout wins

from bench import LOGIN_LIMITS_OFF, OPEN_LIMITS  # noqa: E402  (the server's limits opened as bench.py does)
from loadgen import pin  # noqa: E402

HOPS = [("Reader._perform", "the reader has the bytes"), ("Session.receive", "the line parsed"),
        ("Room.handle", "the room made the message"), ("Sender.ready_many", "handed over to the sender"),
        ("Sender.woken", "the sender thread runs"), ("Sender._flush", "its first send begins"),
        ("Sender._flush.last", "its last send ended")]
TIMEOUT = 10.0
WARM_UP = 5  # lines not counted: the first ones after the start


# --- the server side: the real server with a clock at each hop ---------------------------------------------------

def serve(options: list[str]) -> int:
    """The server, its functions wrapped to note when each hop begins or ends; the medians go to stderr as JSON
    when it stops."""
    from chatroom.server import main, reader, room, sender, session, wakeup

    marks: list[tuple[str, int]] = []
    clock = time.perf_counter_ns

    def around(cls: type, name: str, key: str, after: bool = False, when: Any = None) -> None:
        inner = getattr(cls, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(*args):
                if not after:
                    marks.append((key, clock()))
                result = inner(*args, **kwargs)
                if after:
                    marks.append((key, clock()))
                return result
            return inner(*args, **kwargs)
        setattr(cls, name, wrapped)

    around(reader.Reader, "_perform", "Reader._perform",
           when=lambda self, loan, step, *rest: step == loan.conn.received)
    around(session.Session, "receive", "Session.receive", after=True)
    around(room.Room, "handle", "Room.handle", after=True)
    around(sender.Sender, "ready_many", "Sender.ready_many")
    around(sender.Sender, "_flush", "Sender._flush")
    around(sender.Sender, "_flush", "Sender._flush.last", after=True)
    inner_woke = wakeup.WakingSelector.woke

    def woken(self: Any, key: Any) -> bool:
        result = inner_woke(self, key)
        if result and getattr(self, "_owner", "") == "sender":
            marks.append(("Sender.woken", clock()))
        return result
    wakeup.WakingSelector.woke = woken  # type: ignore[method-assign]
    inner_init = sender.Sender.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        inner_init(self, *args, **kwargs)
        self._wakeup._owner = "sender"
    sender.Sender.__init__ = init  # type: ignore[method-assign]

    def report() -> None:
        messages: list[dict[str, float]] = []
        for key, at in marks:
            if key == "Reader._perform":
                messages.append({"start": at})
            elif messages:
                hops = messages[-1]
                if key == "Sender._flush.last" or key not in hops:
                    hops[key] = at
        medians = {key: statistics.median((m[key] - m["start"]) / 1000 for m in messages[WARM_UP:] if key in m)
                   for key, _ in HOPS[1:] if any(key in m for m in messages[WARM_UP:])}
        print(json.dumps(medians), file=sys.stderr, flush=True)
    atexit.register(report)
    pin(0)
    return main.main(options)


# --- the client side ----------------------------------------------------------------------------------------------

def join(port: int, name: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(json.dumps({"type": "hello", "name": name}).encode() + b"\n")
    until(sock, b'"welcome"')
    return sock


def until(sock: socket.socket, marker: bytes, seen: bytes = b"") -> bytes:
    while marker not in seen:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        seen += data
    return seen.partition(marker)[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="lines said (default 200)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between them (default 0.02)")
    parser.add_argument("--members", type=int, default=2, help="members in the room (default 2)")
    parser.add_argument("--history", action="store_true", help="the server keeps its history on disk")
    parser.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    if args.count <= WARM_UP:
        parser.error(f"--count must be more than {WARM_UP}: the first lines warm the server up and are not counted")
    with tempfile.TemporaryDirectory() as scratch:
        history = str(Path(scratch) / "room.sqlite3") if args.history else "none"
        medians, trips = trace(args, ["--history", history])
    print(f"{args.count} lines, one every {args.interval:g} s, {args.members} members; median µs after the "
          "reader has the bytes:")
    for key, label in HOPS[1:]:
        if key in medians:
            print(f"  {medians[key]:8.1f}  {label}")
    print(f"  {statistics.median(trips[WARM_UP:]):8.1f}  sent to received by the last member, as its client saw it")
    return 0


def trace(args: argparse.Namespace, history: list[str]) -> tuple[dict[str, float], list[float]]:
    """Run the traced server and the members: the server's medians per hop, the client's round trips."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "0", "-q", *OPEN_LIMITS, *LOGIN_LIMITS_OFF, *history],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trips: list[float] = []
    try:
        assert proc.stdout is not None
        if not select.select([proc.stdout], [], [], TIMEOUT)[0]:
            raise SystemExit(f"the server did not start in {TIMEOUT:g} s")
        first = proc.stdout.readline()
        if " port " not in first:
            raise SystemExit(f"the server did not start: {first!r}")
        # Read here, not with chatroom.server.main.listening_port: the server traced may be an older checkout's.
        port = int(first.split(" port ")[1].split(";")[0].split()[0])
        pin(1)
        members = [join(port, f"m{index}") for index in range(args.members)]
        talker, last = members[0], members[-1]
        seen = dict.fromkeys(members, b"")
        for number in range(args.count):
            time.sleep(args.interval)
            began = time.perf_counter()
            talker.sendall(b'{"type":"say","text":"hop %d"}\n' % number)
            line = b"hop %d\"" % number
            seen[last] = until(last, line, seen[last])
            trips.append((time.perf_counter() - began) * 1e6)
            # Every member has the line before the next is said: the sender may send to the last member first, and
            # a line said while it still sends the one before would take that one's sends as its own hops.
            for member in members[:-1]:
                seen[member] = until(member, line, seen[member])
        for sock in members:
            sock.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, errors = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, errors = proc.communicate()
    return json.loads(errors.strip().splitlines()[-1]), trips

if __name__ == "__main__":
    sys.exit(main())
