"""The server's view of a socket: the reader waits with a timeout, the sender never waits, a shutdown wakes."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from chatroom.server.streams import DONTWAIT, DirectStream, PlainStream, shut

KINDS = [PlainStream, *([DirectStream] if DONTWAIT else [])]


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_read_returns_what_came_and_times_out_when_nothing_does(kind, pair):
    ours, theirs = pair
    stream = kind(ours)
    stream.settimeout(0.05)
    theirs.sendall(b"hello")
    assert stream.recv(100) == b"hello"
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        stream.recv(100)
    assert 0.04 <= time.monotonic() - began < 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_shorter_timeout_is_taken_and_none_waits_until_data(kind, pair):
    ours, theirs = pair
    stream = kind(ours)
    stream.settimeout(30)
    stream.settimeout(0.05)  # a deadline that came nearer must not wait for the old one
    with pytest.raises(TimeoutError):
        stream.recv(100)
    stream.settimeout(None)
    threading.Timer(0.1, theirs.sendall, [b"late"]).start()
    assert stream.recv(100) == b"late"


@pytest.mark.parametrize("kind", KINDS)
def test_the_sender_never_waits_for_a_full_socket(kind, pair):
    ours, _ = pair
    stream = kind(ours)
    stream.settimeout(None)
    began = time.monotonic()
    while stream.send_nowait(b"x" * 65536):
        assert time.monotonic() - began < 10
    assert stream.send_nowait(b"more") == 0


@pytest.mark.skipif(not DONTWAIT, reason="the blocking read is for systems with MSG_DONTWAIT")
def test_a_shutdown_wakes_a_reader_waiting_in_recv(pair):
    ours, _ = pair
    stream = DirectStream(ours)
    stream.settimeout(None)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.recv(100)))
    reader.start()
    time.sleep(0.05)  # let it wait; it must wake whenever the shutdown comes
    shut(ours)
    reader.join(5)
    assert got == [b""]
