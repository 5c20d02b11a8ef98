"""The UI-free client core: login with its retry callbacks, the session's state and pacing, the loop.

A fake connection scripts the server for login and the session; the loop runs over a socket pair whose far
end plays the server.
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import threading
from collections import deque

import pytest
from conftest import TIMEOUT, wait_until

from chatroom.client import core
from chatroom.protocol import (
    Bye, CaughtUp, Error, Hello, Joined, Left, Message, Ping, Private, Renamed, Shutdown, Users, Welcome,
)


class FakeConnection:
    """Answers login with scripted events (an exception class is raised) and records what is sent."""

    def __init__(self, *answers: object) -> None:
        self.answers = deque(answers)
        self.hellos: list[Hello] = []
        self.hello: Hello | None = None
        self.lines: list[str] = []
        self.said = ""

    def next_event(self, timeout: float) -> object:
        answer = self.answers.popleft() if self.answers else None
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer
        return answer

    def send_hello(self, hello: Hello) -> None:
        self.hellos.append(hello)
        self.hello = hello

    def send_line(self, text: str) -> None:
        self.lines.append(text)


def refuse(reason: str) -> str:
    raise AssertionError(f"not expected to ask: {reason!r}")


def test_login_asks_again_for_a_refused_name_with_the_reason():
    connection = FakeConnection(Error("name_taken", "the name 'bob' is taken\x1b[2J"), Welcome("bob2", ["bob", "bob2"]))
    asked = []
    welcome = core.login(connection, Hello("bob"), lambda reason: asked.append(reason) or "bob2", refuse)
    assert welcome.name == "bob2"
    assert asked == ["Sorry, the name 'bob' is taken[2J. "]
    assert [hello.name for hello in connection.hellos] == ["bob2"]


@pytest.mark.parametrize("code, reason", [("password_required", ""), ("wrong_password", "Wrong password. ")])
def test_login_asks_for_the_password_and_keeps_the_name(code, reason):
    connection = FakeConnection(Error(code, "..."), Welcome("amy", ["amy"]))
    asked = []
    core.login(connection, Hello("amy"), refuse, lambda why: asked.append(why) or "sesame")
    assert asked == [reason]
    assert connection.hellos == [Hello("amy", password="sesame")]


def test_a_callback_that_raises_ends_the_login():
    def give_up(reason: str) -> str:
        raise core.ClientError(f"gave up: {reason}")

    with pytest.raises(core.ClientError, match="gave up: Sorry, taken. "):
        core.login(FakeConnection(Error("name_lookalike", "taken")), Hello("x"), give_up, give_up)


@pytest.mark.parametrize("answers, said, sentence", [
    ((Error("full", "the room is full"),), "", "the room is full"),
    ((), "", "the server closed the connection during login"),
    ((None,), "go away", "the server closed the connection during login: go away"),
    ((Shutdown(),), "", "the server closed the connection during login"),
    ((TimeoutError,), "", "the server did not answer the login"),
])
def test_login_failures_are_one_sentence(answers, said, sentence):
    connection = FakeConnection(*answers)
    connection.said = said
    with pytest.raises(core.ClientError) as info:
        core.login(connection, Hello("x"), refuse, refuse)
    assert str(info.value) == sentence and info.value.status == core.FAILED


def test_the_session_follows_the_user_list_and_my_renames():
    connection = FakeConnection()
    session = core.Session(connection, Welcome("amy", ["amy", "bob"]))
    before = session.users
    for event in [Joined(1, "cy"), Renamed(2, "amy", "ann"), Left(3, "bob", "quit"), Renamed(4, "cy", "dee")]:
        session.receive(event)
    assert session.users == ["ann", "dee"] and session.me == "ann"
    assert before == ["amy", "bob"]  # replaced, not changed under a reader in another thread
    session.receive(Users(["ann", "dee", "eve"], "ann"))
    assert session.users == ["ann", "dee", "eve"]
    session.receive(Ping())
    assert connection.lines == ["/pong"]


@pytest.mark.parametrize("events, quit, status, lost", [
    ([], False, core.DISCONNECTED, True),
    ([], True, core.OK, False),
    ([Bye("quit")], False, core.OK, False),
    ([Bye("slow")], False, core.DISCONNECTED, False),
    ([Shutdown()], False, core.DISCONNECTED, False),
])
def test_how_the_session_ended(events, quit, status, lost):
    session = core.Session(FakeConnection(), Welcome("amy", ["amy"]))
    for event in events:
        session.receive(event)
    if quit:
        session.quit()
        session.quit()
        assert list(session.outgoing) == ["/quit"]
    assert (session.status(), session.lost) == (status, lost)


def test_a_paste_is_paced_and_the_user_told_how_many_lines_wait():
    connection = FakeConnection()
    session = core.Session(connection, Welcome("amy", ["amy"], rate=2.0, burst=3))
    for number in range(5):
        session.send(f"line {number}")
    notice = session.send_typed()
    assert connection.lines == ["line 0", "line 1"]  # one token kept back for jitter
    assert notice == "-- 3 lines wait to be sent (2 per second is the server's limit)"
    assert 0 < session.send_due() <= 1 / (2.0 * core.PACE_MARGIN)


def test_no_pacing_without_a_server_limit():
    connection = FakeConnection()
    session = core.Session(connection, Welcome("amy", ["amy"]))
    for number in range(50):
        session.send(str(number))
    assert session.send_typed() is None and len(connection.lines) == 50


class Peer:
    """The server's end of a socket pair, speaking JSON lines."""

    def __init__(self) -> None:
        self.sock, client = socket.socketpair()
        self.sock.settimeout(TIMEOUT)
        self.connection = core.Connection(client)
        self._buffer = b""

    def say(self, *events: object) -> None:
        self.sock.sendall(b"".join(json.dumps(event.to_dict()).encode() + b"\n" for event in events))

    def line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "the client closed the connection"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


@pytest.fixture
def peer():
    peer = Peer()
    yield peer
    peer.sock.close()
    peer.connection.sock.close()


def test_the_loop_hands_over_events_and_ends_when_the_server_goes(peer):
    session = core.Session(peer.connection, Welcome("amy", ["amy"]))
    wake_read, wake_write = socket.socketpair()
    seen = []
    peer.say(Joined(1, "bob"), Message(2, "bob", "hi"))
    peer.sock.shutdown(socket.SHUT_WR)
    with wake_read, wake_write:
        status = session.run(wake_read, lambda: None, seen.append)
    assert [type(event) for event in seen] == [Joined, Message] and session.users == ["amy", "bob"]
    assert status == core.DISCONNECTED and session.lost


def test_a_background_session_sends_from_any_thread_and_quits_cleanly(peer):
    background = core.Background(core.Session(peer.connection, Welcome("amy", ["amy"])))
    background.start()
    try:
        background.send("hello")
        assert peer.line() == "hello"
        peer.say(Joined(1, "bob"), Renamed(2, "amy", "ann"))
        first, second = background.inbox.get(timeout=TIMEOUT), background.inbox.get(timeout=TIMEOUT)
        assert (first.event, first.users, first.me) == (Joined(1, "bob", ts=first.event.ts), ("amy", "bob"), "amy")
        assert (second.users, second.me) == (("ann", "bob"), "ann")
        background.quit()
        assert peer.line() == "/quit"
        peer.say(Bye("quit"))
        peer.sock.close()
        assert isinstance(background.inbox.get(timeout=TIMEOUT).event, Bye)
        assert background.inbox.get(timeout=TIMEOUT) == core.Ended(core.OK, lost=False)
    finally:
        background.quit()
        background.join(TIMEOUT)
    assert peer.connection.sock.fileno() == -1  # the session's thread closed its connection


# --- reconnecting ---------------------------------------------------------------------------------------------

class Dialer:
    """Plays a server that is dialled again: each call takes the next script (events to say, then whether to
    hang up; or an exception to raise) and records the hello."""

    def __init__(self, *scripts: object) -> None:
        self.scripts = deque(scripts)
        self.hellos: list[Hello] = []
        self.peers: list[Peer] = []

    def __call__(self, hello: Hello) -> core.Connection:
        self.hellos.append(hello)
        script = self.scripts.popleft()
        if isinstance(script, BaseException):
            raise script
        peer = Peer()
        self.peers.append(peer)
        events, hang_up = script
        peer.say(*events)
        if hang_up:
            peer.sock.shutdown(socket.SHUT_WR)
        peer.connection.send_hello(hello)
        return peer.connection

    def close(self) -> None:
        for peer in self.peers:
            peer.sock.close()
            peer.connection.close()


def run_session(peer: Peer, dial: Dialer, on_link=lambda session, link: None, **hooks) -> tuple[int, list, list]:
    session = core.Session(peer.connection, Welcome("amy", ["amy"], token="t1"), dial, first_delay=0.001, **hooks)
    events, links = [], []

    def link(change: core.Link) -> None:
        links.append(change)
        on_link(session, change)

    wake_read, wake_write = socket.socketpair()
    with wake_read, wake_write:
        status = session.run(wake_read, lambda: None, events.append, link)
    return status, events, links


def test_a_lost_connection_comes_back_with_the_token_and_the_last_id_and_shows_nothing_twice(peer):
    peer.say(Message(5, "bob", "one"), Message(6, "bob", "two"))
    peer.sock.shutdown(socket.SHUT_WR)
    back = Welcome("amy", ["amy", "bob"], token="t2", resumed=True)
    dial = Dialer(([back, Message(6, "bob", "two"), Message(8, "bob", "three"), Private(7, "bob", "amy", "psst"),
                    CaughtUp(2), Bye("quit")], True))
    typed_while_away = lambda session, link: link.state == "lost" and session.send("queued")  # noqa: E731
    try:
        status, events, links = run_session(peer, dial, typed_while_away)
        assert dial.hellos == [Hello("amy", reconnect=True, resume="t1", after=6)]
        assert [dial.peers[0].line() for _ in range(2)][1] == "queued"  # after the hello
    finally:
        dial.close()
    assert [(getattr(event, "seq", 0) or type(event).__name__) for event in events] == [
        5, 6, "Welcome", 8, 7, "CaughtUp", "Bye"]
    assert [(link.state, link.attempt) for link in links] == [("lost", 1), ("back", 0)]
    assert links[0].text.startswith("connection lost; reconnecting in 1 s (attempt 1)")
    assert status == core.OK


def test_attempts_back_off_from_1_to_30_seconds_with_jitter_and_a_quit_ends_the_wait(peer):
    peer.sock.shutdown(socket.SHUT_WR)
    times = itertools.count(0, 100)  # every look at the clock finds the next attempt due
    dial = Dialer(*[core.ClientError("nothing is listening")] * 6)
    quit_at_7 = lambda session, link: link.attempt == 7 and session.quit()  # noqa: E731
    session_hooks = {"clock": lambda: next(times), "jitter": lambda: 1.0}
    status, _, links = run_session(peer, dial, quit_at_7, **session_hooks)
    assert [round(link.delay / 0.001) for link in links] == [1, 2, 4, 8, 16, 32, 64]
    assert status == core.OK and len(dial.hellos) == 6
    assert core.MOST_DELAY == 30 and core.FIRST_DELAY == 1  # what the user is promised


def test_the_delay_is_at_most_30_seconds_and_jitter_halves_it_at_most():
    session = core.Session(FakeConnection(), Welcome("amy", ["amy"]), jitter=lambda: 0.0, clock=lambda: 0.0)
    delays = [session._schedule().delay for _ in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 15, 15, 15]


def test_a_name_taken_meanwhile_is_asked_for_and_the_next_line_is_the_new_name(peer):
    peer.sock.shutdown(socket.SHUT_WR)
    dial = Dialer(([Error("name_taken", 'the username "amy" is taken')], False),
                  ([Welcome("amy2", ["bob", "amy2"], token="t3"), Bye("quit")], True))
    answer = lambda session, link: link.state == "name" and session.send("amy2")  # noqa: E731
    try:
        status, events, links = run_session(peer, dial, answer)
    finally:
        dial.close()
    assert links[1] == core.Link("name", 'Sorry, the username "amy" is taken. Type another username and press Enter.')
    assert [hello.name for hello in dial.hellos] == ["amy", "amy2"]
    assert dial.hellos[1].resume == "t1" and links[-1].state == "back" and status == core.OK


def test_a_changed_password_ends_the_session(peer):
    peer.sock.shutdown(socket.SHUT_WR)
    dial = Dialer(([Error("wrong_password", "wrong password")], False))
    session = core.Session(peer.connection, Welcome("amy", ["amy"]), dial, first_delay=0.001)
    links = []
    wake_read, wake_write = socket.socketpair()
    try:
        with wake_read, wake_write:
            status = session.run(wake_read, lambda: None, lambda event: None, links.append)
    finally:
        dial.close()
    assert links[-1].state == "failed" and "password" in links[-1].text
    assert status == core.DISCONNECTED and not session.lost


@pytest.mark.parametrize("last, reconnects", [
    (None, True), (Shutdown(), True), (Bye("slow"), True), (Bye("timeout"), True),
    (Bye("quit"), False), (Bye("replaced"), False),
])
def test_what_ends_the_session_and_what_reconnects(peer, last, reconnects):
    if last is not None:
        peer.say(last)
    peer.sock.shutdown(socket.SHUT_WR)
    status, _, links = run_session(peer, Dialer(), lambda session, link: session.quit())
    assert bool(links) == reconnects
    assert status == (core.OK if reconnects or last == Bye("quit") else core.DISCONNECTED)


def test_without_dial_a_lost_connection_ends_the_session_as_before(peer):
    peer.sock.shutdown(socket.SHUT_WR)
    session = core.Session(peer.connection, Welcome("amy", ["amy"]))
    wake_read, wake_write = socket.socketpair()
    with wake_read, wake_write:
        assert session.run(wake_read, lambda: None, lambda event: None) == core.DISCONNECTED
    assert session.lost


def test_a_login_asked_again_still_asks_to_be_kept():
    connection = FakeConnection(Error("name_reserved", "amy is reconnecting"), Welcome("amy2", ["amy2"]))
    core.login(connection, Hello("amy", reconnect=True), lambda reason: "amy2", refuse)
    assert connection.hellos == [Hello("amy2", reconnect=True)]


def test_a_quit_during_a_slow_attempt_ends_at_once_and_the_late_connection_is_closed(peer):
    peer.sock.shutdown(socket.SHUT_WR)
    dialing, answer = threading.Event(), threading.Event()
    late = Peer()

    def slow_dial(hello: Hello) -> core.Connection:
        dialing.set()
        answer.wait(TIMEOUT)
        late.say(Welcome("amy", ["amy"]))
        late.connection.send_hello(hello)
        return late.connection

    session = core.Session(peer.connection, Welcome("amy", ["amy"], token="t1"), slow_dial, first_delay=0.001)
    wake_read, wake_write = socket.socketpair()
    ended = threading.Event()
    with wake_read, wake_write:
        threading.Thread(target=lambda: dialing.wait(TIMEOUT) and wake_write.send(b"q"), daemon=True).start()
        status = session.run(wake_read, lambda: wake_read.recv(1) and session.quit(), lambda event: None,
                             lambda link: ended.set() if link.state != "lost" else None)
    assert status == core.OK and not ended.is_set()  # quit while the attempt was still under way
    answer.set()
    try:
        wait_until(lambda: late.connection.sock.fileno() == -1)  # the session had ended: the attempt closed it
    finally:
        late.sock.close()

def test_a_quiet_server_is_probed_and_shown_as_not_answering_until_it_speaks(peer, monkeypatch):
    from chatroom.client import liveness
    monkeypatch.setattr(liveness, "PROBE_AFTER", 0.2)
    monkeypatch.setattr(liveness, "ANSWER_WITHIN", 0.2)
    session = core.Session(peer.connection, Welcome("amy", ["amy"]))
    states: queue.SimpleQueue[str] = queue.SimpleQueue()
    session.on_state = states.put
    background = core.Background(session)
    background.start()
    try:
        assert peer.line() == liveness.PROBE
        assert states.get(timeout=TIMEOUT) == liveness.NOT_ANSWERING
        peer.say(Users(["amy", "bob"], "amy"), Joined(1, "carol"))
        assert states.get(timeout=TIMEOUT) == liveness.CONNECTED
        shown = background.inbox.get(timeout=TIMEOUT)
        # the probe's answer is not shown
        assert isinstance(shown.event, Joined) and shown.users == ("amy", "bob", "carol")
    finally:
        background.quit()
        background.join(TIMEOUT)


def test_the_reconnecting_state_is_not_overwritten_by_the_watch(peer):
    session = core.Session(peer.connection, Welcome("amy", ["amy"]))
    session.set_state("reconnecting")
    session._watch(session.liveness.heard + 1)
    assert session.state == "reconnecting"


def test_the_core_knows_who_is_reconnecting():
    from chatroom.protocol import Left, Reconnecting
    session = core.Session(FakeConnection(), Welcome("amy", ["amy", "bob", "cy"], away=["cy"]))
    assert session.away == {"cy"}
    session.receive(Reconnecting(3, "bob"))
    session.receive(Joined(4, "cy", back=True))
    assert session.away == {"bob"} and session.users == ["amy", "bob", "cy"]
    session.receive(Left(5, "bob", "lost"))
    assert session.away == set() and session.users == ["amy", "cy"]
