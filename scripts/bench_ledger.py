"""The load generator's accounting alone, in one process: its CPU per delivery with each accounting (ledger.c
and the Python loop), reads of as many deliveries as saturation's at N=100 and N=1000 (docs/performance.md).

Usage: python scripts/bench_ledger.py [--deliveries N]
"""

from __future__ import annotations

import argparse
import random
import time

from loadgen import ACCOUNTINGS, Ledger, Plan, Target, accounting_missing, payload

# (clients, deliveries per read): what the generators read per call at saturation, counted in a run
# (N=100: 140-180 with the Python accounting; N=1000: 250-700), and a shorter read.
SHAPES = ((100, 60), (100, 150), (1000, 700))


def reads(clients: int, per_read: int, count: int, rng: random.Random) -> list[bytes]:
    """Chatroom's message lines, every sender in order, as `count` reads of `per_read` lines each."""
    seq = [0] * clients
    chunks = []
    for _ in range(count):
        lines = []
        for _ in range(per_read):
            sender = rng.randrange(clients)
            seq[sender] += 1
            lines.append(b'{"type":"message","seq":%d,"sender":"u%d","text":"%s","ts":1733333333.123}\n'
                         % (seq[sender], sender, payload(sender, seq[sender], 64)))
        chunks.append(b"".join(lines))
    return chunks


def cost(accounting: str, clients: int, per_read: int, deliveries: int) -> float:
    """CPU µs per delivery of Ledger.account, 50 receivers each reading the same reads."""
    target = Target("chatroom", [], True, "", b"")
    plan = Plan(target, 0, clients=clients, senders=clients, rate=0.0, size=64,
                sample_every=max(1, clients // 10), accounting=accounting)
    receivers = list(range(0, clients, 2))[:50]
    ledger = Ledger(plan, receivers)
    chunks = reads(clients, per_read, max(1, deliveries // per_read // len(receivers)), random.Random(1))
    started = time.process_time()
    for chunk in chunks:
        for receiver in receivers:
            ledger.account(receiver, chunk, time.time_ns())
    return (time.process_time() - started) / (len(chunks) * per_read * len(receivers)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3_000_000, help="per figure (default 3,000,000)")
    args = parser.parse_args()
    for accounting in ACCOUNTINGS:
        missing = accounting_missing(accounting)
        if missing:
            print(f"{accounting}: cannot run here: {missing}")
            continue
        figures = ", ".join(f"N={clients} {per_read}/read {cost(accounting, clients, per_read, args.deliveries):.3f}"
                            for clients, per_read in SHAPES)
        print(f"{accounting}: CPU us per delivery: {figures}")


if __name__ == "__main__":
    main()
