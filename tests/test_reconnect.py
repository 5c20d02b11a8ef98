"""Sessions that survive, from the client's side: the console client (in a pty) loses its connection to a real
server process mid-chat and comes back by itself, with exactly what it missed, its name and its typed line;
the loop does the same against the in-process server, compared by event ids.

A relay in front of the server cuts the client's connections and keeps it out while others talk, so what it
misses does not depend on timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient, in_file, wait_until
from fakeserver import Relay
from server_process import ServerProcess

from chatroom.client.connection import connect, dialer, login
from chatroom.client.loop import Background, Ended, Loop, Received
from chatroom.client.session import OK, Notice, Timing
from chatroom.protocol import CaughtUp, Hello, Message
from chatroom.render import render

pytest.importorskip("termios", reason="needs a pseudo-terminal (POSIX)")
from client_process import PtyClient  # noqa: E402


@pytest.fixture
def room(tmp_path: Path) -> Iterator[tuple[ServerProcess, Relay]]:
    server = ServerProcess(tmp_path / "room.sqlite3")
    relay = Relay(server.port)
    yield server, relay
    relay.close()
    server.stop()


@pytest.fixture
def alice(room) -> Iterator[PtyClient]:
    client = PtyClient(room[1].port, "alice")
    client.shows("Welcome, alice")
    yield client
    client.close()


def talker(port: int, name: str) -> JsonClient:
    client = JsonClient(port)
    assert client.login(name)["type"] == "welcome"
    return client


def say(client: JsonClient, *texts: str) -> None:
    """Say each text and wait for its echo, so the server has it."""
    for text in texts:
        client.say(text)
        client.expect_event("message", text=text)


def assert_caught_up_once(alice: PtyClient, missed: list[str], count: int) -> None:
    alice.shows(f"— {count} messages while you were away —")
    screen = alice.text()
    rows = [screen.index(f"<bob> {text}" if text.startswith("m") else f"<carol> {text}") for text in missed]
    assert rows == sorted(rows) and rows[-1] < screen.index("while you were away")
    for text in missed:
        assert screen.count(f"> {text}") == 1, screen


def test_a_cut_connection_comes_back_by_itself_with_what_was_missed_its_name_and_its_typed_line(room, alice):
    server, relay = room
    bob = talker(server.port, "bob")
    try:
        say(bob, "m0")
        alice.shows("<bob> m0")
        alice.type("half-")
        relay.hold()
        relay.cut()
        alice.shows("-- connection lost; reconnecting in ")
        assert "Ctrl+C to quit" in alice.text()
        bob.expect_event("reconnecting", name="alice")
        say(bob, "m1", "m2")
        alice.type("\x15queued while away\rtyped")  # Ctrl+U, a line for later, and one being typed
        alice.until(lambda client: client.input_line() == "> typed")
        relay.release()
        alice.shows("-- reconnected", timeout=TIMEOUT * 2)  # attempts refused while held wait 1, 2, 4 s
        alice.shows("Welcome back, alice!")
        assert_caught_up_once(alice, ["m1", "m2"], 2)
        assert bob.expect_event("join", name="alice")["back"] is True
        assert bob.expect_event("message", sender="alice")["text"] == "queued while away"
        alice.until(lambda client: client.input_line() == "> typed")
        assert alice.text().count("<bob> m0") == 1
        assert "alice is reconnecting" not in alice.text()  # my own absence, replayed, is not news to me
    finally:
        bob.close()


def test_after_a_kill_9_and_a_restart_the_client_comes_back_and_catches_up(room, alice):
    server, relay = room
    bob = talker(server.port, "bob")
    say(bob, "m0")
    alice.shows("<bob> m0")
    # m0 and alice's resume token on disk (a kill within the ~100 ms before a commit may lose them, as
    # docs/security.md says).
    wait_until(lambda: in_file(server.history, "SELECT count(*) FROM events WHERE text = 'm0'") == 1
               and in_file(server.history, "SELECT count(*) FROM tokens WHERE name = 'alice'") == 1)
    bob.close()
    alice.type("still typing")
    relay.hold()
    server.kill()
    alice.shows("-- connection lost; reconnecting in ")
    server.start()
    carol = talker(server.port, "carol")
    try:
        say(carol, "after 1", "after 2")
        relay.release()
        alice.shows("-- reconnected", timeout=TIMEOUT * 2)  # attempts refused while held wait 1, 2, 4 s
        assert_caught_up_once(alice, ["after 1", "after 2"], 2)
        assert "Welcome back, alice!" in alice.text()  # the restarted server kept the name for its owner
        assert carol.expect_event("join", name="alice")["back"] is True
        alice.until(lambda client: client.input_line() == "> still typing")
        assert alice.text().count("<bob> m0") == 1
    finally:
        carol.close()


def test_with_no_reconnect_a_lost_connection_ends_the_client_with_status_3(room):
    client = PtyClient(room[1].port, "amy", "--no-reconnect")
    try:
        client.shows("Welcome, amy")
        room[1].cut()
        status, _ = client.finish()
        assert status == 3 and "Connection lost" in client.text()
    finally:
        client.close()


def test_ctrl_c_while_waiting_to_reconnect_quits_with_status_0(room, alice):
    server, relay = room
    relay.hold()
    relay.cut()
    alice.shows("-- connection lost; reconnecting in ")
    alice.type("\x03")
    status, _ = alice.finish()
    assert status == 0


def test_the_loop_comes_back_to_a_real_server_with_exactly_the_missed_ids_and_the_held_private(server, clients):
    relay = Relay(server.port)
    hello = Hello("amy", reconnect=True)
    connection = connect("127.0.0.1", relay.port, hello)
    welcome = login(connection, hello)
    background = Background(Loop(connection, welcome, dialer("127.0.0.1", relay.port, None)))
    background.start()

    def next_item() -> object:
        """The next event shown, or notice, past the session's views and the lines of a new day."""
        while not isinstance(item := background.inbox.get(timeout=TIMEOUT * 2), (Received, Notice)) or \
                getattr(item, "role", "") == "day":
            pass
        return item.event if isinstance(item, Received) else item

    try:
        assert isinstance(next_item(), type(welcome))
        bob = clients()
        bob.login("bob")
        assert next_item().name == "bob"  # joined: amy has seen an id
        relay.hold()
        relay.cut()
        assert next_item().text.startswith("-- connection lost")
        bob.expect_event("reconnecting", name="amy")
        missed = []
        for text in ["m1", "m2"]:
            bob.say(text)
            missed.append(bob.expect_event("message", text=text)["seq"])
        bob.say("/msg amy psst")
        missed.append(bob.expect_event("private", text="psst")["seq"])
        assert bob.expect_event("error")["code"] == "held"
        relay.release()
        assert next_item() == Notice("-- reconnected")
        assert next_item().resumed is True
        replayed = []
        while not isinstance(item := next_item(), CaughtUp):
            replayed.append(item.seq)
        assert replayed == missed and (item.count, item.missing) == (3, 0)
        background.send("thanks")
        assert bob.expect_event("message", sender="amy")["text"] == "thanks"
    finally:
        background.quit()
        background.join(TIMEOUT)
        relay.close()
    while not isinstance(item := background.inbox.get(timeout=TIMEOUT), Ended):
        pass
    assert item == Ended(OK)


def test_while_reconnecting_the_status_claims_no_user_count_and_enter_on_an_empty_line_tries_at_once(room, alice):
    server, relay = room
    relay.hold()
    relay.cut()
    alice.shows("-- connection lost; reconnecting in ")
    status = f"alice · reconnecting · 127.0.0.1:{relay.port} · clear text"
    alice.until(lambda client: client.screen.display[client.screen.cursor.y - 1].rstrip() == status)
    relay.release()
    alice.type("\r")
    alice.shows("-- reconnecting now")
    alice.shows("-- reconnected")


def test_lines_queued_by_one_who_came_back_first_reach_one_who_comes_back_later_as_conversation(server):
    """After a restart all clients reconnect, each in its own time: what the first says, the others get in their
    replay, which the server marks `earlier`; it is no history from before they came, so no "(earlier)"."""
    relays = {name: Relay(server.port) for name in ("amy", "bob")}
    loops: dict[str, Background] = {}
    try:
        for name, relay in relays.items():
            hello = Hello(name, reconnect=True)
            connection = connect("127.0.0.1", relay.port, hello)
            loops[name] = Background(Loop(connection, login(connection, hello), dialer("127.0.0.1", relay.port, None),
                                          timing=Timing(first_delay=0.05, most_delay=0.2)))
            loops[name].start()
        amy, bob = loops["amy"], loops["bob"]
        until_item(amy, lambda item: isinstance(item, Received) and getattr(item.event, "name", "") == "bob")
        for relay in relays.values():
            relay.hold()
            relay.cut()
        until_item(amy, lambda item: isinstance(item, Notice) and item.text.startswith("-- connection lost"))
        amy.send("queued while away")
        relays["amy"].release()
        until_item(amy, lambda item: isinstance(item, Received) and getattr(item.event, "text", "") == "queued while "
                   "away" and not item.event.earlier)  # its echo: the server has it
        relays["bob"].release()
        replayed = until_item(bob, lambda item: isinstance(item, Received) and isinstance(item.event, Message))
        assert replayed.event.text == "queued while away" and not replayed.event.earlier
        assert "(earlier)" not in render(replayed.event, "bob")
    finally:
        for background in loops.values():
            background.quit()
            background.join(TIMEOUT)
        for relay in relays.values():
            relay.close()


def until_item(background: Background, wanted: Callable[[object], bool]) -> object:
    while not wanted(item := background.inbox.get(timeout=TIMEOUT * 2)):
        pass
    return item
