"""An outbox judges its reader over time: bursts are fine, only a queue that stays high is too slow. The room's
events reach every outbox through one feed, in one order with what is queued for a member alone."""

from __future__ import annotations

import threading

from chatroom.server.config import EVENT_BYTES, Config
from chatroom.server.outbox import REVIEW_BYTES, TAKE_LIMIT, Feed, Outbox

CONFIG = Config(sendq=1000, slow_after=10, stall_after=30, rate=0)


def outbox(config: Config = CONFIG) -> Outbox:
    return Outbox(threading.RLock(), config)


def drained(box: Outbox) -> bytes:
    data = box.take(now=0)
    box.sent(len(data), now=0)
    return data


def test_every_reader_gets_the_feed_in_order_with_its_own_bytes_where_they_were_queued():
    feed, alice, bob = Feed(), outbox(), outbox()
    alice.put(b"welcome alice;")
    feed.add(alice)
    feed.put(b"1;")
    bob.put(b"welcome bob;")
    feed.add(bob)
    feed.put(b"2;")
    alice.put(b"for alice;")
    feed.put(b"3;")
    assert drained(alice) == b"welcome alice;1;2;for alice;3;"
    assert drained(bob) == b"welcome bob;2;3;"
    feed.put(b"4;")
    assert drained(alice) == drained(bob) == b"4;"
    assert drained(alice) == b""


def test_a_broadcast_touches_no_reader_and_the_feed_forgets_what_all_have_taken():
    feed, boxes = Feed(), [outbox() for _ in range(3)]
    for box in boxes:
        feed.add(box)
    entry = b"x" * 1000
    for _ in range(REVIEW_BYTES // len(entry) + 1):
        feed.put(entry)
        for box in boxes:
            drained(box)
    assert len(feed.part.entries) < 10


def test_a_take_is_bounded_and_the_rest_follows():
    feed, box = Feed(), outbox(Config(sendq=1000, rate=0, max_members=1))
    box.cap = 1 << 30
    feed.add(box)
    for number in range(3 * TAKE_LIMIT // 1000):
        feed.put(b"%999d" % number)
    first = drained(box)
    assert TAKE_LIMIT <= len(first) < TAKE_LIMIT + 1000
    assert first + drained(box) + drained(box) + drained(box) == b"".join(
        b"%999d" % number for number in range(3 * TAKE_LIMIT // 1000))


def test_a_burst_above_the_mark_is_not_slow_if_it_drains():
    box = outbox()
    box.put(b"x" * 1200)
    box.take(now=0)
    box.judge(now=1)  # the sender found the socket full
    assert box.over_since == 1 and not box.too_slow(9, CONFIG)
    box.sent(1200, now=2)
    assert box.over_since is None and not box.too_slow(100, CONFIG)


def test_a_queue_that_stays_above_the_mark_is_slow():
    box = outbox()
    box.put(b"x" * 1200)
    box.take(now=0)
    box.judge(now=1)
    box.sent(100, now=5)  # progress, but still above the mark
    assert not box.too_slow(10.9, CONFIG) and box.too_slow(11, CONFIG)


def test_no_progress_at_all_is_slow_even_below_the_mark():
    box = outbox()
    box.put(b"x" * 10)
    box.take(now=0)
    box.sent(0, now=1)
    assert not box.too_slow(29, CONFIG) and box.too_slow(30, CONFIG)


def test_the_stall_clock_starts_when_bytes_wait_again():
    box = outbox()
    box.put(b"x" * 10)
    drained(box)
    box.put(b"y" * 10)
    box.take(now=100)  # quiet for 100 s, then a message the socket cannot take
    box.sent(0, now=100)
    assert not box.too_slow(129, CONFIG) and box.too_slow(130, CONFIG)


def test_the_unsent_remainder_counts_towards_the_hard_cap():
    box = outbox()
    assert box.put(b"x" * (box.cap - 100))
    box.take(now=0)
    box.sent(50, now=0)
    assert box.size == box.cap - 150
    assert not box.put(b"y" * 200) and box.size == box.cap - 150


def test_a_reader_behind_the_feed_by_more_than_the_hard_cap_is_named_at_once():
    feed, slow, fast = Feed(), outbox(), outbox()
    feed.add(slow)
    feed.add(fast)
    entry = b"x" * 1000
    over: list[Outbox] = []
    while not over:
        over = feed.put(entry)
        drained(fast)
        assert slow.size <= slow.cap + len(entry)
    assert over == [slow]
    assert slow.size == 0 and slow.take(now=0) == b""  # the feed forgot its part: the room drops it next


def test_a_queue_near_the_cap_makes_the_feed_look_sooner():
    feed, box = Feed(), outbox()
    feed.add(box)
    box.put(b"q" * (box.cap - 150))
    assert feed.put(b"x" * 100) == []
    assert feed.put(b"x" * 100) == [box]


def test_the_hard_cap_is_above_every_burst_the_limits_allow():
    config = Config()
    assert config.hard_cap >= config.max_members * config.burst * EVENT_BYTES + config.newcomer_bytes


def test_a_closed_outbox_keeps_its_goodbye_after_the_bytes_under_way():
    feed, box = Feed(), outbox()
    feed.add(box)
    feed.put(b"under way;")
    box.take(now=0)
    feed.put(b"queued;")
    box.put(b"mine;")
    box.close(flush=False, last=b"bye\n", now=0)
    feed.put(b"after;")
    assert box.take(now=0) == b"under way;bye\n"
    assert box.put(b"late") and box.take(now=0) == b"under way;bye\n"


def test_a_closed_outbox_flushes_what_was_queued_before_its_goodbye():
    feed, box = Feed(), outbox()
    feed.add(box)
    feed.put(b"1;")
    box.put(b"mine;")
    feed.put(b"2;")
    box.close(flush=True, last=b"bye\n", now=0)
    feed.put(b"3;")
    assert drained(box) == b"1;mine;2;bye\n" and not box.reading


def test_an_outbox_given_up_on_holds_nothing_and_takes_nothing():
    feed, box = Feed(), outbox()
    feed.add(box)
    box.put(b"queued")
    box.take(now=0)
    box.sent(2, now=1)
    feed.put(b"more")
    box.discard()
    assert box.closed and box.size == 0 and box.unsent == b"" and box.take(now=2) == b""
    assert box not in feed.boxes
    feed.put(b"late")
    assert box.take(now=2) == b""


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
        assert member.outbox.put(b"x" * (member.outbox.cap - member.outbox.size - 100))
    talker.outbox.cap = 1 << 30
    effects = room.handle(talker, Command("say", text="y" * 200))
    assert room.names() == ["talker"]
    assert sorted(reason for _, reason in effects.left) == ["slow"] * 400
