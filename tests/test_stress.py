"""Faults and load on a real server: clients vanishing at random points, 200 clients at once, a non-reader.

Every loop is bounded in count and time, and all traffic stays on loopback.
"""

from __future__ import annotations

import json
import random
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient, wait_until

from chatroom.protocol import Hello
from chatroom.server.config import Config
from chatroom.server.main import listening_port

ROOT = Path(__file__).resolve().parent.parent
OPEN = Config(rate=0, max_per_address=10_000, joins_per_address=0, room_joins=0, max_members=1000)


def churn(port: int, seed: int, count: int) -> None:
    """Connect `count` times and vanish at a random point of the session."""
    rng = random.Random(seed)
    for number in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        try:
            how = rng.choice(["at once", "mid-name", "mid-login", "after login", "mid-line", "reset", "garbage",
                              "quit"])
            name = f"c{seed}x{number}"
            if how == "mid-name":
                sock.sendall(name[:2].encode())
            elif how == "garbage":
                sock.sendall(b"\xff\xfe\x00\x1b[2J" * 50 + b"\n" + b"x" * 5000)
            elif how != "at once":
                hello = Hello(name).encode()
                sock.sendall(hello[: len(hello) // 2] if how == "mid-login" else hello)
                if how in ("after login", "mid-line", "reset", "quit"):
                    sock.recv(4096)
                if how == "mid-line":
                    sock.sendall(b"half a mess")
                if how == "quit":
                    sock.sendall(b"/quit\n")
            if how == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()


def test_clients_vanishing_at_random_points_do_not_disturb_the_chat(make_server):
    server = make_server(OPEN)
    chatters = [JsonClient(server.port) for _ in range(3)]
    try:
        for client, name in zip(chatters, ["alice", "bob", "carol"]):
            client.login(name)
        churners = [threading.Thread(target=churn, args=(server.port, seed, 75)) for seed in range(4)]
        senders = [threading.Thread(target=lambda c=client, n=name: [c.say(f"{n} {i}") for i in range(60)])
                   for client, name in zip(chatters, ["alice", "bob", "carol"])]
        for thread in churners + senders:
            thread.start()
        for thread in churners + senders:
            thread.join(60)
        orders = []
        for client in chatters:
            seen = []
            while len(seen) < 180:
                event = client.expect_event("message", timeout=TIMEOUT * 2)
                if event["sender"] in ("alice", "bob", "carol"):
                    seen.append((event["seq"], event["sender"], event["text"]))
            orders.append(seen)
        assert orders[0] == orders[1] == orders[2]
        texts = [text for _, _, text in orders[0]]
        assert sorted(texts) == sorted(f"{n} {i}" for n in ["alice", "bob", "carol"] for i in range(60))
        wait_until(lambda: server.room.names() == ["alice", "bob", "carol"], timeout=TIMEOUT * 2)
        wait_until(lambda: len(server._handlers) == 3, timeout=TIMEOUT * 2)
    finally:
        for client in chatters:
            client.close()


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except OSError:
        return None


class Swarm:
    """Many JSON clients read by one selector thread-free loop."""

    def __init__(self, port: int, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.clients: list[socket.socket] = []
        self.buffers: dict[socket.socket, bytes] = {}
        self.seqs: dict[socket.socket, list[int]] = {}
        self.leaves: list[tuple[str, str]] = []
        self.welcomed: set[socket.socket] = set()
        for number in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            sock.sendall(Hello(f"u{number}").encode())
            self.clients.append(sock)
            self.buffers[sock] = b""
            self.seqs[sock] = []
        for sock in self.clients:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)

    def pump(self, until, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                behind = sorted(len(s) for s in self.seqs.values())[:3]
                raise TimeoutError(f"the swarm did not get everything in time (fewest messages: {behind}; "
                                   f"leaves: {self.leaves})")
            for key, _ in self.selector.select(0.1):
                sock = key.fileobj
                data = sock.recv(1 << 20)
                if not data:
                    self.selector.unregister(sock)
                    continue
                *lines, self.buffers[sock] = (self.buffers[sock] + data).split(b"\n")
                for line in lines:
                    if line.startswith(b"{"):
                        event = json.loads(line)
                        if event["type"] == "message":
                            self.seqs[sock].append(event["seq"])
                        elif event["type"] == "welcome":
                            self.welcomed.add(sock)
                        elif event["type"] == "leave" and sock is self.clients[-1]:  # one that never sends
                            self.leaves.append((event["name"], event["reason"]))

    def close(self) -> None:
        for sock in self.clients:
            sock.close()
        self.selector.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_200_clients_20_senders_and_one_that_never_reads():
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "0", "--rate", "0", "--max-per-ip", "1000",
                             "--max-clients", "300", "--joins-per-ip", "0", "--room-joins", "0",
                             "--slow-after", "1", "-q"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    swarm = None
    sleeper = socket.socket()
    try:
        port = listening_port(proc.stdout.readline())
        swarm = Swarm(port, 200)
        swarm.pump(lambda: len(swarm.welcomed) == 200, 30)  # history keeps only the last 128 KiB
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.connect(("127.0.0.1", port))
        sleeper.sendall(Hello("sleeper").encode())
        before = rss_kib(proc.pid)
        senders = swarm.clients[:20]
        payload = "p" * 4000
        rounds = 0
        # Until the kernel's buffers for the sleeper (a few MB on loopback) and its send queue are full.
        while not swarm.leaves and rounds < 150:
            for number, sock in enumerate(senders):
                sock.setblocking(True)
                sock.sendall(f"{number}:{rounds} {payload}\n".encode())
                sock.setblocking(False)
            rounds += 1
            swarm.pump(lambda done=(rounds - 1) * 20: min(len(s) for s in swarm.seqs.values()) >= done, 30)
        total = rounds * 20
        swarm.pump(lambda: all(len(s) >= total for s in swarm.seqs.values()), 60)
        first = swarm.seqs[swarm.clients[0]]
        assert len(first) == total and len(set(first)) == total
        assert all(seqs == first for seqs in swarm.seqs.values())
        assert first == sorted(first)
        assert swarm.leaves == [("sleeper", "slow")]
        after = rss_kib(proc.pid)
        print(f"server RSS: {before} KiB before, {after} KiB after {total} messages to 200 clients")
        if before is not None:
            assert after - before < 64 * 1024, f"server RSS grew from {before} KiB to {after} KiB"
    finally:
        sleeper.close()
        if swarm:
            swarm.close()
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
