"""How often one typed line crosses chatroom's modules: python scripts/trace_typed_line.py [--runs N] [--pairs]
[--calls] [--from-first-key].

Runs the real console client in this process (POSIX: its output goes to a pseudo-terminal, so it draws as it
does for a person) against a real server on 127.0.0.1, types "hi bob" a key at a time (each once the last is
drawn), then Enter, and counts, in the client's main thread, every call whose caller and callee are in
different chatroom modules: from the front end taking the Enter key (or, with --from-first-key, the "h") from
the key reader to the end of the screen's showing of the echo "<carol> hi bob". The server runs in other
threads, which the profiler does not see.

The client is found as chatroom.client.main (or chatroom.client.app before #17), so the same script measures
an older checkout: PYTHONPATH=/path/to/checkout python scripts/trace_typed_line.py
"""

from __future__ import annotations

import argparse
import collections
import re
import contextlib
import importlib
import os
import statistics
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: that checkout wins

TYPED = "hi bob"
ECHO = f"<carol> {TYPED}"
TIMEOUT = 10.0
_STYLE = re.compile(r"\x1b\[[0-9;]*m")


class Counter:
    """A profile function for one thread: counts the module crossings between the start and the end marks."""

    def __init__(self) -> None:
        self.pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        self.calls: list[str] = []  # each crossing in order: caller module.function -> callee module.function
        self.counting = False
        self.armed = False  # the first key counted is on its way: start at the front end's next look at the keys
        self.finished = threading.Event()
        self._echo_frame: FrameType | None = None

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event == "return" and frame is self._echo_frame:
            self.counting, self._echo_frame = False, None
            self.finished.set()
            return
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        if self.armed and frame.f_code.co_name == "drain" and callee.endswith("console.keys"):
            self.armed, self.counting = False, True
        if not self.counting:
            return
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if callee.startswith("chatroom") and caller.startswith("chatroom") and callee != caller:
            assert frame.f_back is not None
            self.pairs[caller.removeprefix("chatroom."), callee.removeprefix("chatroom.")] += 1
            self.calls.append(f"{caller.removeprefix('chatroom.')}.{frame.f_back.f_code.co_name} -> "
                              f"{callee.removeprefix('chatroom.')}.{frame.f_code.co_name}")
        if (frame.f_code.co_name == "show" and callee.endswith("console.screen") and self._echo_frame is None
                and ECHO in _STYLE.sub("", str(frame.f_locals.get("text", "")))):
            self._echo_frame = frame


def client_main() -> Callable[[list[str]], int]:
    for name in ("chatroom.client.main", "chatroom.client.app"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.main  # type: ignore[no-any-return]
    raise SystemExit("trace_typed_line.py: error: no console client found (chatroom.client.main or .app)")


def measure(from_first_key: bool) -> Counter:
    import fcntl
    import termios

    from chatroom.client.console import terminal
    from chatroom.server.config import Config
    from chatroom.server.handler import ChatServer

    server = ChatServer(("127.0.0.1", 0), Config())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    shown = Terminal(master)
    drained = threading.Thread(target=shown.read, daemon=True)
    drained.start()
    counter = Counter()

    def keys(stopped: Callable[[], bool]) -> Iterator[str]:
        shown.wait_for("Welcome, carol")
        for typed, pressed in enumerate(TYPED + "\r", start=1):
            counter.armed |= pressed == "\r" or from_first_key
            yield pressed
            if pressed != "\r":
                shown.wait_for(f"> {TYPED[:typed]}")  # drawn: a person types slower than that
        counter.finished.wait(TIMEOUT)
        yield "\x04"  # Ctrl+D on the empty line: quit

    @contextlib.contextmanager
    def session() -> Iterator[Callable[[Callable[[], bool]], Iterator[str]]]:
        yield keys

    stdout, original_session = sys.stdout, terminal.session
    sys.stdout = open(slave, "w", encoding="utf-8", closefd=False)  # closed below
    terminal.session = session
    try:
        sys.setprofile(counter)
        try:
            client_main()(["127.0.0.1", str(server.port), "carol", "--no-reconnect"])
        finally:
            sys.setprofile(None)
    finally:
        sys.stdout.close()
        sys.stdout, terminal.session = stdout, original_session
        server.shutdown()
        server.stop(grace=1.0)
        serving.join(TIMEOUT)
        os.close(slave)
        drained.join(TIMEOUT)
        os.close(master)
    if not counter.finished.is_set():
        raise SystemExit("trace_typed_line.py: error: the echo was never shown")
    return counter


class Terminal:
    """The pseudo-terminal's other side, read as a terminal would, to wait until something is drawn."""

    def __init__(self, master: int) -> None:
        self.master = master
        self._seen = b""
        self._looked = 0  # what was seen before the last wait is not looked at again
        self._changed = threading.Condition()

    def read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._changed:
                self._seen += data
                self._changed.notify_all()

    def wait_for(self, text: str) -> None:
        wanted = text.encode()
        with self._changed:
            if not self._changed.wait_for(lambda: wanted in self._seen[self._looked:], TIMEOUT):
                raise SystemExit(f"trace_typed_line.py: error: {text!r} was never drawn")
            self._looked = self._seen.index(wanted, self._looked) + len(wanted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measure this many times (in new processes: 5)")
    parser.add_argument("--pairs", action="store_true", help="also list the crossings by pair (of the last run)")
    parser.add_argument("--calls", action="store_true", help="also list each crossing in order (of the last run)")
    parser.add_argument("--from-first-key", action="store_true",
                        help='count from the "h", not from Enter: the whole of "hi bob⏎"')
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)  # one run, in this process
    args = parser.parse_args()
    if args.once:
        counter = measure(args.from_first_key)
        print(sum(counter.pairs.values()))
        for (caller, callee), count in counter.pairs.most_common():
            print(f"{count}\t{caller} -> {callee}")
        print("\n".join(f"@{call}" for call in counter.calls))
        return 0
    import subprocess
    totals = []
    for _ in range(args.runs):
        once = [sys.executable, __file__, "--once", *(["--from-first-key"] if args.from_first_key else [])]
        result = subprocess.run(once, capture_output=True, text=True, timeout=TIMEOUT * 3, check=True)
        first, *rest = result.stdout.splitlines()
        totals.append(int(first))
    start = '"h"' if args.from_first_key else "Enter"
    print(f"module crossings from {start} to the echo shown: median {statistics.median(totals):g} "
          f"(runs: {', '.join(map(str, totals))})")
    if args.pairs:
        print("\n".join(line for line in rest if not line.startswith("@")))
    if args.calls:
        print("\n".join(line[1:] for line in rest if line.startswith("@")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
