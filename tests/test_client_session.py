"""The client session, pure: events, typed lines and the time in, actions out. No socket, no clock: the tests
give `now`."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import replace

import pytest

from chatroom.client.session import (
    CONNECTED, DISCONNECTED, END_OF_HISTORY, LOST, NOT_ANSWERING, OK, PROBE, RECONNECTING, ClientSession, End, Notice,
    Redial, Show, Timing, Transmit,
)
from chatroom.protocol import (
    LINE_LIMIT, Bye, CaughtUp, Error, Found, Help, Hello, Joined, Left, Message, Ping, Private, Reconnecting, Renamed,
    Shutdown, Users, Welcome,
)


def session(welcome: Welcome, **options: object) -> ClientSession:
    options.setdefault("jitter", lambda: 1.0)
    return ClientSession(welcome, 0.0, **options)


def days(actions: list) -> list:
    return [action for action in actions if isinstance(action, Notice) and action.role == "day"]


def but_days(actions: list) -> list:
    """The actions but the day lines (the tests' events are of today: only the first event brings one)."""
    return [action for action in actions if action not in days(actions)]


def started(welcome: Welcome | None = None, **options: object) -> ClientSession:
    """A session whose welcome has been shown (at the first tick, no history having come with it)."""
    welcome = welcome or Welcome("amy", ["amy"])
    chat = session(welcome, **options)
    assert but_days(chat.tick(0.0)) == [Show(welcome)]
    return chat


def sent(actions: list) -> list[str]:
    return [action.line for action in actions if isinstance(action, Transmit)]


def shown(actions: list) -> list:
    return [action.event if isinstance(action, Show) else action.text for action in but_days(actions)
            if isinstance(action, (Show, Notice))]


# --- who is here ---------------------------------------------------------------------------------------------

def test_the_session_follows_the_user_list_my_renames_and_who_is_away():
    chat = started(Welcome("amy", ["amy", "bob", "cy"], away=["cy"]))
    assert chat.view.away == {"cy"}
    for event in [Joined(1, "dee"), Renamed(2, "amy", "ann"), Left(3, "bob", "quit"), Reconnecting(4, "dee"),
                  Joined(5, "cy", back=True)]:
        chat.receive(event, 1.0)
    assert chat.view.users == ("ann", "cy", "dee") and chat.view.me == "ann" and chat.view.away == {"dee"}
    chat.receive(Users(["ann", "eve"], "ann", away=["eve"]), 1.0)
    assert (chat.view.users, chat.view.away) == (("ann", "eve"), {"eve"})


def test_a_ping_is_answered_and_not_shown():
    assert started().receive(Ping(), 1.0) == [Transmit("/pong")]


def test_an_event_seen_before_is_not_shown_again_and_my_own_absence_is_no_news():
    chat = started()
    message = Message(5, "bob", "one")
    assert shown(chat.receive(message, 1.0)) == [message]
    assert chat.receive(message, 1.0) == []
    assert chat.receive(Reconnecting(6, "amy"), 1.0) == []
    # a private message held for me arrives after the public replay, with a lower id: still new
    assert len(shown(chat.receive(Private(4, "bob", "amy", "psst"), 1.0))) == 1
    assert chat.last_seq == 6


# --- the welcome after the history ---------------------------------------------------------------------------

def test_the_welcome_comes_after_the_history_and_its_end_marker():
    welcome = Welcome("amy", ["amy", "bob"])
    chat = session(welcome)
    history = [Message(1, "bob", "old", earlier=True), Message(2, "bob", "older", earlier=True)]
    assert [shown(chat.receive(event, 0.0)) for event in history] == [[history[0]], [history[1]]]
    assert chat.tick(0.1) == [] and chat.due == pytest.approx(0.3)
    assert shown(chat.tick(0.3)) == [END_OF_HISTORY, welcome]


def test_without_history_the_welcome_shows_at_once_and_the_first_other_event_releases_it():
    welcome = Welcome("amy", ["amy"])
    chat = session(welcome)
    chat.receive(Message(1, "bob", "old", earlier=True), 0.0)
    joined = Joined(2, "cy")
    assert shown(chat.receive(joined, 0.0)) == [END_OF_HISTORY, welcome, joined]


def test_the_user_typing_releases_the_welcome():
    welcome = Welcome("amy", ["amy"])
    chat = session(welcome)
    chat.receive(Message(1, "bob", "old", earlier=True), 0.0)
    assert shown(chat.send("hi", 0.1)) == [END_OF_HISTORY, welcome]


# --- sending: pacing, pending, a pasted block ----------------------------------------------------------------

def test_a_paste_is_paced_and_the_user_told_once_how_many_lines_wait():
    chat = started(Welcome("amy", ["amy"], rate=2.0, burst=3))
    for number in range(5):
        chat.send(f"line {number}", 1.0)
    actions = chat.tick(1.0)
    assert sent(actions) == ["line 0", "line 1"]  # one token kept back for jitter
    assert Notice("-- 3 lines wait to be sent (2 per second is the server's limit)") in actions
    assert 1.0 < chat.due <= 1.0 + 1 / (2.0 * Timing().pace_margin)
    assert sent(chat.tick(1.0 + 1 / 1.8)) == ["line 2"] and chat.tick(1.0 + 1 / 1.8) == []  # told once


def test_no_pacing_without_a_server_limit():
    chat = started()
    for number in range(50):
        chat.send(str(number), 1.0)
    actions = chat.tick(1.0)
    assert len(sent(actions)) == 50 and not any(isinstance(action, Notice) for action in actions)


def test_public_lines_are_pending_until_their_echo():
    chat = started()
    for line in ["hello", "/me waves", '/bc "x"', "/users", "@bob psst", "hi > bob", "/nick x"]:
        chat.send(line, 1.0)
    chat.send("/users\nline two", 1.0)  # a block: a public message, never a command
    assert chat.view.pending == 4
    chat.receive(Message(1, "BOB", "hello"), 1.0)
    chat.receive(Message(2, "amy", "old", earlier=True), 1.0)
    assert chat.view.pending == 4
    chat.receive(Message(3, "Amy", "hello"), 1.0)
    assert chat.view.pending == 3


@pytest.mark.parametrize("code, pending", [
    ("held", 1), ("unknown_user", 1), ("not_delivered", 1), ("same_name", 1),
    ("rate_limited", 0), ("bad_message", 0), ("line_too_long", 0), ("cluster_unavailable", 0),
])
def test_only_an_error_that_refused_a_line_ends_a_pending_message(code, pending):
    chat = started()
    chat.send("hello", 1.0)
    chat.receive(Error(code, "..."), 1.0)
    assert chat.view.pending == pending


@pytest.mark.parametrize("text, verbatim", [("a\nb", True), ("a\nb\n", False), ("a\r\nb", False)])
def test_a_block_goes_as_one_structured_message_whether_pasted_or_typed_with_line_breaks(text, verbatim):
    chat = started()
    chat.send(text, 1.0, verbatim=verbatim)
    (line,) = sent(chat.tick(1.0))
    assert json.loads(line) == {"type": "say", "text": "a\nb"} and chat.view.pending == 1


def test_a_block_over_the_line_limit_is_not_sent_and_says_why():
    chat = started()
    actions = chat.send("x" * 3000 + "\n" + "y" * 3000, 1.0)
    assert actions[0].role == "error" and actions[0].text.startswith("! The paste was not sent: 60")
    assert f"at most {LINE_LIMIT} in one message" in actions[0].text
    assert sent(chat.tick(1.0)) == [] and chat.view.pending == 0


# --- the watch over a quiet server ---------------------------------------------------------------------------

def test_a_quiet_server_is_probed_once_and_not_answering_until_it_speaks():
    chat = started(timing=Timing(probe_after=10, answer_within=5))
    assert chat.tick(9.9) == [] and chat.view.state == CONNECTED
    assert chat.tick(10.0) == [Transmit(PROBE)] and chat.tick(14.9) == [] and chat.view.state == CONNECTED
    chat.tick(15.0)
    assert chat.view.state == NOT_ANSWERING
    chat.heard(16.0)  # any byte is an answer
    assert chat.view.state == CONNECTED
    assert chat.receive(Users(["amy", "bob"], "amy"), 16.0) == []  # the probe's answer is not shown
    assert chat.view.users == ("amy", "bob") and chat.tick(25.9) == []
    assert chat.tick(26.0) == [Transmit(PROBE)]  # silent again: asked again


def test_the_watch_leaves_the_reconnecting_state_alone():
    chat = started(reconnects=True, timing=Timing(probe_after=10, answer_within=5))
    chat.closed(1.0)
    chat.heard(2.0)
    chat.tick(30.0)
    assert chat.view.state == RECONNECTING
    assert len(shown(chat.receive(Users(["amy"], "amy"), 17.0))) == 1  # a /users of the user's own is


# --- how it ends ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("last, status, lost", [
    (None, DISCONNECTED, True), (Bye("quit"), OK, False), (Bye("slow"), DISCONNECTED, False),
    (Shutdown(), DISCONNECTED, False),
])
def test_how_the_session_ended_without_reconnecting(last, status, lost):
    chat = started()
    if last is not None:
        chat.receive(last, 1.0)
    actions = chat.closed(1.0)
    assert actions[-1] == End(status) and (Notice(f"! {LOST}", "error") in actions) == lost


def test_quit_says_goodbye_and_waits_for_it_briefly():
    chat = started()
    assert chat.quit(1.0) == [] and chat.quit(1.0) == []
    assert sent(chat.tick(1.0)) == ["/quit"]
    assert chat.tick(1.0 + Timing().quit_wait - 0.1) == []
    assert chat.tick(1.0 + Timing().quit_wait) == [End(OK)]
    assert chat.closed(1.5) == [End(OK)]  # the goodbye came first: no "connection lost"


# --- reconnecting --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("last, reconnects", [
    (None, True), (Shutdown(), True), (Bye("slow"), True), (Bye("timeout"), True), (Bye("error"), True),
    (Bye("quit"), False), (Bye("replaced"), False),
])
def test_what_reconnects(last, reconnects):
    chat = started(reconnects=True)
    if last is not None:
        chat.receive(last, 1.0)
    assert isinstance(chat.closed(1.0)[-1], End) != reconnects


def test_attempts_back_off_from_1_to_30_seconds_with_jitter():
    for jitter, delays in [(1.0, [1, 2, 4, 8, 16, 30, 30]), (0.0, [0.5, 1, 2, 4, 8, 15, 15])]:
        chat = started(reconnects=True, jitter=lambda jitter=jitter: jitter)
        chat.closed(0.0)
        found = [chat.retry_at]
        for _ in range(6):
            now = chat.retry_at
            assert isinstance(chat.tick(now)[0], Redial)
            chat.reconnect_failed(now, "nothing is listening")
            found.append(chat.retry_at - now)
        assert found == delays


def test_why_an_attempt_failed_comes_first_in_the_notice_of_the_next():
    chat = started(reconnects=True, quit_hint="Ctrl+C to quit")
    chat.closed(0.0)
    chat.tick(1.0)
    assert chat.reconnect_failed(1.5, "the room is full (50 users): try again later") == [Notice(
        "-- the room is full (50 users): try again later; reconnecting in 2 s (attempt 2), Ctrl+C to quit", "error")]


def test_a_lost_connection_comes_back_with_the_token_and_the_last_id():
    chat = started(Welcome("amy", ["amy"], token="t1", seq=3), reconnects=True, password="pw",
                   quit_hint="Ctrl+C to quit")
    chat.receive(Message(5, "bob", "one"), 1.0)
    (notice,) = chat.closed(2.0)
    assert notice == Notice("-- connection lost; reconnecting in 1 s (attempt 1), Ctrl+C to quit", "error")
    assert chat.view.state == RECONNECTING
    assert shown(chat.send("typed while away", 2.5)) == [
        '-- not connected: "typed while away" waits, and goes once the connection is back']
    assert chat.tick(2.5) == []
    assert chat.due == pytest.approx(3.0)
    assert chat.tick(3.0) == [Redial(Hello("amy", password="pw", reconnect=True, resume="t1", after=5))]
    back = Welcome("amy", ["amy", "bob"], token="t2", resumed=True)
    assert shown(chat.reconnected(back, 3.5)) == ["-- reconnected", back]
    assert chat.view.state == CONNECTED and chat.token == "t2"
    assert sent(chat.tick(3.5)) == ["typed while away"]
    assert shown(chat.receive(Message(5, "bob", "one"), 3.5)) == []  # replayed, seen already
    assert len(shown(chat.receive(CaughtUp(1), 3.5))) == 1


def lost_in_flight(*typed_while_away: str) -> ClientSession:
    """A session whose "hi" went into a connection that was then lost before its echo came, with lines typed
    while away, logged in again (resumed, asking from event 5)."""
    chat = started(Welcome("amy", ["amy"], token="t1", seq=5), reconnects=True)
    chat.send("hi", 1.0)
    assert sent(chat.tick(1.0)) == ["hi"] and chat.view.pending == 1
    chat.closed(1.1)
    for line in typed_while_away:
        chat.send(line, 1.5)
    assert chat.tick(2.5)[0].hello.after == 5
    chat.reconnected(Welcome("amy", ["amy", "bob"], token="t2", resumed=True, seq=7), 2.6)
    return chat


def test_the_replay_echoes_a_message_the_lost_connection_took_and_a_line_typed_meanwhile_stays_pending():
    chat = lost_in_flight("typed while away", "/users")
    assert chat.view.pending == 2
    chat.receive(Message(6, "amy", "hi", earlier=True), 2.6)  # the server got it: the replay has its echo
    assert chat.view.pending == 1  # the line typed while away; an echo is counted once, never for another line
    caught_up = CaughtUp(1)
    assert shown(chat.receive(caught_up, 2.6)) == [caught_up] and chat.view.pending == 1
    assert sent(chat.tick(2.6)) == ["typed while away", "/users"]
    chat.receive(Message(8, "amy", "typed while away"), 2.7)
    assert chat.view.pending == 0


def test_a_message_the_lost_connection_never_delivered_is_pending_no_more_and_said_so():
    chat = lost_in_flight()
    chat.receive(Message(6, "bob", "meanwhile", earlier=True), 2.6)
    assert chat.view.pending == 1  # until the replay is over
    actions = chat.receive(CaughtUp(1), 2.6)
    assert chat.view.pending == 0
    assert actions[-1] == Notice("-- 1 message sent as the connection was lost never reached the server", "error")


def test_without_an_event_id_to_ask_from_a_message_the_lost_connection_took_is_pending_no_more():
    """No replay comes to settle it (the server sends the newcomer's history instead, marked earlier and shown so):
    only the lines waiting stay pending."""
    chat = started(Welcome("amy", ["amy"], token="t1"), reconnects=True)
    chat.send("hi", 1.0)
    chat.tick(1.0)
    chat.closed(1.1)
    chat.send("typed while away", 1.5)
    assert chat.tick(2.5)[0].hello.after is None
    chat.reconnected(Welcome("amy", ["amy"], token="t2", resumed=True, seq=1), 2.6)
    assert chat.view.pending == 1
    history = Message(1, "amy", "hi", earlier=True)
    assert history in shown(chat.receive(history, 2.6))  # history, shown as such: no echo
    assert chat.view.pending == 1


def test_a_server_that_started_again_without_its_history_numbers_anew_and_its_events_are_shown():
    """Issue #18, point 2: ids seen before the restart are no reason to drop the new room's events."""
    chat = started(Welcome("amy", ["amy"], token="t1", seq=0, epoch="before"), reconnects=True)
    for seq in range(1, 10):
        chat.receive(Message(seq, "bob", f"m{seq}"), 1.0)
    chat.closed(2.0)
    (redial,) = chat.tick(3.0)
    assert (redial.hello.after, redial.hello.epoch) == (9, "before")
    assert chat.reconnected(Welcome("amy", ["bob", "amy"], token="t2", seq=2, epoch="after"), 3.5)
    new = Message(2, "bob", "after the restart")
    assert shown(chat.receive(new, 3.5)) == [new]
    assert chat.receive(new, 3.6) == []  # and seen now, in the new numbering
    chat.closed(4.0)
    (redial,) = chat.tick(5.0)
    assert (redial.hello.after, redial.hello.epoch) == (2, "after")


def test_a_client_that_saw_no_event_asks_from_the_welcomes_id():
    chat = started(Welcome("amy", ["amy"], token="t1", seq=7), reconnects=True)
    chat.closed(0.0)
    assert chat.tick(1.0)[0].hello.after == 7


def test_a_name_taken_meanwhile_is_asked_for_and_the_next_line_is_the_new_name():
    chat = started(Welcome("amy", ["amy"], token="t1"), reconnects=True)
    chat.closed(0.0)
    chat.tick(1.0)
    (notice,) = chat.reconnect_refused("name", 'Sorry, the username "amy" is taken. ', 1.5)
    assert notice == Notice('-- Sorry, the username "amy" is taken. Type another username and press Enter.',
                            "error")
    assert chat.tick(100.0) == []  # no attempt until the user answers
    assert chat.send("amy2", 101.0) == []
    (redial,) = chat.tick(101.0)
    assert (redial.hello.name, redial.hello.resume) == ("amy2", "t1")


def test_a_changed_password_ends_the_session():
    chat = started(reconnects=True)
    chat.closed(0.0)
    chat.tick(1.0)
    actions = chat.reconnect_refused("password", "Wrong password. ", 1.5)
    assert "password has changed" in actions[0].text and actions[-1] == End(DISCONNECTED)
    assert not chat.lost


def test_quit_while_reconnecting_ends_at_once():
    chat = started(reconnects=True)
    chat.closed(0.0)
    assert chat.send("/quit", 0.5) == [End(OK)]


# --- days, replays, retrying at once, the keys' help ------------------------------------------------------------

TUESDAY = time.mktime((2026, 12, 1, 9, 17, 0, 0, 0, -1))
DAY = 86_400


def test_a_line_says_the_day_before_its_first_event_and_an_answer_of_old_messages_moves_the_day_on():
    welcome = Welcome("amy", ["amy", "bob"], ts=TUESDAY + 7 * DAY)
    chat = session(welcome)
    old = [Message(1, "bob", "last week", earlier=True, ts=TUESDAY), Message(2, "bob", "next day", earlier=True,
                                                                        ts=TUESDAY + DAY)]
    assert [days(chat.receive(event, 0.0)) for event in old] == [
        [Notice("— Tuesday 1 December —", "day")], [Notice("— Wednesday 2 December —", "day")]]
    actions = chat.tick(1.0)
    assert [getattr(action, "text", None) for action in actions[:2]] == [END_OF_HISTORY, "— Tuesday 8 December —"]
    assert actions[2] == Show(welcome)
    assert days(chat.receive(Joined(3, "cy", ts=TUESDAY + 7 * DAY), 1.0)) == []  # the same day: no line
    chat.receive(Found(None, [Message(1, "bob", "last week", ts=TUESDAY)]), 1.0)  # with its own day lines
    assert days(chat.receive(Joined(4, "dee", ts=TUESDAY + 7 * DAY), 1.0)) == [
        Notice("— Tuesday 8 December —", "day")]  # back to today after it


def test_the_replay_after_a_reconnect_is_the_conversation_not_history_and_my_own_line_in_it_is_its_echo():
    chat = started(Welcome("amy", ["amy", "bob"], token="t1", seq=4), reconnects=True)  # a replay after 4 comes
    chat.send("did this arrive?", 1.0)
    chat.tick(1.0)
    chat.closed(2.0)
    chat.tick(3.0)
    chat.reconnected(Welcome("amy", ["amy", "bob", "cy"], token="t2", resumed=True), 3.0)
    mine, theirs = Message(5, "amy", "did this arrive?", earlier=True), Message(6, "cy", "hi all", earlier=True)
    assert shown(chat.receive(mine, 3.0)) == [replace(mine, earlier=False)] and chat.view.pending == 0
    chat.receive(Joined(7, "cy"), 3.0)  # cy joined while I was away: the welcome listed cy already
    assert shown(chat.receive(theirs, 3.0)) == [replace(theirs, earlier=False)]
    assert chat.view.users == ("amy", "bob", "cy")
    chat.receive(CaughtUp(2), 3.0)
    history = Message(8, "bob", "from /history", earlier=True)  # not a replay any more
    assert shown(chat.receive(history, 3.0)) == [history]


def test_an_empty_line_or_reconnect_while_waiting_to_reconnect_tries_now():
    chat = started(Welcome("amy", ["amy"], token="t1"), reconnects=True)
    assert chat.send("", 1.0) == [] and chat.outgoing == deque()  # connected: nothing to do, nothing sent
    assert shown(chat.send("/reconnect", 1.0)) == ["-- connected already"]
    chat.closed(2.0)
    for _ in range(4):  # the waits grow: 1, 2, 4, 8 s
        now = chat.retry_at
        chat.tick(now)
        chat.reconnect_failed(now, "nothing is listening")
    assert chat.retry_at > 10
    assert shown(chat.send("", 10.0)) == ["-- reconnecting now"] and chat.retry_at == 10.0
    assert isinstance(chat.tick(10.0)[0], Redial)
    assert shown(chat.send("/RECONNECT", 10.5)) == ["-- a reconnect attempt is under way"]
    chat.reconnect_failed(11.0, "nothing is listening")
    assert shown(chat.send(" /reconnect ", 11.5)) == ["-- reconnecting now"] and chat.retry_at == 11.5


def test_the_client_s_keys_follow_the_servers_help():
    chat = started(key_help=("Keys:", "  Tab", "      complete"))
    (action,) = chat.receive(Help(["Commands:", "  /users"]), 1.0)
    assert action == Show(Help(["Commands:", "  /users", "Keys:", "  Tab", "      complete"]))
