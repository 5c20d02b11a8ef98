"""The status line's facts and words, and the liveness watch, with a fake clock."""

from __future__ import annotations

from chatroom.client.liveness import ANSWER_WITHIN, CONNECTED, NOT_ANSWERING, PROBE_AFTER, Liveness
from chatroom.client.status import Status, security
from chatroom.protocol import Message


def test_a_silent_server_is_probed_once_then_not_answering_until_a_byte_comes():
    watch = Liveness(now=100.0)
    assert not watch.probe_due(100.0 + PROBE_AFTER - 0.1) and watch.state(100.0 + PROBE_AFTER) == CONNECTED
    probed = 100.0 + PROBE_AFTER
    assert watch.probe_due(probed) and not watch.probe_due(probed + 1)
    assert watch.state(probed + ANSWER_WITHIN - 0.1) == CONNECTED
    assert watch.state(probed + ANSWER_WITHIN) == NOT_ANSWERING
    watch.heard_from(probed + 30)
    assert watch.state(probed + 30) == CONNECTED and not watch.probe_due(probed + 31)


def test_public_lines_are_pending_until_their_echo():
    status = Status("127.0.0.1:9100", security(tls=False, insecure=False), users=2)
    for line in ["hello", "/me waves", '/bc "x"', "/users", "@bob psst", "hi > bob", "/nick x"]:
        status.sent(line)
    status.sent("/users\nline two", verbatim=True)
    assert status.pending == 4
    assert status.text() == "connected · 4 messages pending · 2 users · 127.0.0.1:9100 · clear text"
    status.echoed(Message(1, "BOB", "hello"), me="amy")
    status.echoed(Message(1, "amy", "old", earlier=True), me="amy")
    assert status.pending == 4
    status.echoed(Message(2, "Amy", "hello"), me="amy")
    assert status.pending == 3


def test_the_status_says_how_the_connection_is_protected_and_what_is_unread():
    assert security(tls=True, insecure=False) == "TLS"
    assert security(tls=True, insecure=True) == "TLS, certificate not checked"
    status = Status("[::1]:9100", "TLS", state=NOT_ANSWERING, users=1, mentions=1)
    assert status.text() == "server not answering · 1 unread mention · 1 user · [::1]:9100 · TLS"
