"""Run one command of the Windows set-up under Wine for scripts/test-windows.sh: its output through a pipe, a time
limit, and the command started again when Wine's own server crashes under it.

Wine 8's wineserver now and then fails an assertion in its socket code (`server/sock.c: sock_poll_event:
Assertion 'sock->obj.ops == &sock_ops' failed`; twice so far, each in a run of the whole suite). It is a bug of
Wine's server, not of the Windows programs it runs; every process of the run then waits for the dead server until
the time limit, and the run fails after it. This stops the run as soon as the server says it crashed, and starts it
again.

    python scripts/wine_run.py [--attempts N] [--timeout SECONDS] -- wine python.exe ...

Exit status: the command's; 124 when the time ran out (as timeout(1)); 75 when Wine's server crashed on every
attempt; 130 on Ctrl+C (the run stopped).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

TIMED_OUT = 124
INTERRUPTED = 130
WINE_CRASHED = 75  # EX_TEMPFAIL: Wine failed, not what it ran
# What wineserver prints as it aborts on a failed assertion, e.g. "wineserver64: server/sock.c:1331: sock_poll_event:
# Assertion `sock->obj.ops == &sock_ops' failed."
SERVER_CRASH = re.compile(rb"wineserver\w*: [^\n]*Assertion [^\n]* failed")
# Wine's server inherits the run's output and outlives the command by a few seconds; after a crash, nothing of the
# run that is left is waited for longer than this.
DRAIN_AFTER_KILL = 2.0
CHUNK = 65536


def log(message: str) -> None:
    print(f"wine_run: {message}", file=sys.stderr, flush=True)


def run_once(command: list[str], timeout: float) -> int | None:
    """The command's exit status, TIMED_OUT, or None when Wine's server crashed under it. Its output is copied to
    ours as it comes (a pipe: Wine 8's python.exe dies at start when its output is a regular file)."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    assert process.stdout is not None
    source = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    recent = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                log(f"{command[0]} still running after {timeout:g} s: stopped")
                stop(process)
                return TIMED_OUT
            if not select.select([source], [], [], min(left, 1.0))[0]:
                continue
            chunk = pass_on(source)
            if not chunk:
                return process.wait()
            recent = (recent + chunk)[-4 * CHUNK:]
            if crash := SERVER_CRASH.search(recent):
                log(f"Wine's server crashed ({crash.group().decode(errors='replace')}): a bug of Wine 8, not of "
                    "what it ran; the run is stopped")
                stop(process)
                end_the_dead_servers_processes(os.environ.get("WINEPREFIX"))
                return None
    except KeyboardInterrupt:  # the run has a session of its own: Ctrl+C reaches only us
        log("interrupted: the run is stopped")
        stop(process)
        return INTERRUPTED
    finally:
        process.stdout.close()


def pass_on(source: int) -> bytes:
    """One read of the command's output, copied to ours at once; b"" at its end."""
    chunk = os.read(source, CHUNK)
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return chunk


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ends every process the command started (its session), and passes on what is left of its output."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(DRAIN_AFTER_KILL * 5)
    assert process.stdout is not None
    source, ends = process.stdout.fileno(), time.monotonic() + DRAIN_AFTER_KILL
    while (left := ends - time.monotonic()) > 0 and select.select([source], [], [], left)[0]:
        if not pass_on(source):
            break


def end_the_dead_servers_processes(prefix: str | None) -> None:
    """The Wine processes left waiting for the crashed server: not in the run's session (the services Wine starts,
    winedevice.exe, have their own), they would wait for it forever. Wine's loader (its executable is named
    wine...) with this prefix in its environment; the next start brings a new server and new services."""
    if prefix is None:
        return
    mark = b"\0WINEPREFIX=" + os.fsencode(prefix) + b"\0"
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "exe").rsplit("/", 1)[-1].startswith("wine") and \
                    mark in b"\0" + (proc / "environ").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:  # gone already, or not ours to read
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=2,
                        help="how many times to start the command while Wine's server crashes (default 2)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds each attempt may take before it is stopped (default 900)")
    parser.add_argument("command", nargs="+", help="the command, after --")
    args = parser.parse_args(argv)
    if args.attempts < 1 or args.timeout <= 0:
        parser.error("--attempts must be 1 or more and --timeout more than 0")
    for attempt in range(1, args.attempts + 1):
        status = run_once(args.command, args.timeout)
        if status is not None:
            return status
        if attempt < args.attempts:
            log(f"starting it again (attempt {attempt + 1} of {args.attempts})")
    log(f"Wine's server crashed on every one of {args.attempts} attempts")
    return WINE_CRASHED


if __name__ == "__main__":
    sys.exit(main())
