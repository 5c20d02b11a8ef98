"""The server's own work per message, in one process without sockets: python scripts/bench_room.py
[--members 100] [--messages 20000] [--batch 20] [--repeat 7].

A room of N JSON members; each message is a typed line of the benchmark's size (64 bytes), from the members
in turn, through what the reader thread does (`Session.receive`, `Room.handle`), and every `--batch` messages
every outbox is drained as the sender does (`take`, then `sent` as if the socket took it all). Prints the
microseconds of this thread's CPU time per message of each side, best of `--repeat`; the sockets, the threads
and the history file are left out, and time spent waiting for the CPU is not counted, so what other programs
do to the machine moves these figures far less than bench.py's.

Works on older checkouts too: PYTHONPATH=/path/to/checkout python scripts/bench_room.py
"""

from __future__ import annotations

import argparse
import gc
import inspect
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: that checkout wins


class Sink:
    """A socket that takes everything."""
    sock = None

    def send_nowait(self, data: bytes) -> int:
        return len(data)

    def finish(self) -> None:
        pass


def one_run(members: int, messages: int, batch: int) -> tuple[float, float]:
    """(reader µs per message, sender µs per message)."""
    from chatroom.codecs import json_codec
    from chatroom.protocol import Line
    from chatroom.server.config import Config
    from chatroom.server.outbox import Outbox
    from chatroom.server.room import Room
    from chatroom.server.session import Run, Session

    config = Config(rate=0, max_members=members + 1, grace=0)
    room = Room(config)
    now = time.monotonic()
    joined = []
    for index in range(members):
        box = room.new_outbox()
        box.stream = Sink()
        session = Session(config, now)
        session.receive(Line(f'{{"type":"hello","name":"u{index}"}}'), now)
        member, _ = room.join(f"u{index}", json_codec, box)
        session.admitted(now)
        joined.append((session, member))
    boxes = [member.outbox for _, member in joined]

    # take(now) since the feed (issue #21), take() before
    take_args = (now,) if "now" in inspect.signature(Outbox.take).parameters else ()

    def drain() -> None:
        for box in boxes:
            data = box.take(*take_args)
            box.sent(len(data), now)

    drain()
    lines = [Line(f"B|{i % members}|{i}|{time.time_ns()}|".ljust(64, "x")) for i in range(messages)]
    reading = sending = 0.0
    gc.disable()
    try:
        for start in range(0, messages, batch):
            began = time.thread_time()
            for index in range(start, min(start + batch, messages)):
                session, member = joined[index % members]
                for action in session.receive(lines[index], now):
                    assert isinstance(action, Run)
                    room.handle(member, action.command)
            middle = time.thread_time()
            drain()
            reading += middle - began
            sending += time.thread_time() - middle
    finally:
        gc.enable()
    return reading / messages * 1e6, sending / messages * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description="The server's work per message in one process (no sockets).")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=20, help="messages between two drains of every outbox")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    runs = [one_run(args.members, args.messages, args.batch) for _ in range(args.repeat)]
    reader = min(run[0] for run in runs)
    sender = min(run[1] for run in runs)
    print(f"N={args.members}, drained every {args.batch} messages, best of {args.repeat}: reader {reader:.2f} us, "
          f"sender {sender:.2f} us, together {reader + sender:.2f} us per message "
          f"({(reader + sender) * 1000 / max(1, args.members - 1):.0f} ns per delivery)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
