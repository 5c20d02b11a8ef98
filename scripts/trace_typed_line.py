"""How often one typed line crosses chatroom's modules: python scripts/trace_typed_line.py [--runs N] [--pairs].

Runs the real console client in this process (POSIX: its output goes to a pseudo-terminal, so it draws as it
does for a person) against a real server on 127.0.0.1, types "hi bob", then Enter, and counts, in the client's
main thread, every call whose caller and callee are in different chatroom modules: from the front end taking
the Enter key from the key reader to the end of the screen's showing of the echo "<carol> hi bob". The server
runs in other threads, which the profiler does not see.

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
        self.counting = False
        self.armed = False  # the Enter key is on its way: start at the front end's next look at the keys
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
            self.pairs[caller.removeprefix("chatroom."), callee.removeprefix("chatroom.")] += 1
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


def measure() -> collections.Counter[tuple[str, str]]:
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
    drained = threading.Thread(target=_drain, args=(master,), daemon=True)
    drained.start()
    counter = Counter()
    enter = threading.Event()

    def keys(stopped: Callable[[], bool]) -> Iterator[str]:
        yield from TYPED
        enter.wait(TIMEOUT)
        counter.armed = True
        yield "\r"
        counter.finished.wait(TIMEOUT)
        yield "\x04"  # Ctrl+D on the empty line: quit

    @contextlib.contextmanager
    def session() -> Iterator[Callable[[Callable[[], bool]], Iterator[str]]]:
        yield keys

    stdout, original_session = sys.stdout, terminal.session
    sys.stdout = open(slave, "w", encoding="utf-8", closefd=False)  # closed below
    terminal.session = session
    # The typed line is on the screen once the editor holds it: then Enter.
    threading.Thread(target=_when_typed, args=(enter,), daemon=True).start()
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
    return counter.pairs


_typed = threading.Event()


def _drain(master: int) -> None:
    """Read the terminal's side, as a terminal would; note when the typed line is drawn."""
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        seen = (seen + data)[-4096:]
        if f"> {TYPED}".encode() in seen:
            _typed.set()


def _when_typed(enter: threading.Event) -> None:
    _typed.wait(TIMEOUT)
    enter.set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measure this many times (in new processes: 5)")
    parser.add_argument("--pairs", action="store_true", help="also list the crossings by pair (of the last run)")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)  # one run, in this process
    args = parser.parse_args()
    if args.once:
        pairs = measure()
        print(sum(pairs.values()))
        for (caller, callee), count in pairs.most_common():
            print(f"{count}\t{caller} -> {callee}")
        return 0
    import subprocess
    totals = []
    for _ in range(args.runs):
        result = subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True,
                                timeout=TIMEOUT * 3, check=True)
        first, *rest = result.stdout.splitlines()
        totals.append(int(first))
    print(f"module crossings from Enter to the echo shown: median {statistics.median(totals):g} "
          f"(runs: {', '.join(map(str, totals))})")
    if args.pairs:
        print("\n".join(rest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
