"""Sending files, end to end on loopback: real servers, the real client stack (filetools.FileUser) and raw
clients playing the hostile parts. Server processes, the disk filling up, the console and the window are in
test_files_process.py and the GUI and pty tests."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import JsonClient, PlainClient, certificates, wait_until
from filetools import DataConnection, DataRelay, FileUser, sha

from chatroom import tls
from chatroom.client.transfers import shown_path
from chatroom.protocol import RECEIVED, Error, FileList, FileNote, FileShared, Offer
from chatroom.server import files as files_module
from chatroom.server import history as history_module
from chatroom.server.config import Config
from chatroom.server.files import FileLimits, FileStore, Stored
from chatroom.server.history import History

MANY = Config(max_per_address=200, rate=0, joins_per_address=0, room_joins=0, max_members=200)


@pytest.fixture
def files_server(make_server, tmp_path):
    """A server whose shared files go to tmp_path/store, with the given limits."""
    def start(config: Config = MANY, **limits: object):
        store = FileStore(FileLimits(**limits), tmp_path / "store")
        return make_server(config, files=store)
    return start


@pytest.fixture
def users(tmp_path):
    made: list[FileUser] = []

    def make(port: int, name: str, **options: object) -> FileUser:
        user = FileUser(port, name, tmp_path / name, **options)
        made.append(user)
        return user

    yield make
    for user in made:
        user.close()


def a_file(tmp_path: Path, name: str, size: int, seed: int = 1) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def offer(client: JsonClient, name: str, size: int, to: str | None = None, ref: str = "r") -> dict:
    """The server's answer to an offer: its slot, or the note that refuses it."""
    client.send(json.dumps({"type": "offer", "ref": ref, "name": name, "size": size, "to": to},
                           ensure_ascii=False) + "\n")
    while (event := client.event())["type"] not in ("slot", "file_note"):
        pass
    return event


def upload(port: int, client: JsonClient, data: bytes, name: str = "x.bin", to: str | None = None) -> int:
    """A whole upload as a raw client makes it; the file's id."""
    slot = offer(client, name, len(data), to)
    assert slot["type"] == "slot", slot
    link = DataConnection(port, "upload", slot["token"])
    assert link.answer == {"type": "ready", "offset": 0, "size": len(data)}
    link.sock.sendall(data)
    assert json.loads(link.line()) == {"type": "stored", "size": len(data)}
    link.close()
    client.send(json.dumps({"type": "done", "id": slot["id"], "sha256": sha(data)}) + "\n")
    client.expect_event("file", id=slot["id"])  # shared
    return slot["id"]


def logged_in(server, name: str, kind: type = JsonClient):
    client = kind(server.port)
    client.login(name)
    return client


# --- what a user gets ------------------------------------------------------------------------------------

def test_a_file_shared_with_the_room_is_fetched_verified_and_plain_members_are_told(files_server, users, tmp_path):
    server = files_server()
    path, data = a_file(tmp_path, "slides.pdf", 300_000)
    alice, bob = users(server.port, "alice"), users(server.port, "bob")
    nc = logged_in(server, "carol", PlainClient)
    alice.send(f"/send {path}")
    shared = bob.event(FileShared)
    assert (shared.name, shared.size, shared.sha256, shared.to) == ("slides.pdf", len(data), sha(data), None)
    assert nc.expect(lambda line: "alice shares slides.pdf (300 kB) — /get 1" in line)
    assert "files need the chatroom client" in nc.line()
    nc.send("/get 1\n")
    assert "files need the chatroom client" in nc.line()
    bob.send(f"/get {shared.id}")
    saved = bob.notice("saved to")
    assert saved == f"-- saved to {shown_path(tmp_path / 'bob' / 'slides.pdf')} (sha256 verified)"
    assert (tmp_path / "bob" / "slides.pdf").read_bytes() == data
    assert sorted(os.listdir(tmp_path / "bob")) == ["slides.pdf"]  # no .part left
    bob.send("/files")
    listed = bob.event(FileList)
    assert [f.id for f in listed.files] == [shared.id]
    nc.close()


def test_a_private_file_waits_for_its_recipient_who_fetches_or_declines_it(files_server, users, tmp_path):
    server = files_server()
    first, data = a_file(tmp_path, "for-bob.txt", 5000)
    second, _ = a_file(tmp_path, "unwanted.txt", 100)
    alice, bob = users(server.port, "alice"), users(server.port, "bob")
    carol = logged_in(server, "carol")
    alice.send(f"/send {first} bob")
    offered = bob.event(FileShared)
    assert offered.to == "bob" and alice.event(FileShared).id == offered.id
    carol.say(f"/get {offered.id}")  # not hers: as if it did not exist
    assert carol.expect_event("file_note")["code"] == "no_such_file"
    carol.say("/files")
    assert carol.expect_event("files")["files"] == []
    bob.send(f"/get {offered.id}")
    assert "(sha256 verified)" in bob.notice("saved to")
    assert alice.event(FileNote, code="received").message == "bob received for-bob.txt"

    alice.send(f"/send {second} bob")
    unwanted = bob.event(FileShared, name="unwanted.txt")
    bob.send(f"/decline {unwanted.id}")
    assert alice.event(FileNote, code="declined").message == "bob declined unwanted.txt"
    bob.send(f"/get {unwanted.id}")
    assert bob.event(FileNote, id=unwanted.id, code="no_such_file")
    assert server.files.find(unwanted.id) is None
    assert not (tmp_path / "bob" / "unwanted.txt").exists()
    carol.close()


def test_zero_byte_files_and_an_existing_name_never_overwritten(files_server, users, tmp_path):
    server = files_server()
    empty, _ = a_file(tmp_path, "empty.txt", 0)
    alice, bob = users(server.port, "alice"), users(server.port, "bob")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "empty.txt").write_text("mine, keep it")
    alice.send(f"/send {empty}")
    shared = bob.event(FileShared)
    bob.send(f"/get {shared.id}")
    assert bob.notice("saved to").endswith("empty (1).txt (sha256 verified)")
    assert (tmp_path / "bob" / "empty.txt").read_text() == "mine, keep it"
    assert (tmp_path / "bob" / "empty (1).txt").read_bytes() == b""


@pytest.mark.parametrize("offered, saved", [
    ("../../x", "x"), ("..\\x", "x"), ("CON", "_CON"), ("photo\u202egpj.exe", "photogpj.exe"),
    ("nul\x00byte.txt", "nulbyte.txt"), ("é" * 1000 + ".txt", "é" * 98 + ".txt"),
])
def test_hostile_names_are_saved_as_one_safe_name_in_the_downloads_folder(files_server, users, tmp_path, offered,
                                                                          saved):
    server = files_server()
    alice = logged_in(server, "alice")
    bob = users(server.port, "bob")
    file_id = upload(server.port, alice, b"payload", name=offered)
    bob.send(f"/get {file_id}")
    bob.notice("saved to")
    assert os.listdir(tmp_path / "bob") == [saved]
    assert (tmp_path / "bob" / saved).read_bytes() == b"payload"
    assert os.name == "nt" or not os.access(tmp_path / "bob" / saved, os.X_OK)
    alice.close()


# --- limits, before any byte ---------------------------------------------------------------------------

def test_every_limit_is_refused_on_the_offer_before_a_byte_moves(files_server, tmp_path):
    server = files_server(max_file=1000, user_quota=1500, total=2000, uploads=2, downloads=1)
    alice, bob = logged_in(server, "alice"), logged_in(server, "bob")
    too_big = offer(alice, "big.iso", 1001)
    assert (too_big["code"], too_big["limit"], too_big["ref"]) == ("file_too_large", 1000, "r")
    assert "at most 1.0 kB" in too_big["message"]
    kept = upload(server.port, alice, b"k" * 900)
    over = offer(alice, "more.bin", 700)
    assert over["code"] == "quota_exceeded" and over["until"] == pytest.approx(server.files.find(kept).expires)
    assert "space frees up in 24 h" in over["message"]
    first, second = offer(alice, "a", 100, ref="1"), offer(alice, "b", 100, ref="2")
    assert first["type"] == second["type"] == "slot"
    third = offer(alice, "c", 100, ref="3")
    assert third["code"] == "too_many_transfers"
    room = offer(bob, "d", 1000)
    assert room["code"] == "quota_exceeded" and "the room's shared files" in room["message"]
    bob.say(f"/get {kept}")
    assert bob.expect_event("slot")["direction"] == "download"
    bob.say(f"/get {kept}")
    assert bob.expect_event("file_note")["code"] == "too_many_transfers"
    # Refused offers left nothing: the store holds the kept file and the two uploads' empty part files.
    assert sorted(os.path.getsize(p) for p in (tmp_path / "store").iterdir()) == [0, 0, 900]
    alice.close()
    bob.close()


def test_sharing_off_says_so(make_server):
    server = make_server(files=FileStore(FileLimits(enabled=False)))
    alice = logged_in(server, "alice")
    assert offer(alice, "a.txt", 1)["code"] == "files_off"
    alice.say("/get 1")
    assert alice.expect_event("file_note")["code"] == "files_off"
    alice.close()


# --- tokens and sizes that lie -----------------------------------------------------------------------

def test_wrong_reused_and_other_users_tokens_are_refused(files_server):
    server = files_server()
    alice, bob = logged_in(server, "alice"), logged_in(server, "bob")
    wrong = DataConnection(server.port, "download", "not-a-token")
    assert wrong.answer["code"] == "bad_token" and wrong.closed()
    slot = offer(alice, "a.bin", 10)
    as_download = DataConnection(server.port, "download", slot["token"])  # an upload's token, for a download
    assert as_download.answer["code"] == "bad_token"
    file_id = upload(server.port, alice, b"0123456789")
    bob.say(f"/get {file_id}")
    token = bob.expect_event("slot")["token"]
    fetched = DataConnection(server.port, "download", token)
    assert fetched.read_all(10) == b"0123456789"
    fetched.sock.sendall(RECEIVED + b"\n")
    wait_until(lambda: not server.files._downloads)
    again = DataConnection(server.port, "download", token)  # spent once every byte went out
    assert again.answer["code"] == "bad_token" and again.closed()
    reused = DataConnection(server.port, "upload", slot["token"])  # the first upload was never finished...
    assert reused.answer == {"type": "ready", "offset": 0, "size": 10}
    reused.close()
    done_upload = DataConnection(server.port, "upload", server_upload_token(server, alice, b"xy"))
    assert done_upload.answer["code"] == "bad_token"  # ...but a finished one's token is spent
    for link in (wrong, as_download, fetched, again, done_upload):
        link.close()
    alice.close()
    bob.close()


def server_upload_token(server, client: JsonClient, data: bytes) -> str:
    slot = offer(client, "t.bin", len(data), ref="t")
    link = DataConnection(server.port, "upload", slot["token"])
    link.sock.sendall(data)
    link.line()
    link.close()
    client.send(json.dumps({"type": "done", "id": slot["id"], "sha256": sha(data)}) + "\n")
    client.expect_event("file", id=slot["id"])
    return slot["token"]


def test_sizes_that_lie_are_refused(files_server):
    server = files_server()
    alice = logged_in(server, "alice")
    slot = offer(alice, "short.bin", 10)
    link = DataConnection(server.port, "upload", slot["token"])
    link.sock.sendall(b"x" * 20)  # more than offered
    assert json.loads(link.line())["type"] == "stored"
    note = alice.expect_event("file_note", id=slot["id"])
    assert note["code"] == "size_mismatch"
    assert server.files.find(slot["id"]) is None
    link.close()

    slot = offer(alice, "long.bin", 20, ref="2")
    link = DataConnection(server.port, "upload", slot["token"])
    link.sock.sendall(b"y" * 10)  # fewer, then done
    link.close()
    wait_until(lambda: server.files.find(slot["id"]).received == 10)
    alice.send(json.dumps({"type": "done", "id": slot["id"], "sha256": sha(b"y" * 10)}) + "\n")
    assert alice.expect_event("file_note", id=slot["id"])["code"] == "incomplete"

    alice.send(json.dumps({"type": "offer", "ref": "3", "name": "n", "size": -5}) + "\n")
    assert alice.expect_event("error")["code"] == "bad_message"
    alice.close()


def test_a_flipped_byte_on_the_server_is_caught_by_the_receiver_who_keeps_nothing(files_server, users, tmp_path):
    server = files_server()
    alice = logged_in(server, "alice")
    bob = users(server.port, "bob")
    file_id = upload(server.port, alice, b"a" * 100_000)
    blob = next(p for p in (tmp_path / "store").iterdir())
    damaged = bytearray(blob.read_bytes())
    damaged[5000] ^= 1
    blob.write_bytes(damaged)
    bob.send(f"/get {file_id}")
    assert "did not arrive intact" in bob.notice("SHA-256")
    wait_until(lambda: not any((tmp_path / "bob").iterdir()))
    alice.close()


def test_an_upload_that_does_not_match_its_hash_is_not_shared(files_server):
    server = files_server()
    alice, bob = logged_in(server, "alice"), logged_in(server, "bob")
    slot = offer(alice, "a.bin", 4)
    link = DataConnection(server.port, "upload", slot["token"])
    link.sock.sendall(b"abcd")
    link.line()
    link.close()
    alice.send(json.dumps({"type": "done", "id": slot["id"], "sha256": sha(b"abce")}) + "\n")
    assert alice.expect_event("file_note")["code"] == "hash_mismatch"
    assert server.files.find(slot["id"]) is None
    bob.say("/files")
    assert bob.expect_event("files")["files"] == []
    alice.close()
    bob.close()


# --- lost connections, stalls, cancel, expiry ----------------------------------------------------------

def test_connections_cut_at_random_offsets_both_ways_resume_and_nothing_is_sent_twice(files_server, users,
                                                                                      tmp_path):
    server = files_server()
    size = 3_000_000
    path, data = a_file(tmp_path, "big.bin", size, seed=7)
    chance = random.Random(19)
    cuts = sorted(chance.randrange(1, size) for _ in range(3))
    relay = DataRelay(server.port, cuts=[cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], None]
                      + [chance.randrange(1, size // 3) for _ in range(3)] + [None])
    try:
        alice, bob = users(relay.port, "alice"), users(relay.port, "bob")
        alice.send(f"/send {path}")
        shared = bob.event(FileShared, timeout=20)
        assert shared.sha256 == sha(data)
        assert relay.connections["upload"] == 4 and relay.payload["upload"] == size
        assert server.files.find(shared.id).total_in == size  # every byte reached the server once
        bob.send(f"/get {shared.id}")
        bob.notice("saved to", timeout=20)
        assert (tmp_path / "bob" / "big.bin").read_bytes() == data
        wait_until(lambda: relay.payload["download"] >= size)  # counted once passed on: maybe after the client
        assert relay.connections["download"] == 4 and relay.payload["download"] == size
    finally:
        relay.close()


def test_a_stalled_downloader_is_closed_and_resumes(files_server):
    server = files_server(stall=0.5)
    alice, bob = logged_in(server, "alice"), logged_in(server, "bob")
    data = random.Random(3).randbytes(24_000_000)  # more than loopback's socket buffers hold
    file_id = upload(server.port, alice, data)
    bob.say(f"/get {file_id}")
    token = bob.expect_event("slot")["token"]
    stalled = DataConnection(server.port, "download", token, receive_buffer=4096)
    wait_until(lambda: server.files.find(file_id).lease is None and not _leased(server), timeout=10)
    got = stalled.read_all(len(data))  # what the buffers held, then the end the server made
    assert 0 < len(got) < len(data)
    rest = DataConnection(server.port, "download", token, offset=len(got))
    assert rest.answer == {"type": "ready", "offset": len(got), "size": len(data)}
    assert got + rest.read_all(len(data) - len(got)) == data
    for client in (stalled, rest, alice, bob):
        client.close()


def _leased(server) -> bool:
    return any(download.lease is not None for download in server.files._downloads.values())


def test_cancel_either_way_stops_the_transfer_and_leaves_nothing(files_server, users, tmp_path):
    server = files_server()
    relay = DataRelay(server.port, rate=400_000)
    try:
        path, data = a_file(tmp_path, "slow.bin", 2_000_000)
        alice, bob = users(relay.port, "alice"), users(relay.port, "bob")
        alice.send(f"/send {path}")
        rows = alice.progress(lambda rows: rows and rows[0].done > 100_000)
        alice.send(f"/cancel {rows[0].id}")
        assert "you cancelled slow.bin" in alice.event(FileNote, code="cancelled").message
        alice.progress(lambda rows: rows == ())
        wait_until(lambda: not any((tmp_path / "store").iterdir()))

        uploader = logged_in(server, "carol")
        file_id = upload(server.port, uploader, data)
        bob.send(f"/get {file_id}")
        bob.progress(lambda rows: rows and rows[0].done > 100_000)
        bob.send(f"/cancel {file_id}")
        bob.progress(lambda rows: rows == ())
        assert bob.event(FileNote, code="cancelled")
        wait_until(lambda: not any((tmp_path / "bob").iterdir()))  # the .part is gone
        wait_until(lambda: not _leased(server))
        uploader.close()
    finally:
        relay.close()


def test_files_expire_and_the_sender_of_an_unfetched_private_file_is_told(files_server, users, tmp_path):
    server = files_server(keep=0.4, idle=0.4)
    alice = logged_in(server, "alice")
    bob = users(server.port, "bob")
    public = upload(server.port, alice, b"soon gone")
    private = upload(server.port, alice, b"for bob", name="for-bob.txt", to="bob")
    assert alice.expect_event("file_note", code="expired")["message"] == \
        "bob did not fetch for-bob.txt in time; the server deleted it"
    wait_until(lambda: server.files.find(public) is None and server.files.find(private) is None)
    bob.send(f"/get {public}")
    assert bob.event(FileNote, code="no_such_file")
    slot = offer(alice, "never.bin", 5, ref="n")
    note = alice.expect_event("file_note", id=slot["id"])
    assert note["code"] == "expired" and "no byte came" in note["message"]
    assert not any((tmp_path / "store").iterdir())
    alice.close()


def test_fifty_receivers_of_one_file(files_server):
    server = files_server(downloads=1)
    alice = logged_in(server, "alice")
    data = random.Random(5).randbytes(1_000_000)
    file_id = upload(server.port, alice, data)
    received: list[bool] = []

    def receive(number: int) -> None:
        client = logged_in(server, f"r{number}")
        client.say(f"/get {file_id}")
        link = DataConnection(server.port, "download", client.expect_event("slot")["token"])
        received.append(link.read_all(len(data)) == data)
        link.close()
        client.close()

    threads = [threading.Thread(target=receive, args=(number,)) for number in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert received == [True] * 50
    alice.close()


def test_tls_rooms_carry_files_over_tls(make_server, tmp_path):
    certificates(tmp_path)
    server = make_server(MANY, tls_context=tls.server_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
                         files=FileStore(FileLimits(), tmp_path / "store"))
    context = tls.client_context(str(tmp_path / "ca.pem"))
    path, data = a_file(tmp_path, "secret.bin", 400_000)
    alice = FileUser(server.port, "alice", tmp_path / "alice", context=context)
    bob = FileUser(server.port, "bob", tmp_path / "bob", context=context)
    try:
        alice.send(f"/send {path}")
        shared = bob.event(FileShared)
        bob.send(f"/get {shared.id}")
        bob.notice("saved to")
        assert (tmp_path / "bob" / "secret.bin").read_bytes() == data
        assert bob.transfers._endpoint.context is context  # its data connections were TLS, as the chat's
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b'{"type": "download", "token": "x"}\n')  # a data connection in clear text is refused
            assert b"this server uses TLS" in sock.recv(200)
    finally:
        alice.close()
        bob.close()


def test_a_send_of_what_is_no_file_says_why_locally(files_server, users, tmp_path):
    server = files_server()
    alice = users(server.port, "alice")
    alice.send(f"/send {tmp_path / 'missing.txt'}")
    assert "cannot send" in alice.notice("missing.txt")
    alice.send(f"/send {tmp_path}")
    assert "is a folder" in alice.notice("folder")
    alice.send("/send")
    assert alice.event(Error).message == "PATH is missing: usage is /send PATH [NAME]"


def test_files_go_whole_where_the_system_has_no_sendfile(files_server, users, tmp_path, monkeypatch):
    def without(self: socket.socket, file: object, offset: int = 0, count: int | None = None) -> int:
        raise socket._GiveupOnSendfile("no os.sendfile here")  # as on Windows: socket.sendfile falls back to send

    monkeypatch.setattr(socket.socket, "_sendfile_use_sendfile", without)
    server = files_server()
    path, data = a_file(tmp_path, "big.bin", 3_000_000)
    alice, bob = users(server.port, "alice"), users(server.port, "bob")
    alice.send(f"/send {path}")
    shared = bob.event(FileShared)
    assert shared.sha256 == sha(data)
    bob.send(f"/get {shared.id}")
    bob.notice("saved to")
    assert (tmp_path / "bob" / "big.bin").read_bytes() == data


def test_a_history_file_slow_to_answer_at_the_start_is_asked_again_and_no_kept_file_is_taken_for_junk(
        tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "QUERY_WAIT", 0.2)
    data = b"kept" * 1000
    store = FileStore(FileLimits(), tmp_path / "store", History(tmp_path / "room.sqlite3"))
    kept = Stored(id=7, blob="ab" * 16, owner="alice", name="a.txt", size=len(data),
                  sha256=hashlib.sha256(data).hexdigest(), kept=True, expires=time.time() + 3600)
    (tmp_path / "store" / kept.blob).write_bytes(data)
    store._save(kept)
    store.close()
    store.history.close()

    history = History(tmp_path / "room.sqlite3")
    busy, release = threading.Event(), threading.Event()
    # The writer busy for longer than one question waits (an index being built, a long trim).
    asker = threading.Thread(target=history.call, args=(lambda db: (busy.set(), release.wait(2)),))
    asker.start()
    busy.wait(5)
    threading.Timer(0.5, release.set).start()
    store = FileStore(FileLimits(), tmp_path / "store", history)
    try:
        assert list(store._files) == [7] and (tmp_path / "store" / kept.blob).exists()
        assert store._next_id == 8
    finally:
        asker.join(5)
        store.close()
        history.close()


def test_a_history_file_that_never_answers_at_the_start_turns_files_off_and_deletes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "QUERY_WAIT", 0.05)
    monkeypatch.setattr(files_module, "LOAD_TRIES", 2)
    (tmp_path / "store").mkdir()
    blob = tmp_path / "store" / ("cd" * 16)
    blob.write_bytes(b"somebody's file")
    history = History(tmp_path / "room.sqlite3")
    release = threading.Event()
    asker = threading.Thread(target=history.call, args=(lambda db: release.wait(5),))
    asker.start()
    try:
        store = FileStore(FileLimits(), tmp_path / "store", history)
        release.set()
        assert blob.exists()
        [note] = store.request("alice", True, Offer(ref="a", name="x", size=1), lambda name: name)
        assert note.code == "files_off" and "did not say which files it keeps" in note.message
        store.close()
    finally:
        release.set()
        asker.join(5)
        history.close()
