"""Where a relayed message's microseconds go in chatroom's server: py-spy on it during bench.py's saturation run.

py-spy samples the thread that holds the GIL (`--gil`: whoever runs Python, the only CPU work that cannot
overlap), reading the server from outside without changing it. /proc gives each thread's CPU time, user and
kernel, and its context switches over the same seconds; `perf stat` (where it works) counts each thread's
syscalls. A role's user time is split by where its samples fell (STAGES, matched from the innermost frame
outwards), its kernel time shown whole, and both divided by the messages relayed: microseconds per message
and nanoseconds per delivery.
Usage: python scripts/profile_server.py [--clients 100] [--seconds 20] [--rate 100] [--no-history]
                                        [--chatroom-root DIR] [--raw FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench
from loadgen import generator_cpus, pin

WAITING = "(GIL let go: in a blocking call)"
# Where a sample belongs: the first stage, from the innermost frame outwards, one of whose patterns is found
# in a frame ("Class.method (path:line)"). Written against the server as the restructure of issue 17 left it;
# frames nothing matches are shown as "other" with their innermost function, so a renamed one stands out.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    # py-spy names the last holder of the GIL also while nobody holds it: samples in these blocking calls
    # are the GIL let go (a thread in a syscall or waiting), not Python work, and split no one's user time.
    (WAITING,
     ("wait_ready ", "Selector.select ", "Condition.wait ", "Queue.get ", "Event.wait ", "serve_forever ")),
    ("read: recv (its Python and the syscall)", ("Stream.recv ", "Stream._attempt_recv ", "Reader._run ")),
    ("read: framing", ("LineFramer.",)),
    ("sanitizing", ("sanitize",)),
    ("session: parse the line", ("Session.", "commands.py")),
    ("room lock (enter/exit)", ("_Changing.",)),
    ("encoding", ("encode_json", "json_codec", "plain_codec", "to_dict", "json/encoder", "render.py")),
    ("fan-out to outboxes", ("Outbox.put_all", "Room._broadcast", "Room._audience", "Room._put ", "Feed.")),
    ("history queue (room side)", ("History.append", "Room._remember", "_wire_bytes", "History.ids_used")),
    ("wake the sender", ("Sender.ready_many", "Sender._wake", "ChatServer.apply")),
    ("room: make the message", ("Room.", "Message.__init__", "events.py")),
    ("handler loop", ("ChatHandler._serve", "ChatHandler._perform", "ChatHandler.received", "ChatHandler._work",
                      "ChatHandler.tick", "Reader._perform")),
    ("send (its Python and the syscall)", ("Stream.send_nowait",)),
    ("sender: take and account", ("Outbox.take", "Outbox._with_own", "Outbox.sent", "Sender._flush",
                                  "Sender._send ")),
    ("sender: judge slow readers", ("Sender._sweep", "Outbox.too_slow", "Outbox.judge")),
    ("sender: loop and wake-up reads", ("selectors.py", "Sender._run")),
    ("history writer", ("History.",)),
    ("logging", ("logging/",)),
]
# The reader reads the members' connections (issue #21); a connection's handler thread reads until its login
# (and on servers before #21, always).
ROLES = [("reader", re.compile(r"^reader$")), ("handlers", re.compile(r"process_request_thread")),
         ("sender", re.compile(r"^sender$")),
         ("history writer", re.compile(r"^history writer$"))]  # any other thread: "other threads"
SAMPLE_LINE = re.compile(r"^thread \((\d+)\): ([^;]*?)(?:;(.*))? (\d+)$")
DUMPED_THREAD = re.compile(r'^Thread (\d+) .*?: "(.*)"$', re.MULTILINE)
# Counted by `perf stat` per thread, where its tracepoints work: what each role asks of the kernel.
SYSCALLS = {"syscalls": "raw_syscalls:sys_enter", "recv": "syscalls:sys_enter_recvfrom",
            "send": "syscalls:sys_enter_sendto", "poll": "syscalls:sys_enter_poll",
            "epoll_wait": "syscalls:sys_enter_epoll_wait", "futex": "syscalls:sys_enter_futex"}
FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


@dataclass
class ThreadTimes:
    """One thread's counters from /proc/PID/task/TID: CPU seconds and context switches."""
    user: float = 0.0
    system: float = 0.0
    voluntary: int = 0  # context switches: waits (a lock, the GIL, a socket)
    involuntary: int = 0  # preempted

    def minus(self, before: ThreadTimes) -> ThreadTimes:
        return ThreadTimes(*(getattr(self, name) - getattr(before, name) for name in self.__dataclass_fields__))


def thread_times(pid: int) -> dict[int, ThreadTimes]:
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines()
                          if ":\t" in line)
        except (OSError, ValueError):
            continue  # ended meanwhile
        found[int(task.name)] = ThreadTimes(
            int(stat[11]) / bench.CLOCK_TICKS, int(stat[12]) / bench.CLOCK_TICKS,
            int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return found


def stage_of(frames: list[str]) -> str:
    """The stage of one sample; frames outermost first, as py-spy writes them."""
    for frame in reversed(frames):
        for stage, patterns in STAGES:
            if any(pattern in frame for pattern in patterns):
                return stage
    if not frames:
        return "(no Python frame)"
    innermost = FRAME.match(frames[-1])
    return "other: " + (innermost.group(1) if innermost else frames[-1])


def role_of(thread_name: str) -> str:
    for role, pattern in ROLES:
        if pattern.search(thread_name):
            return role
    return "other threads"


def roles_of(dump: str) -> dict[int, str]:
    """Each thread's role, from `py-spy dump` (every thread, also those that never hold the GIL)."""
    return {int(tid): role_of(name) for tid, name in DUMPED_THREAD.findall(dump)}


def samples_by_stage(raw: str, roles: dict[int, str]) -> dict[str, Counter[str]]:
    """py-spy's collapsed stacks counted per role and stage."""
    found: dict[str, Counter[str]] = {}
    for line in raw.splitlines():
        sample = SAMPLE_LINE.match(line)
        if sample is not None:
            tid, name, stack, count = sample.groups()
            role = roles.get(int(tid)) or role_of(name)
            found.setdefault(role, Counter())[stage_of(stack.split(";") if stack else [])] += int(count)
    return found


def perf_counts(text: str) -> dict[int, dict[str, int]]:
    """`perf stat --per-thread -x,` output: per thread id, each SYSCALLS count."""
    names = {event: name for name, event in SYSCALLS.items()}
    found: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) > 3 and parts[3] in names and parts[1].isdigit():
            found.setdefault(int(parts[0].rsplit("-", 1)[1]), {})[names[parts[3]]] = int(parts[1])
    return found


@dataclass
class Role:
    """One kind of thread over the profiled seconds, per message."""
    threads: int = 0
    user_us: float = 0.0
    kernel_us: float = 0.0
    waits: float = 0.0  # voluntary context switches: a lock, the GIL, a socket
    preempted: float = 0.0  # involuntary ones
    syscalls: dict[str, float] = field(default_factory=dict)  # perf's counts; empty without perf
    samples: int = 0  # py-spy's, doing Python work (not the WAITING ones)


@dataclass
class Breakdown:
    """What the profile found: per role its counters, per stage its microseconds of CPU per message."""
    messages: int
    deliveries_per_message: int
    roles: dict[str, Role]
    stages: list[tuple[str, str, float]]  # (role, stage, µs per message), largest first
    waiting_samples: int


def breakdown(by_stage: dict[str, Counter[str]], roles_by_thread: dict[int, str], times: dict[int, ThreadTimes],
              syscalls: dict[int, dict[str, int]], messages: int, clients: int) -> Breakdown:
    """Each role's CPU split by where its samples fell; per message. On one CPU the thread py-spy names is,
    but for moments, the one running: a thread in a syscall let the GIL go and is still its last holder, so
    its kernel time falls where its syscalls are, and the role's user and kernel time are split together."""
    per_message = 1 / max(1, messages)
    roles: dict[str, Role] = {}
    for tid, counted in times.items():
        role = roles.setdefault(roles_by_thread.get(tid, "other threads"), Role())
        role.threads += 1
        role.user_us += counted.user * 1e6 * per_message
        role.kernel_us += counted.system * 1e6 * per_message
        role.waits += counted.voluntary * per_message
        role.preempted += counted.involuntary * per_message
        for name, count in syscalls.get(tid, {}).items():
            role.syscalls[name] = role.syscalls.get(name, 0.0) + count * per_message
    stages = []
    waiting = 0
    for name, counted in by_stage.items():
        waiting += counted.pop(WAITING, 0)
        role = roles.setdefault(name, Role())
        role.samples = sum(counted.values())
        cpu = role.user_us + role.kernel_us
        stages += [(name, stage, cpu * count / role.samples) for stage, count in counted.items()]
    stages.sort(key=lambda item: -item[2])
    return Breakdown(messages, max(1, clients - 1), dict(sorted(roles.items())), stages, waiting)


def report(found: Breakdown, result: bench.Result) -> str:
    deliveries = found.deliveries_per_message
    lines = [f"chatroom at N={result.clients}, saturation under py-spy: {result.deliveries_per_s:,} deliveries/s, "
             f"server {bench.cell(result.server_cpu_us_per_delivery)} us CPU per delivery, {found.messages:,} "
             f"messages of {deliveries} deliveries each; generators {bench.cell(result.generator_cpu_percent)} % "
             f"CPU, CPUs busy {bench.cell(result.cpu_busy_percent, '/')} %", "",
             "per message, by kind of thread (us of CPU; syscalls and switches counted):"]
    calls = sorted({name for role in found.roles.values() for name in role.syscalls}, key=list(SYSCALLS).index)
    rows = [["thread role", "threads", "user us", "kernel us", *calls, "waits", "preempted", "GIL samples"]]
    for name, role in found.roles.items():
        rows.append([name, str(role.threads), f"{role.user_us:.2f}", f"{role.kernel_us:.2f}",
                     *(f"{role.syscalls.get(call, 0):.2f}" for call in calls), f"{role.waits:.2f}",
                     f"{role.preempted:.2f}", str(role.samples)])
    lines += bench.aligned(rows, left=1)
    total = sum(us for _, _, us in found.stages) or 1.0
    rows = [["where the CPU goes (role: stage)", "us/msg", "ns/delivery", "share"]]
    for role, stage, us in found.stages:
        if us >= 0.005 * total:
            rows.append([f"{role}: {stage}", f"{us:.2f}", f"{us * 1000 / deliveries:.1f}", f"{us / total:.1%}"])
    rows.append(["(all)", f"{total:.2f}", f"{total * 1000 / deliveries:.1f}", "100%"])
    lines += ["", *bench.aligned(rows, left=1),
              f"({found.waiting_samples} more samples named a thread that had let the GIL go: not counted)"]
    return "\n".join(lines)


def perf_works() -> bool:
    """perf with its syscall tracepoints (hardware counters are not needed; `perf stat -e instructions true`
    says whether those work, and on many virtual machines they do not)."""
    if shutil.which("perf") is None:
        return False
    return subprocess.run(["perf", "stat", "-e", SYSCALLS["syscalls"], "true"], capture_output=True).returncode == 0


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # installed in this venv, maybe not on PATH
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile chatroom's server during the saturation scenario "
                                                 "(see docs/performance.md).")
    parser.add_argument("--clients", type=int, default=100, help="N, every one of them sending (default 100)")
    parser.add_argument("--seconds", type=int, default=30, help="length of the profiled run (default 30)")
    parser.add_argument("--rate", type=int, default=100, help="py-spy's samples per second (default 100)")
    parser.add_argument("--no-history", action="store_true", help="the server with --history none")
    parser.add_argument("--chatroom-root", type=Path, default=bench.ROOT, metavar="DIR",
                        help="profile the server.py of this checkout")
    parser.add_argument("--engine", choices=("auto", "selectors", "uvloop"), default="auto",
                        help="the load generator's engine (as in bench.py)")
    parser.add_argument("--raw", type=Path, metavar="FILE",
                        help="keep py-spy's collapsed stacks (flamegraph.pl or speedscope read them)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the breakdown as JSON")
    args = parser.parse_args(argv)
    if sys.platform != "linux":
        parser.error("the profile reads /proc/PID/task (Linux only)")
    spy = py_spy()
    if spy is None:
        parser.error("py-spy is not installed: pip install -e .[bench] (or py-spy alone)")
    bench.raise_file_limit()
    pin(generator_cpus(1)[0])  # py-spy and the generators share the CPU that is not the server's
    root = args.chatroom_root.resolve()
    name = "no-history" if args.no_history else "chatroom"
    port = bench.free_port()
    flags = bench.chatroom_flags(root / "server.py", history=not args.no_history)
    target = bench.chatroom_target(name, root, port, flags)
    plan = bench.scenario_plan("saturation", target, port, args.clients, False, args.engine)
    server = bench.Server(target, port)
    raw = Path(server.scratch.name) / "py-spy.txt"
    taken: dict[str, Any] = {}
    helpers: list[subprocess.Popen[bytes]] = []
    seconds = args.seconds

    def start() -> None:
        pid = str(server.proc.pid)
        taken["roles"] = roles_of(subprocess.run([spy, "dump", "--pid", pid], capture_output=True, text=True,
                                                 timeout=60).stdout)
        taken["before"] = thread_times(server.proc.pid)
        helpers.append(subprocess.Popen(
            # Above the generators' priority on their CPU: a sampler that falls behind takes few samples.
            ["nice", "-n", "-10", spy, "record", "--pid", pid, "--threads", "--gil", "--nonblocking",
             "--rate", str(args.rate), "--duration", str(seconds), "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        if perf_works():
            helpers.append(subprocess.Popen(
                ["perf", "stat", "--per-thread", "-x", ",", "-e", ",".join(SYSCALLS.values()), "-p", pid,
                 "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        timer = threading.Timer(seconds, lambda: taken.setdefault("after", thread_times(server.proc.pid)))
        timer.daemon = True
        timer.start()

    try:
        result = bench.measure("saturation", plan, server, seconds, bench.build_parser().get_default("generators"),
                               started_hook=start)
        said = [helper.communicate(timeout=60)[1].decode(errors="replace") for helper in helpers]
        if "after" not in taken or not raw.is_file():
            print(f"profile_server.py: error: py-spy recorded nothing: {said[0].strip() if said else ''}",
                  file=sys.stderr)
            return 1
        text = raw.read_text()
        if args.raw:
            args.raw.write_text(text)
    finally:
        for helper in helpers:
            if helper.poll() is None:
                helper.kill()
                helper.wait()
        server.stop()
    before = taken["before"]
    times = {tid: counted.minus(before[tid]) for tid, counted in taken["after"].items() if tid in before}
    syscalls = perf_counts(said[1]) if len(said) > 1 else {}
    found = breakdown(samples_by_stage(text, taken["roles"]), taken["roles"], times, syscalls, result.sent,
                      plan.clients)
    print(report(found, result))
    if args.json:
        args.json.write_text(json.dumps({"result": asdict(result), "breakdown": asdict(found)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
