"""The demo launchers' --check: a server and N clients on loopback exchange one message, then all stop. With
--cluster URL and a --port per server, one room on several servers: the clients are spread over them.

Used by demo.sh, cluster-demo.sh and demo.ps1 so they check the same thing; exit status 0 when it worked.
"""

from __future__ import annotations

import argparse
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 15.0
MESSAGE = "hello from the demo check"


class Process:
    """A child process whose output lines are collected by a thread, so waiting never blocks."""

    def __init__(self, *args: str) -> None:
        # Its own process group on Windows, so CTRL_BREAK_EVENT reaches only this process.
        group = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     encoding="utf-8", creationflags=group)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SystemExit(f"demo check failed: no {text!r} within {TIMEOUT:.0f}s; "
                                 f"got: {self.seen[-5:]}") from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, action="append", required=True, help="a server's port (one per server)")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--cluster", metavar="URL", help="the servers share one room through this Redis")
    args = parser.parse_args()
    processes: list[Process] = []
    try:
        # All the clients come from 127.0.0.1: lift the server's per-address caps (10) as demo.sh does; and like
        # it, keep no history (no room-PORT.sqlite3 left behind for a random port).
        servers = [Process("server.py", str(port), "--max-per-ip", str(args.clients + 10), "--joins-per-ip", "0",
                           "--history", "none", *(["--cluster", args.cluster] if args.cluster else []))
                   for port in args.port]
        processes += servers
        for server in servers:
            server.wait_for("listening")
        clients = [Process("client.py", "127.0.0.1", str(args.port[(number - 1) % len(args.port)]), f"demo{number}")
                   for number in range(1, args.clients + 1)]  # started at once, each one's Python in parallel
        processes += clients
        for number, client in enumerate(clients, 1):
            client.wait_for(f"Welcome, demo{number}!")
        clients[0].proc.stdin.write(MESSAGE + "\n")
        clients[0].proc.stdin.flush()
        for client in clients:
            client.wait_for(f"<demo1> {MESSAGE}")
        for client in clients:
            client.proc.stdin.close()  # end of input: the client quits
            if client.proc.wait(TIMEOUT) != 0:
                raise SystemExit(f"demo check failed: a client exited with {client.proc.returncode}")
        for server in servers:
            server.proc.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGINT))
        for server in servers:
            if server.proc.wait(TIMEOUT) != 0:
                raise SystemExit(f"demo check failed: a server exited with {server.proc.returncode}")
        through = (f"{len(servers)} servers sharing one room through {args.cluster} (ports "
                   f"{', '.join(map(str, args.port))})"
                   if len(servers) > 1 else f"a server on port {args.port[0]}")
        print(f"demo check passed: {args.clients} clients exchanged a message through {through}")
        return 0
    finally:
        for process in processes:
            process.stop()


if __name__ == "__main__":
    sys.exit(main())
