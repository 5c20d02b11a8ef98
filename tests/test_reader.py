"""The one thread that reads the members' plain connections (reader.py): what waits for the disk waits in its
connection's own thread, an error ends one connection only, and a failing reader stops the server."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from conftest import TIMEOUT, JsonClient, expect_stop_after_failure

from chatroom.server.history import History
from chatroom.server.reader import Reader
from chatroom.server.streams import DONTWAIT

pytestmark = pytest.mark.skipif(not DONTWAIT, reason="this system reads every connection in its own thread")


def test_a_question_for_the_disk_holds_only_its_own_connection(make_server):
    gate = threading.Event()
    history = History(None)
    history.query = lambda words, count: None if gate.wait(TIMEOUT) else None  # a disk that takes its time
    server = make_server(history=history)
    alice, bob = JsonClient(server.port), JsonClient(server.port)
    try:
        alice.login("alice")
        bob.login("bob")
        alice.send("/history\nafter the question\n")  # the second line must wait for the answer
        bob.say("meanwhile")
        assert alice.expect_event("message", text="meanwhile")["sender"] == "bob"
        gate.set()
        kinds = [alice.event()["type"] for _ in range(2)]
        assert kinds == ["found", "message"]
        assert bob.expect_event("message", sender="alice")["text"] == "after the question"
    finally:
        gate.set()
        alice.close()
        bob.close()


def test_an_error_in_a_line_ends_that_connection_only(make_server, monkeypatch, caplog):
    server = make_server()
    alice, bob = JsonClient(server.port), JsonClient(server.port)
    try:
        alice.login("alice")
        bob.login("bob")
        real_handle = server.room.handle

        def failing(member, command):
            if command.text == "boom":
                raise RuntimeError("injected fault")
            return real_handle(member, command)

        monkeypatch.setattr(server.room, "handle", failing)
        alice.say("boom")
        assert [json.loads(line)["type"] for line in alice.expect_closed()][-1] == "bye"
        bob.say("still here")
        assert bob.expect_event("message", sender="bob")["text"] == "still here"
        assert any("unexpected error on the connection" in record.getMessage() and record.exc_info
                   for record in caplog.records)
    finally:
        alice.close()
        bob.close()


def test_a_failing_reader_stops_the_server_and_tells_everyone(make_server, monkeypatch, caplog):
    caplog.set_level(logging.ERROR)
    server = make_server()
    alice, bob = JsonClient(server.port), JsonClient(server.port)
    try:
        alice.login("alice")
        assert server.reader is not None

        def failing() -> None:
            raise RuntimeError("injected fault")

        monkeypatch.setattr(server.reader, "_take_arrivals", failing)
        bob.login("bob")  # his arrival wakes the reader
        expect_stop_after_failure(server, "reader", alice, caplog.records)
    finally:
        alice.close()
        bob.close()


def test_a_thread_started_after_the_reader_ended_is_not_taken_for_it():
    # The system may give a new thread the ident of one that ended at once (Linux does): taken for the reader,
    # a connection's thread would leave its effects for a reader that never hands them on.
    reader = Reader(lambda ready: None, on_crash=lambda: None)
    reader.start()
    reader.stop()
    taken = []
    for _ in range(20):
        thread = threading.Thread(target=lambda: taken.append(reader.is_current()))
        thread.start()
        thread.join(TIMEOUT)
    assert taken == [False] * 20
