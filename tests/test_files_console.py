"""Sending files from the console client for real: `python client.py` in a pseudo-terminal, a transfer's
progress in the status line while the typed line stays as it is, and a download saved and verified."""

from __future__ import annotations

import random
import re

import pytest
from filetools import DataRelay

from chatroom.server.config import Config
from chatroom.server.files import FileLimits, FileStore

pytest.importorskip("termios", reason="needs a pseudo-terminal (POSIX)")
from client_process import PtyClient  # noqa: E402 (after the skip: POSIX only)

PROGRESS = re.compile(r"^([↑↓]) big\.bin (\d+) % [\d.]+ [kM]B/s \d+:\d\d left \· alice \· connected \· 1 user")


def status_line(client: PtyClient) -> str:
    return client.screen.display[client.screen.cursor.y - 1].rstrip()


def percent(client: PtyClient, arrow: str) -> int:
    match = PROGRESS.match(status_line(client))
    return int(match.group(2)) if match and match.group(1) == arrow else -1


def test_a_transfer_shows_in_the_status_line_and_the_typed_line_stays(make_server, tmp_path):
    server = make_server(Config(rate=0), files=FileStore(FileLimits(), tmp_path / "store"))
    relay = DataRelay(server.port, rate=1_000_000)
    data = random.Random(2).randbytes(1_500_000)
    (tmp_path / "big.bin").write_bytes(data)
    alice = PtyClient(relay.port, "alice", "--downloads", str(tmp_path / "saved"))
    try:
        alice.shows("Welcome, alice")
        alice.type(f"/send {tmp_path / 'big'}\t")  # Tab completes the path
        alice.until(lambda c: c.input_line().endswith(f"{tmp_path.name}/big.bin"))
        alice.type("\r")
        # An upload's bytes go into the socket's buffers at once, ahead of the slow link: it shows, then waits.
        alice.until(lambda c: status_line(c).startswith("↑ big.bin "))
        alice.shows("alice shares big.bin (1.5 MB) — /get 1")
        alice.until(lambda c: status_line(c).startswith("alice · connected · 1 user"))
        alice.type("/get 1\r")
        alice.until(lambda c: 0 <= percent(c, "↓") < 70)
        first = percent(alice, "↓")
        alice.type("half typed")
        alice.until(lambda c: percent(c, "↓") > first and c.input_line() == "> half typed")
        alice.shows("(sha256 verified)")
        assert "-- saved to" in alice.text()
        assert (tmp_path / "saved" / "big.bin").read_bytes() == data
        alice.until(lambda c: status_line(c).startswith("alice · connected") and c.input_line() == "> half typed")
        alice.type("\x15/quit\r")  # Ctrl+U, then leave
        assert alice.finish()[0] == 0
    finally:
        alice.close()
        relay.close()
