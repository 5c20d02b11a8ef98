"""The loop that drives the session over a real connection to a scripted server, in a Background thread as the
window runs it: events handed over with the session's view, lines sent from another thread, the goodbye,
reconnecting, the watch over a quiet server. The session's timing is injected, never patched."""

from __future__ import annotations

import socket
import threading

import pytest
from conftest import TIMEOUT
from fakeserver import FakeServer, Peer

from chatroom.client.connection import Attempt, ClientError, Connection, dialer
from chatroom.client.loop import Background, Ended, Loop, Received
from chatroom.client.session import CONNECTED, DISCONNECTED, LOST, NOT_ANSWERING, OK, PROBE, Notice, Timing, View
from chatroom.protocol import Bye, Hello, Joined, Message, Renamed, Users, Welcome

FAST = Timing(first_delay=0.01)


def logged_in(fake: FakeServer, *events: object, **welcome: object) -> tuple[Connection, Welcome, Peer]:
    """A connection that has logged in to the fake server (as amy, who wants to be kept), which then said
    `events`."""
    attempt = Attempt(dialer("127.0.0.1", fake.port, None), Hello("amy", reconnect=True))
    peer = fake.accept()
    peer.welcome(*events, **welcome)
    assert attempt.done.wait(TIMEOUT)
    connection, greeting = attempt.result
    return connection, greeting, peer


def take(background: Background, until: type = Ended) -> list:
    """What the loop handed over, up to and with the first item of type `until`, past the lines of a new day."""
    items = []
    while not isinstance(item := background.inbox.get(timeout=TIMEOUT), until) or getattr(item, "role", "") == "day":
        items.append(item)
    return [item for item in [*items, item] if getattr(item, "role", "") != "day"]


def leave(background: Background, peer: Peer) -> None:
    """Quit, and answer as a server does: the goodbye, then the end of the connection."""
    background.quit()
    while peer.line() != "/quit":
        pass
    peer.say(Bye("quit"))
    peer.hang_up()
    assert take(background)[-1] == Ended(OK)


def events(items: list) -> list:
    return [item.event for item in items if isinstance(item, Received)]


def test_the_loop_hands_over_events_with_the_view_and_ends_when_the_server_goes(fake_server):
    connection, welcome, peer = logged_in(fake_server, Joined(1, "bob"), Message(2, "bob", "hi"))
    background = Background(Loop(connection, welcome))
    background.start()
    peer.hang_up()
    items = take(background)
    background.join(TIMEOUT)
    assert [type(event) for event in events(items)] == [Welcome, Joined, Message]
    assert items[1].view == View("amy", ("amy", "bob"), frozenset(), CONNECTED, 0)
    assert Notice(f"! {LOST}", "error") in items and items[-1] == Ended(DISCONNECTED)
    assert connection.sock.fileno() == -1  # the loop's thread closed its connection


def test_lines_go_from_any_thread_and_a_quit_ends_cleanly(fake_server):
    connection, welcome, peer = logged_in(fake_server)
    background = Background(Loop(connection, welcome))
    background.start()
    try:
        threading.Thread(target=background.send, args=("hello",)).start()
        assert peer.line() == "hello"
        peer.say(Message(1, "amy", "hello"), Renamed(2, "amy", "ann"))
        items = take(background, Received)  # the welcome
        items = take(background, Received)
        assert items[-1].event.text == "hello"
        assert take(background, Received)[-1].view.me == "ann"
        leave(background, peer)
    finally:
        background.quit()
        background.join(TIMEOUT)


def test_a_lost_connection_comes_back_with_the_token_and_the_last_id_and_shows_nothing_twice(fake_server):
    connection, welcome, peer = logged_in(fake_server, Message(5, "bob", "one"), token="t1")
    loop = Loop(connection, welcome, dialer("127.0.0.1", fake_server.port, None), timing=FAST)
    background = Background(loop)
    background.start()
    try:
        peer.hang_up()
        lost = take(background, Notice)[-1]
        assert lost.text.startswith("-- connection lost; reconnecting in 1 s (attempt 1)")
        background.send("typed while away")
        again = fake_server.accept()
        assert again.welcome(Message(5, "bob", "one"), Message(6, "bob", "two"), token="t2",
                             resumed=True) == Hello("amy", reconnect=True, resume="t1", after=5)
        assert again.line() == "typed while away"
        items = take(background, Received)  # past the "reconnected" notice, the welcome back
        assert Notice("-- reconnected") in items and items[-1].event.resumed
        assert events(take(background, Received))[-1].seq == 6  # 5 was shown before the loss
        leave(background, again)
    finally:
        background.quit()
        background.join(TIMEOUT)


@pytest.mark.parametrize("failure, logged", [(ClientError("the room is full"), False),
                                              (RuntimeError("a bug in dialing"), True)])
def test_a_failing_attempt_is_followed_by_the_next_saying_why_and_a_bug_is_logged_once(fake_server, caplog,
                                                                                         failure, logged):
    connection, welcome, peer = logged_in(fake_server)
    attempts = []

    def failing(hello: Hello) -> Connection:
        attempts.append(hello)
        raise failure

    background = Background(Loop(connection, welcome, failing, timing=FAST))
    background.start()
    try:
        peer.hang_up()
        assert take(background, Notice)[-1].text.startswith("-- connection lost; reconnecting in 1 s (attempt 1)")
        why = str(failure) if isinstance(failure, ClientError) else f"RuntimeError: {failure}"
        assert take(background, Notice)[-1].text.startswith(f"-- {why}; reconnecting in 1 s (attempt 2)")
        assert "(attempt 3)" in take(background, Notice)[-1].text
        background.quit()
        assert take(background)[-1] == Ended(OK) and len(attempts) >= 2
    finally:
        background.quit()
        background.join(TIMEOUT)
    records = [record for record in caplog.records if record.name == "chatroom.client.loop"]
    assert [record.exc_info[1] for record in records] == ([failure] if logged else [])


def test_a_quit_during_a_slow_attempt_ends_at_once_and_the_late_connection_is_closed(fake_server):
    connection, welcome, peer = logged_in(fake_server)
    background = Background(Loop(connection, welcome, dialer("127.0.0.1", fake_server.port, None), timing=FAST))
    background.start()
    peer.hang_up()
    late = fake_server.accept()  # the attempt has connected and waits for the greeting
    background.quit()
    assert take(background)[-1] == Ended(OK)
    background.join(TIMEOUT)
    late.welcome()
    assert late.closed()


def test_a_quiet_server_is_probed_and_shown_as_not_answering_until_it_speaks(fake_server):
    connection, welcome, peer = logged_in(fake_server)
    background = Background(Loop(connection, welcome, timing=Timing(probe_after=0.2, answer_within=0.2)))
    background.start()
    try:
        assert peer.line() == PROBE
        assert take(background, View)[-1].state == NOT_ANSWERING
        peer.say(Users(["amy", "bob"], "amy"), Joined(1, "carol"))
        items = take(background, Received)
        assert items[-1].event.name == "carol" and items[-1].view.users == ("amy", "bob", "carol")
        assert not any(isinstance(item, Received) and isinstance(item.event, Users) for item in items)
        assert items[-1].view.state == CONNECTED
        leave(background, peer)
    finally:
        background.quit()
        background.join(TIMEOUT)


def refuse_to_dial(hello: Hello) -> Connection:
    raise ClientError("nobody there")


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="needs TCP_USER_TIMEOUT (Linux) to make the "
                    "kernel give up on unacknowledged bytes in a fraction of a second")
def test_a_server_that_vanished_with_our_bytes_unacknowledged_is_a_lost_connection(fake_server):
    """The kernel gives up on bytes the server never acknowledged with ETIMEDOUT, a TimeoutError on a socket
    with no timeout of ours: the connection is lost and the session reconnects; the loop does not die of it.
    A server that stops reading shuts its window, so our bytes stay unacknowledged, as in a partition; small
    buffers, and TCP_USER_TIMEOUT instead of the ~15 minutes of retries, make that a fraction of a second."""
    fake_server.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the peer's, from its accept
    connection, welcome, peer = logged_in(fake_server)
    connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 200)
    background = Background(Loop(connection, welcome, refuse_to_dial, timing=FAST))
    background.start()
    try:
        for _ in range(3):  # more than the peer's window, less than that and our buffer: no send waits
            background.send("x" * 2500)
        assert take(background, Notice)[-1].text.startswith("-- connection lost; reconnecting")
        background.quit()
        assert take(background)[-1] == Ended(OK)
    finally:
        background.quit()
        background.join(TIMEOUT)


def stops_reading(fake: FakeServer) -> tuple[Connection, Welcome, Peer]:
    """A connection whose server will read nothing after the hello; small buffers on both sides, so that a few
    lines fill them."""
    fake.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the peer's, from its accept
    connection, welcome, peer = logged_in(fake)
    connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return connection, welcome, peer


def test_a_server_that_stops_reading_never_holds_up_a_quit(fake_server):
    """Lines the socket cannot take wait in the connection, never in a blocking send: the loop goes on turning,
    and the quit acts as soon as it is asked (before, sendall held the loop's thread until the system gave up on
    the connection, ~15 minutes in a partition)."""
    connection, welcome, _ = stops_reading(fake_server)
    background = Background(Loop(connection, welcome, timing=Timing(quit_wait=0.1)))
    background.start()
    try:
        for _ in range(20):  # 80 kB: far more than both buffers hold
            background.send("x" * 4000)
        background.quit()
        assert take(background)[-1] == Ended(OK)
    finally:
        background.quit()
        background.join(TIMEOUT)


def test_a_server_that_takes_none_of_our_bytes_for_the_watch_s_window_is_lost(fake_server):
    """The write side is bounded in time: a server that takes no byte for the watch over a quiet server's window
    (probe after + answer within) is lost like a closed connection, and the session reconnects."""
    connection, welcome, _ = stops_reading(fake_server)
    timing = Timing(first_delay=0.01, probe_after=0.2, answer_within=0.2)
    background = Background(Loop(connection, welcome, refuse_to_dial, timing=timing))
    background.start()
    try:
        for _ in range(20):
            background.send("x" * 4000)
        assert take(background, Notice)[-1].text.startswith("-- connection lost; reconnecting")
        assert connection.sock.fileno() == -1
        background.quit()
        assert take(background)[-1] == Ended(OK)
    finally:
        background.quit()
        background.join(TIMEOUT)
