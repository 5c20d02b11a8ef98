"""History, search and grace under attack (issue #18): no member can freeze, flood or squat the room.

One section per point of the issue, each against a real server on loopback (a server process where a restart
or a kill is part of it)."""

from __future__ import annotations

import socket
import sys
import time

import pytest
from conftest import TIMEOUT, JsonClient, PlainClient, wait_until

from chatroom.protocol import Hello
from chatroom.server.config import Config


# --- 10. /history edges -------------------------------------------------------------------------------

@pytest.mark.parametrize("server_config", [Config(rate=0)])
def test_history_takes_a_count_from_1_and_a_strange_digit_is_an_error_not_a_drop(clients):
    alice = clients()
    alice.login("alice")
    for number in range(30):
        alice.say(f"note {number}")
    alice.say("/history 0")
    assert "from 1" in alice.expect_event("error", code="bad_arguments")["message"]
    alice.say("/history ²")  # a digit to str.isdigit, no number to int()
    assert "not a number" in alice.expect_event("error", code="bad_arguments")["message"]
    alice.say("/history 501")
    assert len(alice.expect_event("found")["messages"]) == 30  # at most 500: all there is
    plain = clients(PlainClient)
    plain.login("bob")
    plain.send("/history ٣\n")  # Arabic-Indic three: a decimal digit, and a number
    assert plain.expect(lambda line: line.startswith("The last messages")) == "The last messages (3):"


# --- 5. held private messages ---------------------------------------------------------------------------

def resumable(port: int, name: str, **fields: object) -> tuple[JsonClient, dict]:
    """A client that logs in as the console client does (a resume token), and its welcome."""
    client = JsonClient(port)
    client.line()
    client.send(Hello(name, reconnect=True, **fields).encode())  # type: ignore[arg-type]
    return client, client.event()


def replay(client: JsonClient) -> list[dict]:
    """The events of a resume up to its caught_up."""
    events = []
    while (event := client.event())["type"] != "caught_up":
        events.append(event)
    return events


def test_a_held_private_message_is_delivered_once_and_never_falsely_bounced(make_server):
    server = make_server(Config(rate=0, grace=1.0))
    bob, _ = resumable(server.port, "bob")
    alice, welcome = resumable(server.port, "alice")
    try:
        alice.close()
        bob.expect_event("reconnecting", name="alice")
        bob.say("/msg alice only-once")
        bob.expect_event("error", code="held")
        alice, welcome = resumable(server.port, "alice", resume=welcome["token"], after=welcome["seq"])
        first = replay(alice)
        assert [e["text"] for e in first if e["type"] == "private"] == ["only-once"]
        seen = max(e["seq"] for e in first)
        alice.close()
        bob.expect_event("reconnecting", name="alice")
        alice, welcome = resumable(server.port, "alice", resume=welcome["token"], after=seen)
        assert [e for e in replay(alice) if e["type"] == "private"] == []  # not a second time
        alice.close()  # and away for good: nothing waits for her, so nothing bounces
        assert bob.expect_event("leave", name="alice")["reason"] == "lost"
        bob.say("/users")
        assert bob.event()["type"] == "users"  # the next event: no not_delivered came in between
    finally:
        alice.close()
        bob.close()


def test_a_resume_without_after_gets_the_held_private_messages_too(make_server):
    server = make_server(Config(rate=0))
    bob, _ = resumable(server.port, "bob")
    alice, welcome = resumable(server.port, "alice")
    try:
        alice.close()
        bob.expect_event("reconnecting", name="alice")
        bob.say("/msg alice psst")
        bob.expect_event("error", code="held")
        alice, back = resumable(server.port, "alice", resume=welcome["token"])
        assert back["resumed"]
        assert alice.expect_event("private")["text"] == "psst"
    finally:
        alice.close()
        bob.close()


def test_a_server_that_stops_bounces_the_held_private_messages_before_it_goes(make_server):
    server = make_server(Config(rate=0))
    bob, _ = resumable(server.port, "bob")
    alice, _ = resumable(server.port, "alice")
    try:
        alice.close()
        bob.expect_event("reconnecting", name="alice")
        bob.say("/msg alice see you after the restart")
        bob.expect_event("error", code="held")
        server.shutdown()
        server.stop(grace=1.0)
        bounce = bob.event()
        assert bounce["code"] == "not_delivered" and "see you after the restart" in bounce["message"]
        assert "server" in bounce["message"]
        assert bob.event()["type"] == "shutdown"
    finally:
        alice.close()
        bob.close()


# --- 6. reserved names and --max-per-ip -------------------------------------------------------------------

def from_address(port: int, source: str) -> JsonClient:
    """A JSON client whose connection comes from `source` (another loopback address: another machine)."""
    client = JsonClient.__new__(JsonClient)
    client.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0))
    client._buffer, client.seen = b"", []
    return client


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS answers only 127.0.0.1 of the loopback addresses")
def test_names_kept_for_lost_connections_count_against_the_address_that_made_them(make_server):
    server = make_server(Config(max_members=5, max_per_address=3, joins_per_address=0, room_joins=0))
    refusal = None
    for number in range(5):  # connect, hello with reconnect, gone: each name is kept for 60 s
        squatter, answer = resumable(server.port, f"squat{number}")
        squatter.close()
        wait_until(lambda: not server._handlers)
        if answer["type"] != "welcome":
            refusal = answer
            break
    assert refusal is not None and refusal["code"] == "address_full", refusal
    assert "at most 3" in refusal["message"]
    assert server.room.names() == ["squat0", "squat1", "squat2"]
    newcomer = from_address(server.port, "127.0.0.2")
    try:
        assert newcomer.login("newcomer")["type"] == "welcome"  # the room is not full for everyone else
    finally:
        newcomer.close()


# --- 12. wrong-password holds and connection slots ----------------------------------------------------------

def test_a_connection_that_goes_while_its_wrong_password_is_held_frees_its_slot_and_is_read_no_further(make_server):
    server = make_server(Config(max_per_address=10), password="secret")
    for _ in range(4):  # this address has guessed before: its next wrong answers are held 8 s and more
        server.guesses.fail("127.0.0.1", time.monotonic())
    guess = Hello("mallory", password="guess").encode()
    guessers = [JsonClient(server.port) for _ in range(10)]
    for guesser in guessers[:9]:
        guesser.send(guess * 2)  # two guesses in one go, then gone
        guesser.close()
    wait_until(lambda: server.guesses.failures("127.0.0.1", time.monotonic()) == 4 + 9)
    late = guessers[9]
    late.send(guess)
    wait_until(lambda: server.guesses.failures("127.0.0.1", time.monotonic()) == 4 + 10)
    late.send(guess)  # a second guess that arrives while the first one's answer is held
    late.close()
    wait_until(lambda: not server._handlers)  # every slot free at once, not after the holds
    right = JsonClient(server.port)
    try:
        right.line()
        right.send(Hello("alice", password="secret").encode())
        assert right.event()["type"] == "welcome"
    finally:
        right.close()
    assert server.guesses.failures("127.0.0.1", time.monotonic()) == 4 + 10  # no closed connection's second guess


def test_a_line_sent_while_a_wrong_password_is_held_is_read_after_the_hold(make_server):
    server = make_server(password="secret")
    server.guesses.fail("127.0.0.1", time.monotonic())  # the next wrong answer is held 1 s
    client = JsonClient(server.port)
    try:
        client.line()
        client.send(Hello("alice", password="guess").encode())
        wait_until(lambda: server.guesses.failures("127.0.0.1", time.monotonic()) == 2)
        client.send(Hello("alice", password="secret").encode())
        assert "answered after 1 s" in client.event()["message"]
        assert client.event()["type"] == "welcome"
    finally:
        client.close()
