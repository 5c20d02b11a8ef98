"""Sessions that survive (issue #11): the history file, resume tokens and the grace period, exact catch-up,
/history and /search, restarts and kill -9, and the one-line errors for files that cannot be used."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import TIMEOUT, PlainClient, in_file, resumable, wait_until, wine_limit

from chatroom.protocol import Joined, Message
from chatroom.server.catchup import search_words
from chatroom.server.config import Config
from chatroom.server.history import History, HistoryError, default_path
from chatroom.server.main import listening_port
from chatroom.server.room import Room

ROOT = Path(__file__).resolve().parent.parent


# --- the file ---------------------------------------------------------------------------------------

def stored(history: History) -> None:
    """Wait until everything appended so far is committed."""
    history.flush()


def search(history: History, text: str | None, count: int = 20) -> list[Message]:
    """The messages the file finds for a /search (or, with None, a /history)."""
    answer = history.query(search_words(text) if text else None, count)
    assert answer is not None and not answer.trouble, answer
    return answer.messages


def test_events_survive_and_ids_only_grow(tmp_path):
    path = tmp_path / "room.sqlite3"
    history = History(path)
    history.append(Joined(seq=1, name="alice"))
    for seq in range(2, 5):
        history.append(Message(seq=seq, sender="alice", text=f"m{seq}"))
    history.ids_used_up_to(7)  # a private message took id 7
    stored(history)
    history.close()
    again = History(path)
    try:
        assert [getattr(event, "text", None) for event in again.loaded] == [None, "m2", "m3", "m4"]
        assert again.last_id == 7 and again.gaps == []  # a clean stop: the next id follows on
    finally:
        again.close()


def test_keep_bounds_the_file(tmp_path):
    history = History(tmp_path / "room.sqlite3", keep=10)
    try:
        for seq in range(1, 31):
            history.append(Message(seq=seq, sender="a", text=f"word{seq}"))
        stored(history)
        assert [m.seq for m in search(history, None, 100)] == list(range(21, 31))
        assert search(history, "word5") == []  # gone from the file
    finally:
        history.close()


def test_an_event_appended_while_the_writer_takes_the_queue_is_still_written(tmp_path, monkeypatch):
    history = History(tmp_path / "room.sqlite3")
    late = Message(seq=1, sender="a", text="late")
    in_append, go = threading.Event(), threading.Event()
    takers: list[str] = []

    class PausingList(list):  # the room's append paused between finding the list and putting into it
        def append(self, event):
            in_append.set()
            go.wait(TIMEOUT)
            super().append(event)

    class CountingLock:
        def __init__(self):
            self.lock = threading.Lock()

        def __enter__(self):
            takers.append(threading.current_thread().name)
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    monkeypatch.setattr(history, "_taking", CountingLock())
    history._appended = PausingList()
    try:
        appending = threading.Thread(target=history.append, args=(late,))
        appending.start()
        assert in_append.wait(TIMEOUT)
        flushing = threading.Thread(target=history.flush)
        flushing.start()
        # The writer has come to take the list, the append still in it (or, unguarded, has taken it already).
        wait_until(lambda: len(takers) == 2 or not flushing.is_alive())
        go.set()
        appending.join(TIMEOUT)
        flushing.join(TIMEOUT)
        assert not appending.is_alive() and not flushing.is_alive()
        stored(history)
        assert [m.text for m in search(history, None)] == ["late"]
    finally:
        go.set()
        history.close()


@pytest.mark.parametrize("hostile", ['"', 'NEAR(a b)', "a* OR b", "'; DROP TABLE events; --", "%_\\", "x" * 4096])
def test_search_takes_any_text_as_words(tmp_path, hostile):
    history = History(tmp_path / "room.sqlite3")
    try:
        history.append(Message(seq=1, sender="a", text="lunch at noon"))
        history.append(Message(seq=2, sender="b", text=f"about {hostile} here"))
        history.flush()
        assert [m.seq for m in search(history, "LUNCH noon")] == [1]
        assert [m.seq for m in search(history, hostile)] == [2]
    finally:
        history.close()


def test_a_damaged_or_foreign_file_is_refused_with_what_to_do(tmp_path):
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(HistoryError, match="damaged or not a chatroom history.*--history none"):
        History(damaged)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    db.close()
    with pytest.raises(HistoryError, match="belongs to another program"):
        History(foreign)


def test_a_second_server_on_the_same_file_is_refused(tmp_path):
    first = History(tmp_path / "room.sqlite3")
    try:
        with pytest.raises(HistoryError, match="in use by another chatroom server"):
            History(tmp_path / "room.sqlite3")
    finally:
        first.close()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="uses /proc as a read-only file system")
@wine_limit("Z:\\proc (the Linux root is drive Z:) is no read-only file system to Windows' calls")
def test_a_read_only_directory_is_refused():
    # /proc refuses new files even to root, who could write into a chmod 500 folder.
    with pytest.raises(HistoryError, match="cannot open the history file /proc/chatroom/room.sqlite3"):
        History(Path("/proc/chatroom/room.sqlite3"))


def test_a_full_disk_is_logged_once_and_the_room_goes_on_in_memory(tmp_path, caplog):
    history = History(tmp_path / "room.sqlite3")
    try:
        pages = history._db.execute("PRAGMA page_count").fetchone()[0]
        history._db.execute(f"PRAGMA max_page_count={pages + 2}")  # the disk is full after two pages
        for seq in range(1, 200):
            history.append(Message(seq=seq, sender="a", text="x" * 2000))
        history.close()
        errors = [r.getMessage() for r in caplog.records if "cannot write the history file" in r.getMessage()]
        assert len(errors) == 1 and "in memory only" in errors[0]
        assert not history.on_disk
    finally:
        history.close()


def add_rows(history: History, *rows: tuple[int, str, str | None]) -> None:
    """Rows written by another version of chatroom, or damaged: (id, body, searchable text)."""
    for row_id, body, text in rows:
        history._db.execute("INSERT INTO events VALUES (?, 'message', ?, ?)", (row_id, body, text))


def unreadable_row_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]


def test_rows_of_a_newer_version_or_damaged_ones_do_not_stop_a_start(tmp_path, caplog):
    """Defect 2 of issue #17: one unknown field in a stored row crashed the server at start."""
    path = tmp_path / "room.sqlite3"
    history = History(path)
    add_rows(history, (1, '{"type":"message","seq":1,"sender":"a","text":"newer","ts":1,"reactions":["+1"]}', None),
             (2, "{damaged", None), (3, '{"type":"message","seq":"three","sender":"a","text":"x"}', None),
             (4, '{"type":"poll","seq":4,"question":"lunch?"}', None),  # a type this version does not know
             (5, '{"type":"message","seq":5,"sender":"a","text":"fine","ts":1}', None))
    history.close()
    again = History(path)
    try:
        assert [(e.seq, e.text) for e in again.loaded] == [(1, "newer"), (5, "fine")]
        warnings = unreadable_row_warnings(caplog)
        assert len(warnings) == 1 and str(path) in warnings[0]
    finally:
        again.close()


def test_an_old_bad_row_found_by_a_query_is_left_out_and_the_writer_goes_on(tmp_path, caplog):
    """Defect 2 of issue #17: a bad row met by /search killed the history writer thread."""
    history = History(tmp_path / "room.sqlite3")
    try:
        add_rows(history, (1, "{damaged", "lunch"), (2, '{"type":"message","seq":2,"sender":"a"}', "lunch"))
        assert search(history, "lunch") == []
        history.append(Message(seq=3, sender="b", text="lunch at noon"))
        history.flush()
        assert [m.seq for m in search(history, "lunch")] == [3]
        assert len(unreadable_row_warnings(caplog)) == 1
    finally:
        history.close()


def test_a_writer_that_fails_unexpectedly_is_logged_and_the_room_goes_on_in_memory(tmp_path, caplog, monkeypatch):
    """Defect 2 of issue #17: the writer thread died silently; appends piled up and each query waited 5 s."""
    def gremlin(self, *args):
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr(History, "_trim", gremlin)
    history = History(tmp_path / "room.sqlite3")
    try:
        history.append(Message(seq=1, sender="a", text="one"))
        history.flush()  # answered at once: the writer has stopped taking jobs
        assert "not in use" in history.query(None, 5).trouble  # the room answers from memory, and says so
        for seq in range(2, 1000):
            history.append(Message(seq=seq, sender="a", text="more"))
        assert history._jobs.qsize() == 0 and not history.on_disk
        errors = [r for r in caplog.records if "history writer failed" in r.getMessage()]
        assert len(errors) == 1 and errors[0].exc_info and "in memory only" in errors[0].getMessage()
    finally:
        history.close()


# The README's three places (platformdirs chooses them on Linux and Windows).

@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG rules of Linux and the other Unixes")
def test_the_default_file_is_in_the_xdg_data_directory_per_port(monkeypatch):
    monkeypatch.setenv("HOME", "/h")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_path(8080) == Path("/h/.local/share/chatroom/room-8080.sqlite3")
    monkeypatch.setenv("XDG_DATA_HOME", "/x")
    assert default_path(8080) == Path("/x/chatroom/room-8080.sqlite3")


def test_on_macos_the_default_file_is_in_application_support_whatever_xdg_says(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv("XDG_DATA_HOME", "/x")
    assert default_path(80) == Path.home() / "Library" / "Application Support" / "chatroom" / "room-80.sqlite3"


@pytest.mark.skipif(sys.platform != "win32", reason="Windows' known folder for local application data")
def test_on_windows_the_default_file_is_in_local_app_data():
    assert default_path(80) == Path(os.environ["LOCALAPPDATA"]) / "chatroom" / "room-80.sqlite3"


# --- resume and grace, in-process -------------------------------------------------------------------

def test_a_lost_member_comes_back_and_gets_exactly_what_it_missed(make_server):
    server = make_server(Config(rate=0))
    bob, _ = resumable(server.port, "bob")
    alice, welcome = resumable(server.port, "alice")
    try:
        assert welcome["token"] and not welcome["resumed"]
        bob.say("before")
        last_seen = alice.expect_event("message", text="before")["seq"]
        alice.close()
        assert bob.expect_event("reconnecting")["name"] == "alice"
        bob.say("/users")
        assert bob.expect_event("users")["away"] == ["alice"]
        for text in ("one", "two", "three"):
            bob.say(text)
        bob.say("psst > alice")
        assert bob.expect_event("error", code="held")
        thief, refused = resumable(server.port, "alice")
        assert refused["code"] == "name_reserved" and "reconnecting" in refused["message"]
        thief.close()
        alice, back = resumable(server.port, "alice", resume=welcome["token"], after=last_seen)
        assert back["resumed"] and back["token"] != welcome["token"]
        replay = [alice.event() for _ in range(5)]
        assert [e.get("text") for e in replay[:4]] == ["one", "two", "three", "psst"]
        assert all(e["seq"] > last_seen for e in replay[:4])
        assert replay[4] == {**replay[4], "type": "caught_up", "count": 4, "missing": 0}
        assert bob.expect_event("join", name="alice")["back"] is True
        bob.say("live")
        assert alice.event()["text"] == "live"  # nothing twice, nothing in between
    finally:
        alice.close()
        bob.close()


def test_when_the_grace_ends_the_name_is_free_and_waiting_messages_bounce(make_server):
    server = make_server(Config(rate=0, grace=0.3))
    bob, _ = resumable(server.port, "bob")
    alice, _ = resumable(server.port, "alice")
    try:
        alice.close()
        bob.expect_event("reconnecting", name="alice")
        bob.say("are you there > alice")
        bob.expect_event("error", code="held")
        assert bob.expect_event("leave", name="alice")["reason"] == "lost"
        assert "did not come back" in bob.expect_event("error", code="not_delivered")["message"]
        carol, welcome = resumable(server.port, "alice")
        assert welcome["type"] == "welcome"
        carol.close()
    finally:
        bob.close()


def test_a_server_error_keeps_the_name_as_a_lost_connection_does(make_server, monkeypatch):
    """The user did not choose it: their client reconnects, and the name and private messages wait for it."""
    handle = Room.handle

    def failing(self, member, command):
        if command.text == "trip the bug":
            raise RuntimeError("a bug in the server")
        return handle(self, member, command)

    monkeypatch.setattr(Room, "handle", failing)
    server = make_server(Config(rate=0))
    bob, _ = resumable(server.port, "bob")
    alice, welcome = resumable(server.port, "alice")
    try:
        alice.say("trip the bug")
        assert alice.expect_event("bye")["reason"] == "error"
        bob.expect_event("reconnecting", name="alice")
        bob.say("still there? > alice")
        bob.expect_event("error", code="held")
        again, back = resumable(server.port, "alice", resume=welcome["token"], after=welcome["seq"])
        assert back["resumed"]
        assert again.expect_event("private")["text"] == "still there?"
        assert bob.expect_event("join", name="alice")["back"] is True
        again.close()
    finally:
        alice.close()
        bob.close()


def test_a_resume_takes_over_a_connection_the_server_still_thinks_alive(make_server):
    server = make_server()
    alice, welcome = resumable(server.port, "alice")
    try:
        again, back = resumable(server.port, "alice", resume=welcome["token"])
        assert back["resumed"]
        assert [json.loads(line) for line in alice.expect_closed()][-1] == {"type": "bye", "reason": "replaced"}
        again.close()
    finally:
        alice.close()


def test_history_and_search_in_both_modes(make_server, tmp_path):
    server = make_server(Config(rate=0), history=History(tmp_path / "room.sqlite3"))
    alice, _ = resumable(server.port, "alice")
    plain = PlainClient(server.port)
    try:
        plain.login("bob")
        for number in range(30):
            alice.say(f"note {number}" + (" lunch" if number % 10 == 0 else ""))
        alice.say("/history 3")
        found = alice.expect_event("found")
        assert found["query"] is None and [m["text"] for m in found["messages"]] == ["note 27", "note 28", "note 29"]
        alice.say("/search LUNCH note")
        assert [m["text"] for m in alice.expect_event("found")["messages"]] == [
            "note 0 lunch", "note 10 lunch", "note 20 lunch"]
        plain.send("/search lunch\n")
        assert plain.expect(lambda line: line.startswith('Messages with "lunch"')) == 'Messages with "lunch" (3):'
        assert plain.line().startswith("— ")  # the day of the messages found
        assert plain.line().endswith("<alice> note 0 lunch")
        plain.send("/history\n")
        assert plain.expect(lambda line: line.startswith("The last messages")) == "The last messages (20):"
    finally:
        alice.close()
        plain.close()


# --- the real process: restarts, kill -9, options -----------------------------------------------------

def start(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    first = proc.stdout.readline()
    assert "port" in first, first + proc.stderr.read()
    proc.history_line = proc.stdout.readline()  # type: ignore[attr-defined]
    return proc, listening_port(first)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    with proc:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=TIMEOUT)
    return err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_kill_9_mid_chat_loses_nothing_accepted_and_names_wait_across_the_restart(tmp_path):
    port, file = str(free_port()), str(tmp_path / "room.sqlite3")
    proc, _ = start(port, "--history", file, "--rate", "0")
    assert proc.history_line.strip() == f"history: {file}"
    alice, welcome = resumable(int(port), "alice")
    bob, _ = resumable(int(port), "bob")
    try:
        for number in range(20):
            bob.say(f"before {number}")
        seen = [alice.expect_event("message")["seq"] for _ in range(20)][-1]
        wait_until(lambda: in_file(Path(file), "SELECT count(*) FROM events WHERE type='message'") == 20
                   and in_file(Path(file), "SELECT count(*) FROM tokens") == 2)  # committed: within 0.1 s
        stop(proc, signal.SIGKILL)
        alice.expect_closed()
        bob.expect_closed()
        proc, _ = start(port, "--history", file, "--rate", "0")
        carol, refused = resumable(int(port), "alice")
        assert refused.get("code") == "name_reserved", refused  # the name waited across the restart
        carol.close()
        bob2, _ = resumable(int(port), "bob2")
        bob2.say("after the restart")
        bob2.expect_event("message", text="after the restart")  # its echo: the room has it before alice is back
        alice2, back = resumable(int(port), "alice", resume=welcome["token"], after=0)
        assert back["resumed"]
        replayed = []
        while (event := alice2.event())["type"] != "caught_up":
            replayed.append(event)
        texts = [e["text"] for e in replayed if e["type"] == "message"]
        assert texts == [f"before {n}" for n in range(20)] + ["after the restart"]
        ids = [e["seq"] for e in replayed]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[-1] > seen
        alice2.close()
        bob2.close()
    finally:
        alice.close()
        bob.close()
        if proc.poll() is None:
            stop(proc)


def test_history_none_leaves_no_file(tmp_path):
    env_dir = Path(os.environ["XDG_DATA_HOME"]) / "chatroom"
    port = str(free_port())
    proc, _ = start(port, "--history", "none")
    try:
        assert "in memory only" in proc.history_line
    finally:
        stop(proc)
    assert not (env_dir / f"room-{port}.sqlite3").exists()


def test_unusable_files_stop_the_server_with_one_line(tmp_path):
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"garbage" * 1000)
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "0", "--history", str(damaged)],
                            capture_output=True, text=True, timeout=TIMEOUT * 2, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert str(damaged) in result.stderr and "--history none" in result.stderr
    file = str(tmp_path / "room.sqlite3")
    proc, _ = start("0", "--history", file)
    try:
        second = subprocess.run([sys.executable, str(ROOT / "server.py"), "0", "--history", file],
                                capture_output=True, text=True, timeout=TIMEOUT * 2, cwd=ROOT)
        assert second.returncode == 2 and "in use by another chatroom server" in second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        stop(proc)


def test_a_restart_right_after_a_start_never_reuses_ids(tmp_path):
    path = tmp_path / "room.sqlite3"
    History(path).close()  # a first server, stopped cleanly: the next start follows on
    script = ("import os, sys, pathlib; from chatroom.server.history import History; "
              "print(History(pathlib.Path(sys.argv[1])).last_id, flush=True); os._exit(9)")
    started = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                             timeout=TIMEOUT * 2, cwd=ROOT)
    handed_out = int(started.stdout) + 5  # ids the room gave before any commit, then the process died
    second = History(path)
    try:
        assert second.last_id > handed_out
        assert second.gaps == [(1, second.last_id)]  # ids that no event has: not missed by anyone
    finally:
        second.close()
