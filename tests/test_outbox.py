"""An outbox judges its reader over time: bursts are fine, only a queue that stays high is too slow."""

from __future__ import annotations

import threading

from chatroom.server.config import EVENT_BYTES, Config
from chatroom.server.outbox import Outbox

CONFIG = Config(sendq=1000, slow_after=10, stall_after=30, rate=0)


def outbox() -> Outbox:
    return Outbox(threading.RLock(), CONFIG)


def test_the_sender_hears_of_an_outbox_only_when_its_queue_was_empty():
    box = outbox()
    assert Outbox.put_all([box], b"a" * 10, now=0) == ([], [box])
    assert Outbox.put_all([box], b"b" * 10, now=0) == ([], [])


def test_a_burst_above_the_mark_is_not_slow_if_it_drains():
    box = outbox()
    Outbox.put_all([box], b"x" * 600, now=0)
    Outbox.put_all([box], b"x" * 600, now=1)
    assert box.over_since == 1 and not box.too_slow(9, CONFIG)
    box.take()
    box.sent(1200, now=2)
    assert box.over_since is None and not box.too_slow(100, CONFIG)


def test_a_queue_that_stays_above_the_mark_is_slow():
    box = outbox()
    Outbox.put_all([box], b"x" * 600, now=0)
    Outbox.put_all([box], b"x" * 600, now=1)
    box.take()
    box.sent(100, now=5)  # progress, but still above the mark
    assert not box.too_slow(10.9, CONFIG) and box.too_slow(11, CONFIG)


def test_no_progress_at_all_is_slow_even_below_the_mark():
    box = outbox()
    Outbox.put_all([box], b"x" * 10, now=0)
    box.take()
    box.sent(0, now=1)
    assert not box.too_slow(29, CONFIG) and box.too_slow(30, CONFIG)


def test_the_unsent_remainder_counts_towards_the_hard_cap():
    box = outbox()
    Outbox.put_all([box], b"x" * (box.cap - 100), now=0)
    box.take()
    box.sent(50, now=0)
    assert box.size == box.cap - 150
    over, _ = Outbox.put_all([box], b"y" * 200, now=0)
    assert over == [box]


def test_the_hard_cap_is_above_every_burst_the_limits_allow():
    config = Config()
    assert config.hard_cap >= config.max_members * config.burst * EVENT_BYTES + config.newcomer_bytes


def test_a_closed_outbox_keeps_its_goodbye_after_the_bytes_under_way():
    box = outbox()
    Outbox.put_all([box], b"queued", now=0)
    box.close(flush=False, last=b"bye\n", now=0)
    assert box.take() == b"bye\n"
    assert Outbox.put_all([box], b"late", now=0) == ([], [])


def test_an_outbox_given_up_on_holds_nothing_and_takes_nothing():
    box = outbox()
    Outbox.put_all([box], b"queued", now=0)
    box.take()
    box.sent(2, now=1)
    Outbox.put_all([box], b"more", now=1)
    box.discard()
    assert box.closed and box.size == 0 and box.unsent == b"" and box.take() == b""
    assert Outbox.put_all([box], b"late", now=2) == ([], [])


def test_a_cascade_of_members_over_the_cap_is_a_loop_not_a_recursion():
    """Each leave notice pushes the next stuck member over the cap; 400 of them must not recurse."""
    from chatroom.commands import Command
    from chatroom.server.room import Room

    def codec(event, me):
        return repr(event).encode()

    config = Config(max_members=500, sendq=1024, rate=0)
    room = Room(config)
    talker, _ = room.join("talker", codec, room.new_outbox())
    stuck = [room.join(f"s{number}", codec, room.new_outbox())[0] for number in range(400)]
    for member in stuck:  # all but full
        Outbox.put_all([member.outbox], b"x" * (member.outbox.cap - member.outbox.size - 100), now=0)
    talker.outbox.cap = 1 << 30
    effects = room.handle(talker, Command("say", text="y" * 200))
    assert room.names() == ["talker"]
    assert sorted(reason for _, reason in effects.left) == ["slow"] * 400
