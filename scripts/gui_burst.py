"""How the window client copes with a burst: python scripts/gui_burst.py [--messages N] [--json FILE].

Starts a server on 127.0.0.1 in a process of its own (flood limit off), opens the window client on the current
display (on a machine without one: xvfb-run python scripts/gui_burst.py), and has a raw-socket client send N messages
at once. Measures, per message, the time from its arrival (the loop's thread handing it over) to its display
(the window's Text holding it, after Tk's redraw), and the Tk event loop's longest stall (the longest gap
between ticks of a 5 ms after() timer beyond those 5 ms).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import time
import tkinter as tk
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatroom.client.loop import Received  # noqa: E402
from chatroom.client.main import parse_args  # noqa: E402
from chatroom.client.gui.client import WindowClient  # noqa: E402
from chatroom.protocol import Hello  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

TICK_MS = 5
TIMEOUT = 60.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_server() -> tuple[subprocess.Popen, int]:
    """The server in a process of its own, so it does not share this one's interpreter lock."""
    server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "127.0.0.1", "0", "--rate", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    found = re.search(r"port (\d+)", server.stdout.readline())
    assert found, "the server did not start"
    return server, int(found.group(1))


def measure(root: tk.Tk, count: int) -> dict[str, float]:
    server, port = start_server()
    try:
        return _measure(root, port, count)
    finally:
        server.terminate()
        server.communicate(timeout=TIMEOUT)


def _measure(root: tk.Tk, port: int, count: int) -> dict[str, float]:
    client = WindowClient(root, parse_args(["--gui", "127.0.0.1", str(port), "watcher"]))
    deadline = time.monotonic() + TIMEOUT
    while client.chat is None and time.monotonic() < deadline:
        root.update()
        time.sleep(0.005)
    chat = client.chat
    assert chat is not None, "the window did not connect"
    latencies: list[float] = []
    show = chat.show

    def timed_show(batch: list) -> None:
        show(batch)
        root.update_idletasks()  # the redraw: now the messages are on the screen
        now = time.perf_counter()
        latencies.extend(now - item.arrived for item in batch
                         if isinstance(item, Received) and getattr(item.event, "sender", "") == "burst")

    chat.show = timed_show  # type: ignore[method-assign]
    ticks: list[float] = []
    timer = ""

    def tick() -> None:
        nonlocal timer
        ticks.append(time.perf_counter())
        timer = root.after(TICK_MS, tick)

    sender = socket.create_connection(("127.0.0.1", port))
    sender.recv(4096)  # the banner
    sender.sendall(Hello("burst").encode())
    tick()
    while "burst joined" not in chat.text.get("end-3l", "end"):
        root.update()
        time.sleep(0.005)
    ticks.clear()
    started = time.perf_counter()
    sender.sendall(b"".join(f"message {number:04d} of a burst, long enough to look like chat\n".encode()
                            for number in range(count)))
    while len(latencies) < count and time.monotonic() < deadline:
        root.update()
    elapsed = time.perf_counter() - started
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    sender.close()
    root.after_cancel(timer)
    chat.close()
    while not client.closed and time.monotonic() < deadline:
        root.update()
    client.finish()
    return {
        "messages": len(latencies),
        "seconds_to_show_all": round(elapsed, 3),
        "arrival_to_display_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "arrival_to_display_ms_p99": round(percentile(latencies, 0.99) * 1000, 1),
        "arrival_to_display_ms_max": round(max(latencies) * 1000, 1),
        "longest_stall_ms": round(max(0.0, max(gaps) - TICK_MS / 1000) * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="how many messages in the burst (1000)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    try:
        root = tk.Tk(className="chatroom")
    except tk.TclError as exc:
        parser.exit(2, f"gui_burst.py: error: cannot open a window ({exc}); without a desktop run it under "
                       "xvfb-run\n")
    figures = measure(root, args.messages)
    for name, value in figures.items():
        print(f"{name:28} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["messages"] == args.messages else 1


if __name__ == "__main__":
    raise SystemExit(main())
