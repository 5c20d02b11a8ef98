"""The wake-up of a select loop from other threads (chatroom/waker.py): never lost, never more than its wait."""

from __future__ import annotations

import select
import threading
import time

from conftest import TIMEOUT, wait_until

from chatroom.waker import DRAIN, WAKE_TIMEOUT, Waker


def readable(waker: Waker, timeout: float = 0.0) -> bool:
    return bool(select.select([waker.sock], [], [], timeout)[0])


def fill(waker: Waker) -> int:
    """Wake-ups left unread until the socket pair takes no more, not even one byte: how many."""
    filled = 0
    for size in (4096, 1):
        while True:
            try:
                filled += waker._poke.send(b"\0" * size)
            except BlockingIOError:
                break
    return filled


def unread(waker: Waker) -> int:
    """The wake-up bytes waiting, read."""
    count = 0
    try:
        while data := waker.sock.recv(65536):
            count += len(data)
    except BlockingIOError:
        pass
    return count


def test_a_wake_up_is_seen_and_drained():
    waker = Waker()
    try:
        assert not readable(waker)
        waker.wake()
        assert readable(waker, TIMEOUT)
        waker.drain()
        assert not readable(waker)
    finally:
        waker.close()
    waker.wake()  # after close: nothing, no error


def test_one_drain_takes_every_wake_up_however_many():
    waker = Waker()
    try:
        waker._poke.send(b"\0" * (DRAIN * 2 + 1))  # as that many wake-ups left unread
        waker.drain()
        assert not readable(waker)
    finally:
        waker.close()


def test_a_wake_up_that_meets_a_full_buffer_waits_for_room_instead_of_being_lost():
    waker = Waker()
    try:
        filled = fill(waker)  # the loop has left every wake-up unread, up to what the socket pair holds
        woken = threading.Event()
        thread = threading.Thread(target=lambda: (waker.wake(), woken.set()))
        thread.start()
        assert not woken.wait(0.05)  # waiting for room
        taken = unread(waker)  # the loop reads (all: a socket pair of Windows is TCP, whose window opens late)
        assert woken.wait(TIMEOUT)
        thread.join(TIMEOUT)
        assert taken + unread(waker) == filled + 1  # every wake-up came, the one that waited too
    finally:
        waker.close()


def test_a_wake_up_never_waits_longer_than_its_timeout():
    waker = Waker()
    try:
        fill(waker)
        began = time.monotonic()
        waker.wake()
        assert time.monotonic() - began < WAKE_TIMEOUT + TIMEOUT
    finally:
        waker.close()


def test_a_close_never_waits_for_a_wake_up_waiting_for_room(monkeypatch):
    monkeypatch.setattr("chatroom.waker.WAKE_TIMEOUT", TIMEOUT * 3)  # a wake that would outwait the test
    waker = Waker()
    fill(waker)
    waking = threading.Thread(target=waker.wake)
    waking.start()
    wait_until(lambda: waker._waking)  # the wake waits for room
    closing = threading.Thread(target=waker.close)
    closing.start()
    closing.join(TIMEOUT)
    assert not closing.is_alive()  # the close did not wait behind the wake's wait
    waking.join(TIMEOUT)
    assert not waking.is_alive()  # the wake saw the close and gave up
    assert waker.sock.fileno() == -1 and waker._poke.fileno() == -1  # and closed the sockets, the last out
