"""The cluster's engine alone against a Redis (issue #20's targets before the room is wired to it): P engines in
this process, each following the stream, publish at a given rate; the publish call's latency, the time from a
publish to its delivery by every reader, this process's CPU per message and Redis's share of a core.

Usage: python scripts/bench_cluster.py redis://127.0.0.1:6399/0 [--servers 3] [--rate 2000] [--seconds 10]
(a Redis of its own, without persistence: redis-server --port 6399 --save '' --appendonly no). --rate 0: as fast
as the publishing threads go.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections.abc import Callable

import redis

from chatroom.protocol import Message
from chatroom.server.cluster import Engine, Published, Record


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="publishing threads per server (default 4)")
    parser.add_argument("--rate", type=float, default=2000, help="messages/s in all (default 2000; 0: at once)")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    sent_at: dict[str, float] = {}  # by text: a reader may deliver before the publish call has returned
    delays: list[float] = []
    lock = threading.Lock()

    def reader() -> Callable[[list[Record]], None]:
        def deliver(batch: list[Record]) -> None:
            now = time.perf_counter()
            with lock:
                delays.extend(now - sent_at[r.event.text] for r in batch if isinstance(r, Published)
                              and isinstance(r.event, Message))
        return deliver

    room = f"bench-{time.time_ns()}"  # a room of its own each run
    engines = [Engine(args.url, room=room) for _ in range(args.servers)]
    for engine in engines:
        engine.start(lambda: None, lambda exc: None)
        engine.follow(engine.snapshot().seq, reader())
    calls: list[float] = []
    stop = time.perf_counter() + args.seconds
    per_thread = args.rate / (args.servers * args.threads) if args.rate else 0.0

    def talk(engine: Engine, name: str) -> None:
        seat = engine.claim(name, max_members=10_000).seat
        due = time.perf_counter()
        for n in itertools.count():
            if (now := time.perf_counter()) >= stop:
                break
            if per_thread:
                due += 1 / per_thread
                if due > now:
                    time.sleep(due - now)
            text = f"{name} {n:08d} " + "x" * 24
            started = time.perf_counter()
            with lock:
                sent_at[text] = started
            engine.publish(seat, Message(seq=0, sender=name, text=text))
            took = time.perf_counter() - started
            with lock:
                calls.append(took)

    probe = redis.Redis.from_url(args.url, protocol=2)
    cpu_before, cpu_here, wall = redis_cpu(probe), time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=talk, args=(engine, f"s{n}t{t}")) for n, engine in enumerate(engines)
               for t in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall
    redis_share = (redis_cpu(probe) - cpu_before) / wall
    here = time.process_time() - cpu_here
    time.sleep(1)  # the readers' last deliveries
    for engine in engines:
        engine.stop()
    probe.close()
    count = len(calls)
    print(f"{args.servers} servers x {args.threads} threads, {count} messages in {wall:.1f} s = {count / wall:.0f}/s")
    print(f"publish call: p50 {1000 * statistics.median(calls):.2f} ms, p99 {1000 * percentile(calls, 0.99):.2f} ms")
    print(f"publish to delivery, every reader ({len(delays)} deliveries): p50 {1000 * statistics.median(delays):.2f}"
          f" ms, p99 {1000 * percentile(delays, 0.99):.2f} ms")
    print(f"Redis: {100 * redis_share:.1f} % of a core; this process: {1e6 * here / count:.0f} us of CPU per message "
          f"({args.servers} publishers and readers)")


if __name__ == "__main__":
    main()
