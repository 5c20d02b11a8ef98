"""The client's connection against a scripted server: connect and login, each failure one sentence, and an
Attempt (connect and login in a thread) that always ends and never leaves a connection behind."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest
from conftest import TIMEOUT

from chatroom.client.connection import (
    UNSENT_LIMIT, Attempt, ClientError, Connection, Refused, connect, dialer, login,
)
from chatroom.client.session import FAILED
from chatroom.protocol import BANNER, Error, Hello, Shutdown, Welcome


def refuse(reason: str) -> str:
    raise AssertionError(f"not expected to ask: {reason!r}")


def test_login_asks_again_for_a_refused_name_with_the_reason(fake_server):
    answer = fake_server.serve(BANNER, Error("name_taken", "the name 'bob' is taken\x1b[2J"),
                               Welcome("bob2", ["bob", "bob2"]))
    connection = connect("127.0.0.1", fake_server.port, Hello("bob"))
    asked = []
    try:
        welcome = login(connection, Hello("bob"), lambda reason: asked.append(reason) or "bob2", refuse)
    finally:
        connection.close()
    assert welcome.name == "bob2" and asked == ["Sorry, the name 'bob' is taken[2J. "]
    peer = answer()
    assert [peer.hello() for _ in range(2)] == [Hello("bob"), Hello("bob2")]


@pytest.mark.parametrize("code, reason", [("password_required", ""), ("wrong_password", "Wrong password. ")])
def test_login_asks_for_the_password_and_keeps_the_name_and_the_wish_to_be_kept(fake_server, code, reason):
    answer = fake_server.serve(BANNER, Error(code, "..."), Welcome("amy", ["amy"]))
    hello = Hello("amy", reconnect=True)
    connection = connect("127.0.0.1", fake_server.port, hello)
    asked = []
    try:
        login(connection, hello, refuse, lambda why: asked.append(why) or "sesame")
    finally:
        connection.close()
    assert asked == [reason]
    peer = answer()
    assert [peer.hello() for _ in range(2)][1] == Hello("amy", password="sesame", reconnect=True)
    assert connection.hello.password == "sesame"  # what a reconnect says again


@pytest.mark.parametrize("answers, sentence", [
    ((Error("room_full", "the room is full"),), "the room is full"),
    ((), "the server closed the connection during login"),
    (("! go away",), "the server closed the connection during login: go away"),
    ((Shutdown(),), "the server closed the connection during login"),
])
def test_login_failures_are_one_sentence(fake_server, answers, sentence):
    answer = fake_server.serve(BANNER, *answers)
    connection = connect("127.0.0.1", fake_server.port, Hello("x"))
    answer().hang_up()
    with pytest.raises(ClientError) as info:
        login(connection, Hello("x"), refuse, refuse)
    connection.close()
    assert str(info.value) == sentence and info.value.status == FAILED


def test_a_server_that_never_greets_is_named_as_such(fake_server):
    answer = fake_server.serve()  # accepts and says nothing
    with pytest.raises(ClientError, match=f"^127.0.0.1 port {fake_server.port} did not greet us: is it a "
                                          "chatroom server[?]$"):
        connect("127.0.0.1", fake_server.port, Hello("x"), timeout=0.2)
    assert answer().closed()


def test_a_server_that_never_answers_the_login_is_named_as_such(fake_server):
    answer = fake_server.serve(BANNER)
    connection = connect("127.0.0.1", fake_server.port, Hello("x"))
    try:
        with pytest.raises(ClientError, match="^the server did not answer the login$"):
            login(connection, Hello("x"), refuse, refuse, timeout=0.2)
    finally:
        connection.close()
    answer()


def test_a_callback_that_raises_ends_the_login(fake_server):
    def give_up(reason: str) -> str:
        raise ClientError(f"gave up: {reason}")

    fake_server.serve(BANNER, Error("name_lookalike", "taken"))
    connection = connect("127.0.0.1", fake_server.port, Hello("x"))
    try:
        with pytest.raises(ClientError, match="gave up: Sorry, taken. "):
            login(connection, Hello("x"), give_up, give_up)
    finally:
        connection.close()


class Failing(socket.socket):
    """A socket whose reads fail as the system says a connection has gone (the seam where the kernel speaks)."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def recv(self, size: int, flags: int = 0) -> bytes:
        raise self.error


@pytest.mark.parametrize("error", [TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT)),
                                   OSError(errno.EHOSTUNREACH, os.strerror(errno.EHOSTUNREACH)),
                                   ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))])
def test_a_connection_the_system_gave_up_on_is_closed_not_an_error(error):
    """What the loop reads after select: the kernel's own timeout (no timeout of ours is set) is the end of the
    connection like a reset; tests/test_client_loop.py has the ETIMEDOUT for real where Linux can make it."""
    with Failing(error) as sock:
        connection = Connection(sock)
        assert connection.read() == [] and connection.closed


def test_our_own_timeout_still_goes_to_the_caller():
    with Failing(TimeoutError("timed out")) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            Connection(sock).fill()


def test_unsent_bytes_are_bounded():
    """What the socket cannot take waits in the connection, without blocking, up to UNSENT_LIMIT: past it the
    connection is stuck (the loop then counts it as lost)."""
    mine, theirs = socket.socketpair()  # nobody reads theirs
    with mine, theirs:
        mine.setblocking(False)
        connection = Connection(mine)
        line = "x" * 4000
        while not connection.unsent:  # the system's buffer is full
            connection.send_line(line, 1.0)
        while len(connection.unsent) <= UNSENT_LIMIT:
            assert not connection.stuck(1.0, window=60)
            connection.send_line(line, 1.0)
        assert connection.stuck(1.0, window=60) and not connection.closed
        theirs.setblocking(False)
        while theirs.recv(1 << 20):  # the peer reads after all: the bytes go
            connection.flush(2.0)
            if not connection.unsent:
                break
        assert not connection.stuck(2.0, window=60)


# --- an attempt in a thread ------------------------------------------------------------------------------------

def test_an_attempt_logs_in_or_says_what_the_server_refused(fake_server):
    dial = dialer("127.0.0.1", fake_server.port, None)
    fake_server.serve(BANNER, Welcome("amy", ["amy"]))
    done = threading.Event()
    finished = []
    attempt = Attempt(dial, Hello("amy"), lambda which: (finished.append(which), done.set()))
    assert done.wait(TIMEOUT) and finished == [attempt]  # the callback is told which attempt ended
    connection, welcome = attempt.result
    connection.close()
    assert welcome.name == "amy"
    refused = fake_server.serve(BANNER, Error("name_taken", 'the username "amy" is taken'))
    attempt = Attempt(dial, Hello("amy"))
    assert attempt.done.wait(TIMEOUT)
    assert isinstance(attempt.result, Refused) and attempt.result.refusal == "name"
    assert attempt.result.reason == 'Sorry, the username "amy" is taken. '
    assert refused().closed()  # the refused attempt's connection is closed


def test_an_attempt_that_fails_unexpectedly_still_ends():
    def broken(hello: Hello):
        raise RuntimeError("a bug")

    attempt = Attempt(broken, Hello("amy"))
    assert attempt.done.wait(TIMEOUT)
    assert isinstance(attempt.result, ClientError) and str(attempt.result) == "RuntimeError: a bug"


def test_a_connection_that_arrives_after_the_attempt_was_abandoned_is_closed_and_nobody_is_called(fake_server):
    """The one who abandoned it may have closed what the callback would write to (the loop, its mailbox)."""
    called = []
    attempt = Attempt(dialer("127.0.0.1", fake_server.port, None), Hello("amy"), lambda *args: called.append(args))
    peer = fake_server.accept()  # connected, waiting for the greeting
    attempt.abandon()
    peer.welcome()
    assert attempt.done.wait(TIMEOUT) and attempt.result is None
    assert peer.closed() and called == []
