"""The relay benchmark's load generator (scripts/bench.py): K processes, each driving every K-th client.

Each process logs its clients in, sends as its plan says, checks every delivery its own receivers get (lost,
duplicated, out of order, per sender: in C, scripts/ledger.c, where a C compiler builds it, else in a Python
loop that does the same) and reports to the parent over a pipe. Two engines run the clients:
`selectors` (the standard library; Linux's kernel receive stamps for latency) and `uvloop` (libuv: a read
costs the generator about half as much, so it keeps up with a faster server; from the `bench` extra).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import hashlib
import os
import platform
import re
import selectors
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # multiprocessing is imported where used: on Windows main() must refuse before that fails
    from multiprocessing.connection import Connection

PAYLOAD = re.compile(rb"B\|(\d+)\|(\d+)\|(\d+)\|")
# Linux stamps each arriving segment in the kernel: latency then ends when the data reached the receiver's
# socket, not when a generator got round to reading that socket.
# (Python names no SO_TIMESTAMPNS; 35 is its number on Linux.)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
KERNEL_STAMPS = SO_TIMESTAMPNS is not None
# In the windowed scenario a sender waits for its message to come back before it sends again. A server that
# leaves Nagle's algorithm on (ngircd sets no TCP_NODELAY) then holds its next small write until the generator
# acknowledges the last one, and the generator's kernel delays that acknowledgement (up to 40 ms) hoping to
# carry it on data this client will not send before the delivery arrives: a stall of the closed loop, not of
# the server (ngircd at N=100: 0.7-0.8 million deliveries/s at 25 % of its CPU, 3.4 million with it). So there,
# every read asks for the acknowledgement at once (Linux; TCP_QUICKACK does not last, hence after each read).
TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
STEP_TIMEOUT = 60.0  # longest wait for a generator to log its clients in or to drain, beyond the run itself


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


# --- what a generator knows of a server ------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A server under test, as its clients see it (how it is started is bench.py's business)."""
    name: str
    command: list[str]
    login: bool  # sends `hello` and waits for `welcome` (ncat has no login)
    hello: str  # the login lines, {name} is replaced
    welcome: bytes  # what the last answer to the login contains
    say: bytes = b""  # what precedes a payload on the wire (IRC: PRIVMSG #channel :)
    leave_marker: bytes = b""  # in a line telling that a member left (a cheap test before `leave`)
    leave: bytes = b""  # a regex whose group 1 is the N of the member uN who left; empty: no such line
    files: tuple[tuple[str, str], ...] = ()  # (name, text) written into the server's own directory first


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
    engine: str = "selectors"  # or "uvloop" (no kernel stamps: latency ends when the generator reads)
    accounting: str = "python"  # or "c": who walks each delivery (see Ledger)
    delayed_acks: bool = False  # keep the kernel's delayed acknowledgements in the windowed scenario too

    def sending(self) -> list[int]:
        return [index for index in range(self.senders) if index not in self.silent]

    @functools.cached_property  # every read asks
    def quick_acks(self) -> bool:
        """Every read acknowledged at once (see TCP_QUICKACK): the windowed scenario, where the OS can, unless
        asked not to."""
        return self.rate == 0 and not self.delayed_acks and TCP_QUICKACK is not None


def acknowledge(sock: Any) -> None:
    """Have the kernel acknowledge what this socket received now rather than later (see TCP_QUICKACK)."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)


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


# --- the accounting in C, where a compiler builds it ---------------------------------------------

LEDGER_C = Path(__file__).with_name("ledger.c")
TO_PYTHON, TOO_SMALL = -1, -2  # what ledger_walk returns when not how many latencies it sampled
C_FLAGS = ["-O2", "-shared", "-fPIC"]
ACCOUNTINGS = ("c", "python")
C_INT_MAX = 2**31 - 1
FIRST_CAPACITY = 4096  # payloads a read may hold before the books' arrays grow


class Books(ctypes.Structure):
    """One generator's counts, shared by both accountings; ledger.c's books_t, field for field."""
    _fields_ = [("clients", ctypes.c_int64), ("every", ctypes.c_int64), ("capacity", ctypes.c_int64),
                ("samples", ctypes.POINTER(ctypes.c_double)), ("pairs", ctypes.POINTER(ctypes.c_int64)),
                ("now", ctypes.c_int64),
                ("deliveries", ctypes.c_int64), ("duplicated", ctypes.c_int64), ("out_of_order", ctypes.c_int64),
                ("seen", ctypes.c_int64)]


def compiler() -> list[str] | None:
    """$CC, else cc or gcc on the PATH."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


@functools.cache
def c_walk() -> tuple[Callable[..., int] | None, str]:
    """ledger.c's walk and "", or None and why it cannot run here. Built once per source and compiler into
    the user's cache, loaded once per process (a generator forked from bench.py has it loaded already)."""
    if sys.platform == "win32":
        return None, "it is built for Linux and macOS only"
    command = compiler()
    if command is None:
        return None, "no C compiler (cc or gcc, or $CC)"
    try:
        source = LEDGER_C.read_bytes()
        key = hashlib.sha256(b"\0".join([source, *(part.encode() for part in command + C_FLAGS),
                                          platform.machine().encode(), sys.platform.encode()])).hexdigest()[:16]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chatroom"
        library = cache / f"ledger-{key}.so"
        for cached in (library.exists(), False):
            if not cached:
                failed = _build(command, cache, library, key)
                if failed:
                    return None, failed
            try:
                # PyDLL keeps the GIL over the call: the walk takes microseconds, releasing it would cost more. No
                # argtypes: their conversions tripled the cost of a call (Ledger._walked passes what it takes).
                walk = ctypes.PyDLL(str(library)).ledger_walk
                break
            except OSError:
                if not cached:
                    raise
                library.unlink(missing_ok=True)  # a damaged copy in the cache: built again, once
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # RuntimeError: no home directory
        return None, f"it could not be built or loaded: {exc}"
    walk.restype = ctypes.c_int
    return walk, ""


def _build(command: list[str], cache: Path, library: Path, key: str) -> str:
    """Compile ledger.c into `library`: "" or why it failed."""
    cache.mkdir(parents=True, exist_ok=True)
    # Built under a name of its own, then renamed: a concurrent builder never loads a half-written file.
    handle, building = tempfile.mkstemp(dir=cache, prefix=f"ledger-{key}-", suffix=".so")
    os.close(handle)
    try:
        built = subprocess.run([*command, *C_FLAGS, "-o", building, str(LEDGER_C)], capture_output=True,
                               text=True, timeout=120)
        if built.returncode != 0:
            said = built.stderr.strip() or built.stdout.strip() or f"exit status {built.returncode}"
            return f"{command[0]} failed: {said.splitlines()[0]}"
        os.replace(building, library)
        return ""
    finally:
        Path(building).unlink(missing_ok=True)


def accounting_missing(accounting: str) -> str:
    """Why `accounting` cannot run here ("" when it can)."""
    return c_walk()[1] if accounting == "c" else ""


def payload(sender: int, seq: int, size: int) -> bytes:
    """What `sender` says the `seq`-th time: "B|sender|seq|send time in ns|", padded to `size` bytes."""
    head = b"B|%d|%d|%d|" % (sender, seq, time.time_ns())
    return head + b"x" * (size - len(head))


# --- the accounting, the same for both engines ------------------------------------------------------

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
    """What one generator's receivers got, per sender: exact counts, no sockets (tests feed it bytes).

    The payloads of a read are walked by ledger.c where the plan's accounting is "c", by the Python loop
    otherwise; ledger.c hands the Python loop, on the same books, any read it could not read exactly as the
    loop would (a "|" count not a multiple of 4, a field not a plain number). With the C accounting the books
    are C's 64-bit integers: sequence numbers stay below 2**63 (the generator's own, counted from 1)."""

    def __init__(self, plan: Plan, own: list[int]) -> None:
        self.plan = plan
        self.own = own
        self.tails = {client: b"" for client in own}
        if plan.sample_every < 1:
            raise ValueError(f"sample_every is 1 or more (every n-th latency), not {plan.sample_every}")
        self._walk, missing = c_walk() if plan.accounting == "c" else (None, "")
        if missing:
            raise RuntimeError(f"the C accounting is not available: {missing}")

        def row() -> list[int] | ctypes.Array[ctypes.c_int64]:
            return [0] * plan.clients if self._walk is None else (ctypes.c_int64 * plan.clients)()

        self.last_seq = {client: row() for client in own}  # [receiver][sender]
        self.gaps = {client: row() for client in own}  # messages skipped over, [receiver][sender]
        self.books = Books(clients=plan.clients, every=plan.sample_every)
        self._books = ctypes.byref(self.books)
        self._grow(FIRST_CAPACITY)
        self.acked = [0] * plan.clients
        self.index = {b"%d" % client: client for client in range(plan.clients)}  # a look-up beats int() by half
        # A sender's window is acknowledged by the next client of this same process, so each generator
        # paces its own senders without hearing from the others.
        self.acker = {own[(i + 1) % len(own)]: client for i, client in enumerate(own)}
        self.ready: list[int] = []  # senders whose window opened again
        self.latencies: list[float] = []
        self.dropped_at: dict[int, float] = {}  # client -> monotonic time the server dropped it
        self._leave = re.compile(plan.target.leave) if plan.silent and plan.target.leave else None

    @property
    def deliveries(self) -> int:
        return int(self.books.deliveries)

    @property
    def duplicated(self) -> int:
        return int(self.books.duplicated)

    @property
    def out_of_order(self) -> int:
        return int(self.books.out_of_order)

    def _grow(self, capacity: int) -> None:
        self._samples, self._pairs = (ctypes.c_double * capacity)(), (ctypes.c_int64 * (2 * capacity))()
        self.books.samples, self.books.pairs, self.books.capacity = self._samples, self._pairs, capacity

    def account(self, receiver: int, data: bytes, now: int) -> None:
        """`data` has arrived for `receiver` (at `now`, ns since the epoch)."""
        data = self.tails[receiver] + data
        cut = data.rfind(b"\n") + 1
        self.tails[receiver] = data[cut:]
        if self._walk is None or not self._walked(self._walk, receiver, data, cut, now):
            self._walk_python(receiver, data[:cut], now)
        last = self.last_seq[receiver]
        paced = self.acker.get(receiver)
        if paced is not None and last[paced] > self.acked[paced]:
            self.acked[paced] = last[paced]
            self.ready.append(paced)
        # A scan of every byte: only where asked (the slow scenario), and a regex only past the cheap test.
        if self._leave is not None and data.find(self.plan.target.leave_marker, 0, cut) >= 0:
            for name in self._leave.findall(data, 0, cut):
                self.dropped_at.setdefault(int(name), time.monotonic())

    def _walked(self, walk: Callable[..., int], receiver: int, data: bytes, cut: int, now: int) -> bool:
        """ledger.c's walk of data[:cut]; False if it leaves the read to the Python loop."""
        if cut > C_INT_MAX:  # its length goes to C as an int (no argtypes: see c_walk)
            return False
        self.books.now = now
        while True:
            sampled = walk(self._books, self.last_seq[receiver], self.gaps[receiver], receiver, data, cut)
            if sampled > 0:
                self.latencies += self._samples[:sampled]
            if sampled >= 0:
                return True
            if sampled == TO_PYTHON:
                return False
            assert sampled == TOO_SMALL
            self._grow(cut // 4 + 1)  # a payload has 4 "|" at least

    def _walk_python(self, receiver: int, lines: bytes, now: int) -> None:
        # The generator's hot loop: one comparison per delivery when all is well, the rest off the fast path.
        senders, seqs, stamps = fields(lines)
        last, books = self.last_seq[receiver], self.books
        echoes = last[receiver]  # a sender's own line coming back (our server echoes it) is not a delivery
        for sender, seq in zip(map(self.index.__getitem__, senders), map(int, seqs)):
            if seq == last[sender] + 1:
                last[sender] = seq
            else:
                self._irregular(receiver, sender, seq)
        echoes = last[receiver] - echoes
        books.deliveries += len(seqs) - echoes
        every = books.every
        first = (every - 1 - books.seen) % every
        books.seen += len(seqs)
        sampled = zip(senders[first::every], stamps[first::every])
        self.latencies += [(now - int(sent)) / 1e6 for sender, sent in sampled if int(sender) != receiver]

    def _irregular(self, receiver: int, sender: int, seq: int) -> None:
        last = self.last_seq[receiver]
        if seq == last[sender]:
            self.books.duplicated += 1
        elif seq < last[sender]:
            self.books.out_of_order += 1
        else:
            self.gaps[receiver][sender] += seq - last[sender] - 1
            last[sender] = seq

    def lost(self, sent: list[int]) -> int:
        """Messages not (yet) received, over this process's receivers, including any the server dropped."""
        # Summed whole lists at a time (a non-sender's entries stay 0): drain() asks often, N can be 1000.
        total = sum(sent)
        return sum(total - sent[r] - (sum(self.last_seq[r]) - self.last_seq[r][r]) + sum(self.gaps[r])
                   - self.gaps[r][r] for r in self.own if r not in self.plan.silent)

    def awaiting(self, sent: list[int]) -> bool:
        """Still messages on their way, or a silent client the plan waits to see dropped."""
        if self.plan.await_drop and not self.plan.silent <= self.dropped_at.keys():
            return True
        return self.lost(sent) > 0


# --- the clients: logged in with blocking sockets, then run by one of the engines ---------------------

class Clients:
    """This process's share of the clients, logged in; what they receive goes to a Ledger."""

    def __init__(self, plan: Plan, own: list[int]) -> None:
        self.plan = plan
        self.own = own
        self.ledger = Ledger(plan, own)
        self.socks: dict[int, socket.socket] = {}
        self.sent = [0] * plan.clients
        try:
            self._login()
        except BaseException:
            self.close()
            raise

    def _login(self) -> None:
        plan = self.plan
        for client in self.own:
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

    @staticmethod
    def _await(sock: socket.socket, marker: bytes) -> None:
        data = b""
        while marker not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a connection during login")
            data += chunk

    def line(self, sender: int) -> bytes:
        """The next payload of `sender`, counted as sent."""
        self.sent[sender] += 1
        return self.plan.target.say + payload(sender, self.sent[sender], self.plan.size) + b"\n"

    def send(self, sender: int) -> None:
        raise NotImplementedError  # each engine writes its own way

    def paced(self, end: float) -> Iterator[float]:
        """light and slow: send as this process's senders in turn, at its share of the plan's rate; yields how
        long the engine may read before the next send is due."""
        everyone = self.plan.sending()
        mine = [client for client in everyone if client in self.socks]
        interval = len(everyone) / (self.plan.rate * len(mine)) if mine else float("inf")
        next_send, turn = time.monotonic(), 0
        while time.monotonic() < end:
            while time.monotonic() >= next_send:
                self.send(mine[turn % len(mine)])
                turn += 1
                next_send += interval
            yield max(0.0, min(next_send - time.monotonic(), end - time.monotonic()))

    def refill(self) -> None:
        """saturation: every sender keeps `window` messages in flight; an acknowledgement reopens its window."""
        window, ledger = self.plan.window, self.ledger
        ready, ledger.ready = ledger.ready, []
        for sender in ready:
            while self.sent[sender] - ledger.acked[sender] < window and sender not in ledger.dropped_at:
                self.send(sender)

    def reading(self) -> list[int]:
        return [client for client in self.own if client not in self.plan.silent]

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


class Swarm(Clients):
    """The `selectors` engine: one loop over this process's sockets."""

    def __init__(self, plan: Plan, own: list[int]) -> None:
        super().__init__(plan, own)
        self.selector = selectors.DefaultSelector()
        for sock in self.socks.values():
            sock.setblocking(False)
        for client in self.reading():
            self.selector.register(self.socks[client], selectors.EVENT_READ, client)

    def send(self, sender: int) -> None:
        line = self.line(sender)
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
            if self.plan.quick_acks:
                acknowledge(key.fileobj)
            self.ledger.account(key.data, data, stamp or time.time_ns())

    def run(self, end: float) -> None:
        (self._paced if self.plan.rate else self._windowed)(end)

    def _paced(self, end: float) -> None:
        for wait in self.paced(end):
            self.poll(min(wait, 0.01))

    def _windowed(self, end: float) -> None:
        self.ledger.ready = [client for client in self.plan.sending() if client in self.socks]
        while time.monotonic() < end:
            self.refill()
            self.poll(0.001)

    def drain(self, sent: list[int], seconds: float) -> None:
        """Read until every message sent has reached every receiver (and, if asked, a silent client was dropped)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.ledger.awaiting(sent):
            self.poll(0.05)

    def close(self) -> None:
        super().close()
        if hasattr(self, "selector"):
            self.selector.close()


class Receiver(asyncio.Protocol):
    """One client's read side in the `uvloop` engine."""

    def __init__(self, swarm: LoopSwarm, client: int) -> None:
        self.swarm = swarm
        self.client = client
        self.sock: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sock = transport.get_extra_info("socket")  # uvloop's stand-in for the socket it took over

    def data_received(self, data: bytes) -> None:
        if self.swarm.plan.quick_acks:
            acknowledge(self.sock)
        self.swarm.received(self.client, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.swarm.ledger.dropped_at.setdefault(self.client, time.monotonic())


class LoopSwarm(Clients):
    """The `uvloop` engine: each socket a transport whose reads go straight to the ledger (no loop of our own
    per read), and the saturation senders' windows refilled once per turn of the loop."""

    def __init__(self, plan: Plan, own: list[int]) -> None:
        import uvloop

        super().__init__(plan, own)
        self.loop = uvloop.new_event_loop()
        self.transports: dict[int, asyncio.Transport] = {}
        self.sending = False  # saturation: windows are refilled as acknowledgements arrive
        self.refill_due = False
        try:
            self.loop.run_until_complete(self._attach())
        except BaseException:
            self.close()
            raise

    async def _attach(self) -> None:
        for client in self.reading():
            sock = self.socks[client]
            sock.setblocking(False)
            transport, _ = await self.loop.create_connection(lambda c=client: Receiver(self, c), sock=sock)
            self.transports[client] = transport

    def send(self, sender: int) -> None:
        transport = self.transports[sender]
        if transport.is_closing():
            self.ledger.dropped_at.setdefault(sender, time.monotonic())
        else:
            transport.write(self.line(sender))

    def received(self, client: int, data: bytes) -> None:
        ledger = self.ledger
        ledger.account(client, data, time.time_ns())
        if ledger.ready and self.sending and not self.refill_due:
            # Once per turn of the loop, after every read it had ready, as the selectors engine does.
            self.refill_due = True
            self.loop.call_soon(self._refill)

    def _refill(self) -> None:
        self.refill_due = False
        if self.sending:
            self.refill()

    def run(self, end: float) -> None:
        self.loop.run_until_complete(self._paced(end) if self.plan.rate else self._windowed(end))

    async def _windowed(self, end: float) -> None:
        self.sending = True
        self.ledger.ready = [client for client in self.plan.sending() if client in self.transports]
        self.refill()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        self.sending = False

    async def _paced(self, end: float) -> None:
        for wait in self.paced(end):
            await asyncio.sleep(wait)

    def drain(self, sent: list[int], seconds: float) -> None:
        async def wait() -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self.ledger.awaiting(sent):
                await asyncio.sleep(0.05)

        self.loop.run_until_complete(wait())

    def close(self) -> None:
        for transport in getattr(self, "transports", {}).values():
            transport.abort()
        if hasattr(self, "loop"):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        super().close()


ENGINES: dict[str, type[Swarm] | type[LoopSwarm]] = {"selectors": Swarm, "uvloop": LoopSwarm}


def generator(plan: Plan, index: int, count: int, cpu: int | None, conn: Connection) -> None:
    """One generator process: log in its clients, run when told, report, close when told."""
    pin(cpu)
    swarm: Swarm | LoopSwarm | None = None
    try:
        swarm = ENGINES[plan.engine](plan, list(range(index, plan.clients, count)))
        conn.send(("ready", None))
        end = conn.recv()
        if end is None:  # the run was called off
            return
        cpu0 = time.process_time()
        swarm.run(end)
        conn.send(("sent", {client: swarm.sent[client] for client in swarm.own}))
        sent = conn.recv()
        if sent is None:
            return
        swarm.drain(sent, plan.drain_seconds)
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


# --- the parent: start the generators, gather their answers -----------------------------------------

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
