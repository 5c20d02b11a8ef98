"""The sender thread: everything a connection is owed goes, however little the readers say."""

from __future__ import annotations

import socket
import threading
import time

from conftest import TIMEOUT

from chatroom.server.config import Config
from chatroom.server.outbox import TAKE_LIMIT, Feed, Outbox
from chatroom.server.sender import COALESCE_BYTES, COALESCE_WAIT, Sender
from chatroom.server.streams import PlainStream


def test_a_backlog_longer_than_one_take_goes_whole_after_one_hand_over():
    config = Config(rate=0)
    sender = Sender(config, on_slow=lambda box: None, on_crash=lambda: None)
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):  # room for more than one take at once: the socket is never full
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * TAKE_LIMIT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * TAKE_LIMIT)
    sender.start()
    try:
        lock, feed = threading.RLock(), Feed()
        box = Outbox(lock, config)
        box.cap = 1 << 30
        box.stream = PlainStream(ours)
        with lock:
            feed.add(box)
            entries = [b"%999d" % number for number in range(3 * TAKE_LIMIT // 1000)]
            for entry in entries:
                feed.put(entry)
        sender.ready_many([feed])  # once: nothing else will come
        expected = b"".join(entries)
        received = b""
        theirs.settimeout(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while len(received) < len(expected) and time.monotonic() < deadline:
            received += theirs.recv(1 << 20)
        assert received == expected
    finally:
        sender.stop()
        ours.close()
        theirs.close()


def test_a_turn_of_large_sends_waits_to_gather_more_and_one_of_small_sends_never_waits():
    """A busy room's next turn comes COALESCE_WAIT later, so each connection gets fewer, larger sends; a quiet
    room's message goes at once, however many members."""
    config = Config(rate=0)
    pauses: list[float] = []
    paused = threading.Event()
    sender = Sender(config, on_slow=lambda box: None, on_crash=lambda: None,
                    pause=lambda seconds: (pauses.append(seconds), paused.set()))
    ours, theirs = socket.socketpair()
    sender.start()
    try:
        lock, feed = threading.RLock(), Feed()
        box = Outbox(lock, config)
        box.stream = PlainStream(ours)
        with lock:
            feed.add(box)
        theirs.settimeout(TIMEOUT)

        def deliver(entry: bytes) -> None:
            with lock:
                feed.put(entry)
            sender.ready_many([feed])
            received = b""
            while len(received) < len(entry):
                received += theirs.recv(1 << 20)

        deliver(b"x" * (COALESCE_BYTES - 2) + b"\n")  # one small message
        deliver(b"y" * 99 + b"\n")
        assert not paused.wait(0.05) and pauses == []
        deliver(b"z" * (4 * COALESCE_BYTES) + b"\n")  # what a busy room's turn sends each member
        assert paused.wait(TIMEOUT) and pauses == [COALESCE_WAIT]
    finally:
        sender.stop()
        ours.close()
        theirs.close()
