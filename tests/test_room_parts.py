"""The room's pure parts without sockets: the events in memory (catchup.py) and the grace period (grace.py)."""

import threading

from chatroom.protocol import UNCHOSEN_ENDINGS, CaughtUp, Joined, Message, Private, Reconnecting
from chatroom.server import grace
from chatroom.server.catchup import Recent, merged, wire_bytes
from chatroom.server.config import Config
from chatroom.server.member import Member
from chatroom.server.outbox import Outbox


def message(seq: int, text: str = "hi") -> Message:
    return Message(seq=seq, sender="bob", text=text, ts=0)


def member(name: str = "alice", token: str = "digest") -> Member:
    return Member(name, lambda event, me: b"", Outbox(threading.RLock()), token)


def test_memory_keeps_the_latest_events_by_count_and_by_bytes():
    recent = Recent(Config(catchup=3), [message(seq) for seq in range(1, 6)])
    assert recent.oldest_id() == 3
    big = message(6, "x" * 1000)
    recent = Recent(Config(catchup_bytes=wire_bytes(big) + wire_bytes(message(2))), [message(1), message(2), big])
    assert recent.oldest_id() == 2


def test_a_newcomer_sees_the_latest_messages_marked_earlier_oldest_first():
    events = [Joined(seq=1, name="bob"), message(2), message(3), message(4, "x" * 500)]
    shown = Recent(Config(newcomer_messages=2), events).for_newcomer()
    assert [(m.seq, m.earlier) for m in shown] == [(3, True), (4, True)]
    assert Recent(Config(newcomer_bytes=wire_bytes(events[3])), events).for_newcomer() == [shown[1]]


def test_a_returning_client_gets_what_it_missed_then_what_waited_then_the_count():
    recent = Recent(Config(), [message(5), Reconnecting(seq=6, name="alice"), message(7)])
    waiting = [Private(seq=8, sender="bob", to="alice", text="psst")]
    replay = recent.catch_up(5, "alice", waiting, newest=8, gaps=[])
    assert [getattr(e, "seq", None) for e in replay] == [7, 8, None]
    assert replay[0].earlier and replay[-1] == CaughtUp(count=2, missing=0, ts=replay[-1].ts)


def test_what_memory_no_longer_holds_is_counted_from_the_ids_less_the_ids_no_event_has():
    recent = Recent(Config(), [message(10)])
    assert recent.catch_up(2, "alice", [], newest=10, gaps=[])[-1].missing == 7  # ids 3 to 9
    assert recent.catch_up(2, "alice", [], newest=10, gaps=[(4, 5), (8, 20)])[-1].missing == 3  # 3, 6, 7
    assert recent.catch_up(9, "alice", [], newest=10, gaps=[])[-1].missing == 0
    assert Recent(Config()).catch_up(2, "alice", [], newest=10, gaps=[(1, 4)])[-1].missing == 6  # 5 to 10


def test_an_answer_has_each_message_once_oldest_first():
    assert [m.seq for m in merged([message(1), message(2)], [message(2), message(3)], 2)] == [2, 3]
    assert [m.seq for m in merged(None, [message(3)], 5)] == [3]


def test_only_endings_the_user_did_not_choose_keep_the_name():
    for reason in UNCHOSEN_ENDINGS:
        assert grace.keeps_name(member(), reason, 60)
        assert not grace.keeps_name(member(token=""), reason, 60)  # plain-text mode: nobody can resume
        assert not grace.keeps_name(member(), reason, 0)
    for reason in ("quit", "shutdown", "replaced"):
        assert not grace.keeps_name(member(), reason, 60)


def test_private_messages_wait_up_to_a_bound_and_bounce_with_a_preview():
    alice = member()
    assert grace.cannot_hold(alice) is None  # here: delivered, not held
    alice.away_until = 10.0
    bob = member()
    for seq in range(grace.HELD_PRIVATES):
        assert grace.hold(alice, bob, Private(seq=seq, sender="bob", to="alice", text="y" * 50)).code == "held"
    assert grace.cannot_hold(alice).code == "not_delivered"
    sender, notice = next(grace.bounced(alice, "alice did not come back in time"))
    assert sender == bob.session and f'"{"y" * 39}…"' in notice.message
    assert grace.expired([alice], 9.9) == [] and grace.expired([alice], 10.0) == [alice]
