"""Sending files with the server as a process of its own: killed and started again mid-upload, its options on
the command line, and its disk filling up (a small tmpfs, mounted when the tests run as root)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient, wait_until
from filetools import DataConnection, DataRelay, FileUser, sha
from server_process import ROOT, ServerProcess

from chatroom.protocol import FileShared

def test_the_server_killed_mid_upload_and_started_again_resumes_it_and_nothing_is_sent_twice(tmp_path):
    size = 2_000_000
    data = random.Random(11).randbytes(size)
    (tmp_path / "big.bin").write_bytes(data)
    store = tmp_path / "store"
    server = ServerProcess(tmp_path / "room.sqlite3", "--files", str(store),
                           log=tmp_path / "server.log")
    relay = DataRelay(server.port, rate=1_000_000)  # 2 s for the file: time to kill the server mid-way
    alice = FileUser(relay.port, "alice", tmp_path / "alice")
    try:
        alice.send(f"/send {tmp_path / 'big.bin'}")
        alice.progress(lambda rows: rows and rows[0].done > size // 4)
        server.kill()
        held = sum(path.stat().st_size for path in store.glob("*.part"))
        assert 0 < held < size
        server.start()  # on the same port, with its history file: the upload waits for its bytes
        shared = alice.event(FileShared, timeout=TIMEOUT * 3)
        assert shared.sha256 == sha(data)
        kept = [path for path in store.iterdir()]
        assert len(kept) == 1 and kept[0].read_bytes() == data
        # The server logs from a thread of its own, so the line may come a moment after the share.
        wait_until(lambda: "bytes received for it" in (tmp_path / "server.log").read_text())
        log = (tmp_path / "server.log").read_text()
        resumed = int(re.search(r"upload \d+ resumes at byte (\d+) of", log).group(1))
        after = int(re.search(r"is shared; (\d+) bytes received for it", log).group(1))
        assert resumed == held and resumed + after == size  # every byte sent once to the server that kept it

        # A download too: the restarted server forgot its token; the client asks again and goes on.
        alice.send(f"/get {shared.id}")
        alice.progress(lambda rows: rows and not rows[0].upload and rows[0].done > size // 4)
        server.kill()
        server.start()
        alice.notice("saved to", timeout=TIMEOUT * 3)
        assert (tmp_path / "alice" / "big.bin").read_bytes() == data
        # The relay counts a chunk once it passed it on, so the client may be done a moment before the count.
        wait_until(lambda: relay.payload["download"] >= size)
        assert relay.payload["download"] == size  # nothing came twice
    finally:
        alice.close()
        relay.close()
        server.stop()


def test_the_file_options_on_the_command_line(tmp_path):
    server = ServerProcess(None, "--files", str(tmp_path / "store"), "--files-keep", "90m",
                           "--max-file-size", "1k", "--files-quota", "1.5k")
    off = ServerProcess(None, "--files", "none")
    try:
        assert server.started[2] == f"files: {tmp_path / 'store'}, kept 1 h 30 min, at most 1 KiB each\n"
        assert off.started[2] == "files: off (--files none)\n"
        alice = JsonClient(server.port)
        alice.login("alice")
        alice.send(json.dumps({"type": "offer", "ref": "a", "name": "big", "size": 1025}) + "\n")
        refused = alice.expect_event("file_note")
        assert (refused["code"], refused["limit"]) == ("file_too_large", 1024)
        alice.close()
        bob = JsonClient(off.port)
        bob.login("bob")
        bob.send(json.dumps({"type": "offer", "ref": "a", "name": "x", "size": 1}) + "\n")
        assert bob.expect_event("file_note")["code"] == "files_off"
        bob.close()
        usage = subprocess.run([sys.executable, str(ROOT / "server.py"), "--max-file-size", "lots"],
                               capture_output=True, text=True, timeout=TIMEOUT * 2)
        assert usage.returncode == 2 and "'lots' is not a size" in usage.stderr
    finally:
        server.stop()
        off.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that really fills up (root only; skipped elsewhere)."""
    where = tmp_path / "disk"
    where.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_disk_refuses_the_offer_or_ends_the_upload_and_the_room_goes_on(small_disk, tmp_path):
    server = ServerProcess(None, "--files", str(small_disk))
    alice, bob = JsonClient(server.port), JsonClient(server.port)
    try:
        alice.login("alice")
        bob.login("bob")
        alice.send(json.dumps({"type": "offer", "ref": "a", "name": "huge.bin", "size": 1_900_000}) + "\n")
        assert alice.expect_event("file_note")["code"] == "disk_full"  # would leave less than 10 % free
        alice.send(json.dumps({"type": "offer", "ref": "b", "name": "big.bin", "size": 1_500_000}) + "\n")
        slot = alice.expect_event("slot")
        (small_disk / "filler").write_bytes(b"\0" * 1_000_000)  # someone else fills the disk meanwhile
        link = DataConnection(server.port, "upload", slot["token"])
        try:
            link.sock.sendall(b"x" * 1_500_000)
        except OSError:
            pass  # the server stopped reading
        note = alice.expect_event("file_note", id=slot["id"])
        assert note["code"] == "disk_full" and "the server's disk is full" in note["message"]
        wait_until(lambda: os.listdir(small_disk) == ["filler"])  # no part file left
        bob.say("still here?")
        assert alice.expect_event("message", sender="bob")["text"] == "still here?"
        link.close()
    finally:
        alice.close()
        bob.close()
        server.stop()
