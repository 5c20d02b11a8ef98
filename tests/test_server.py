"""The server for real: an ephemeral loopback port, several raw-socket clients, both modes."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient, PlainClient, wait_until, wine_limit

from chatroom import render
from chatroom.server.config import Config
from chatroom.server.main import bind_error_message, listening_port, parse_args

UNLIMITED = Config(rate=0)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def trio(clients):
    alice, bob, carol = clients(), clients(), clients()
    alice.login("alice")
    bob.login("bob")
    carol.login("carol")
    alice.expect_event("join", name="carol")
    bob.expect_event("join", name="carol")
    return alice, bob, carol


def assert_nothing_else_then(client: JsonClient, marker: str) -> None:
    """The next chat message this client gets is the marker: nothing was delivered before it."""
    event = client.expect_event("message")
    assert event["text"] == marker, event


@pytest.mark.parametrize("line", ["?", "*users", "/users", "/list", "/names"])
def test_list_users_every_dialect(trio, line):
    alice, _, _ = trio
    alice.say(line)
    assert alice.expect_event("users") == {"type": "users", "users": ["alice", "bob", "carol"], "you": "alice",
                                              "away": []}


@pytest.mark.parametrize("line", ["secret plan > bob", "@bob secret plan", "/msg bob secret plan",
                                  '/dm bob "secret plan"', "secret plan > BOB"])
def test_private_message_every_dialect(trio, line):
    alice, bob, carol = trio
    alice.say(line)
    event = bob.expect_event("private")
    assert (event["sender"], event["to"], event["text"]) == ("alice", "bob", "secret plan")
    assert alice.expect_event("private")["text"] == "secret plan"
    alice.say("marker")
    assert_nothing_else_then(carol, "marker")


@pytest.mark.parametrize("line, text", [("hello all", "hello all"), ('/bc "hello all"', "hello all"),
                                        ("5 > 3 is true", "5 > 3 is true"), ("/bc x > bob", "x > bob")])
def test_broadcast_every_dialect(trio, line, text):
    alice, bob, carol = trio
    alice.say(line)
    for client in trio:
        event = client.expect_event("message")
        assert (event["sender"], event["text"], event["action"]) == ("alice", text, False)
        assert isinstance(event["seq"], int) and isinstance(event["ts"], float)


@pytest.mark.parametrize("line", ["*help", "/help", "/?"])
def test_help_every_dialect(trio, line):
    alice, _, _ = trio
    alice.say(line)
    lines = alice.expect_event("help")["lines"]
    assert any("/msg NAME TEXT" in row for row in lines) and any("*users" in row for row in lines)


@pytest.mark.parametrize("line", ["/quit", "/exit"])
def test_quit_every_dialect(trio, line):
    alice, bob, carol = trio
    alice.say(line)
    assert alice.expect_event("bye") == {"type": "bye", "reason": "quit"}
    alice.expect_closed()
    assert bob.expect_event("leave")["reason"] == "quit"
    assert carol.expect_event("leave", name="alice")["reason"] == "quit"


def test_action_and_rename(trio):
    alice, bob, carol = trio
    alice.say("/me waves")
    event = bob.expect_event("message")
    assert (event["sender"], event["text"], event["action"]) == ("alice", "waves", True)
    alice.say("/nick Alicia")
    for client in trio:
        client.expect_event("rename", old="alice", new="Alicia")
    bob.say("/nick ALICIA")
    assert bob.expect_event("error")["code"] == "name_taken"
    carol.say("hi > alicia")
    assert alice.expect_event("private")["to"] == "Alicia"


def test_rename_is_announced_to_everyone(trio):
    alice, bob, carol = trio
    alice.say("/nick al")
    for client in trio:
        event = client.expect_event("rename")
        assert (event["old"], event["new"]) == ("alice", "al")
    alice.say("/nick bad name")
    assert "a space" in alice.expect_event("error")["message"]


def test_plain_mode_dialects(clients):
    alice, bob = clients(PlainClient), clients(PlainClient)
    assert alice.login("alice").endswith("Welcome, alice! Here now: alice. Type /help for the commands.")
    bob.login("bob")
    assert alice.expect(lambda line: "bob joined" in line)
    bob.send("hello > alice\n")
    assert alice.line().endswith("[private from bob] hello")
    assert bob.line().endswith("[private to alice] hello")
    bob.send("*users\n")
    assert [bob.line(), bob.line(), bob.line()] == ["Users here (2):", "  [1] alice", "  [2] bob (you)"]
    bob.send("/me waves\n")
    assert alice.line().endswith("* bob waves")
    bob.send("/help\n")
    assert bob.expect(lambda line: not line.endswith("waves")) == "Commands:"
    bob.send("/quit\n")
    assert bob.expect_closed()[-1] == "-- Goodbye!"
    assert alice.expect(lambda line: "bob left (quit)" in line)


def test_plain_and_json_users_chat_together(clients):
    alice, bob = clients(PlainClient), clients()
    alice.login("alice")
    bob.login("bob")
    bob.say("hi from json")
    assert alice.expect(lambda line: "<bob> hi from json" in line)
    alice.send("hi from plain\n")
    assert bob.expect_event("message", sender="alice")["text"] == "hi from plain"


def test_taken_names_are_asked_again_on_the_same_connection(clients):
    alice = clients()
    alice.login("Bob")
    bob = clients(PlainClient)
    bob.line()
    for taken, shown in [("bob", "bob"), ("BOB", "BOB"), ("ＢＯＢ", "BOB")]:
        bob.send(taken + "\n")
        assert bob.line() == f'! the username "{shown}" is taken'
        assert bob.line() == "Choose another username:"
    bob.send("bad name!\n")
    assert "a space" in bob.line()
    assert bob.line() == "Choose another username:"
    bob.send("robert\n")
    assert "Welcome, robert!" in bob.line()


def test_json_name_errors_and_retry(clients):
    alice = clients()
    alice.login("alice")
    bob = clients()
    event = bob.login("ALICE")
    assert (event["type"], event["code"]) == ("error", "name_taken")
    bob.send('{"type": "hello"}\n')
    assert bob.expect_event("error")["code"] == "bad_hello"
    bob.send('{"type":"hello","name":"x\\u001by"}\n')
    assert bob.expect_event("error")["code"] == "name_invalid"
    bob.send('{"type":"hello","name":"bob"}\n')
    assert bob.expect_event("welcome")["users"] == ["alice", "bob"]


def test_wrong_protocol_version_is_refused(clients):
    client = clients()
    client.line()
    client.send('{"type":"hello","name":"a","version":99}\n')
    assert client.event()["code"] == "unsupported_version"
    client.expect_closed()


def test_full_room_is_refused(make_server):
    server = make_server(Config(max_members=2))
    first, second, third = (JsonClient(server.port) for _ in range(3))
    try:
        first.login("a")
        second.login("b")
        refusal = third.login("c")
        assert refusal["code"] == "room_full" and "full" in refusal["message"]
        third.expect_closed()
    finally:
        for client in (first, second, third):
            client.close()


@pytest.mark.parametrize("server_config", [UNLIMITED])
def test_history_on_join_is_the_last_50_public_messages(trio, clients):
    alice, bob, _ = trio
    for number in range(55):
        alice.say(f"m{number}")
    alice.expect_event("message", text="m54")  # alice's reader has handled all 55: they are history
    bob.say("psst > alice")
    alice.expect_event("private")  # private messages are not history
    late = clients()
    assert late.login("late")["users"] == ["alice", "bob", "carol", "late"]
    history = [late.event() for _ in range(50)]
    assert [event["text"] for event in history] == [f"m{number}" for number in range(5, 55)]
    assert all(event["earlier"] for event in history)
    alice.say("now")
    event = late.event()
    assert (event["text"], event["earlier"]) == ("now", False)


def test_unknown_user_and_command_errors_are_not_broadcast(trio):
    alice, bob, carol = trio
    alice.say("the plan > bbo")
    error = alice.expect_event("error")
    assert error["code"] == "unknown_user" and '"bbo"' in error["message"]
    alice.say("/frobnicate")
    assert alice.expect_event("error")["code"] == "unknown_command"
    alice.say("/msg bob")
    assert alice.expect_event("error")["code"] == "missing_argument"
    alice.say("marker")
    assert_nothing_else_then(bob, "marker")
    assert_nothing_else_then(carol, "marker")


def test_oversized_and_invalid_utf8_lines_are_errors(trio):
    alice, bob, _ = trio
    alice.send(b"x" * 5000 + b"\n")
    assert alice.expect_event("error")["code"] == "line_too_long"
    alice.send(b"\xc3\x28 broken\n")
    assert alice.expect_event("error")["code"] == "bad_encoding"
    alice.send(b"y" * 4096 + b"\n")
    assert len(bob.expect_event("message")["text"]) == 4096
    alice.say("still here")
    assert bob.expect_event("message")["text"] == "still here"


def test_control_characters_never_reach_others(trio, clients):
    alice, bob, _ = trio
    alice.say("\x1b[2J\x1b]0;title\x07clear \u202eevil \x9bx")
    assert bob.expect_event("message")["text"] == "[2J]0;titleclear evil x"
    plain = clients(PlainClient)
    plain.login("dave")
    alice.say("\x1b[31mred")
    assert plain.expect(lambda line: "red" in line).endswith("<alice> [31mred")


def test_unicode_passes_untouched(trio):
    alice, bob, _ = trio
    text = "Grüße 你好 👋🏽 مرحبا"
    alice.say(text)
    assert bob.expect_event("message")["text"] == text


@pytest.mark.parametrize("how", [
    "quit", "close", pytest.param("reset", marks=wine_limit("Wine reads a TCP reset as the end of the stream"))])
def test_cleanup_hook_runs_exactly_once(make_server, caplog, how):
    caplog.set_level(logging.INFO, logger="chatroom.server")
    server = make_server()
    watcher, leaver = JsonClient(server.port), JsonClient(server.port)
    try:
        watcher.login("watcher")
        leaver.login("leaver")
        if how == "quit":
            leaver.say("/quit")
            leaver.expect_closed()
        elif how == "reset":
            leaver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            leaver.close()
        else:
            leaver.close()
        left = watcher.expect_event("leave", name="leaver")
        assert left["reason"] == {"quit": "quit", "close": "closed", "reset": "lost"}[how]
        watcher.say("/users")
        assert watcher.expect_event("users")["users"] == ["watcher"]
        def leaves() -> list[str]:
            return [record.getMessage() for record in caplog.records if " left (" in record.getMessage()]

        wait_until(leaves)
        assert leaves() == [f"leaver left ({render.leave_reason(left['reason'])})"]
        again = JsonClient(server.port)
        assert again.login("leaver")["type"] == "welcome"
        again.close()
        watcher.expect_event("leave", name="leaver")
    finally:
        watcher.close()
        leaver.close()


def test_a_client_that_never_reads_is_dropped_and_the_others_keep_receiving(make_server):
    server = make_server(Config(rate=0, sendq=64 * 1024, slow_after=0.5))
    alice, bob = JsonClient(server.port), JsonClient(server.port)
    sleeper = socket.socket()
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.connect(("127.0.0.1", server.port))
    try:
        alice.login("alice")
        bob.login("bob")
        sleeper.sendall(b"sleeper\n")
        alice.expect_event("join", name="sleeper")
        line = "z" * 1000
        bursts = 0
        # The kernel buffers a few MB on loopback before the server's outbox fills.
        while "sleeper" in server.room.names() and bursts < 1000:
            alice.send("".join(f"{bursts}.{number} {line}\n" for number in range(20)))
            for number in range(20):
                for reader in (bob, alice):
                    assert reader.expect_event("message")["text"].startswith(f"{bursts}.{number} ")
            bursts += 1
        alice.say("after")
        assert bob.expect_event("message")["text"] == "after"
        assert bursts < 1000, bursts
        print("bursts", bursts)
        leaves = [json.loads(line) for line in bob.seen if '"type":"leave"' in line]
        assert [(event["name"], event["reason"]) for event in leaves] == [("sleeper", "slow")]
    finally:
        for closable in (alice, bob, sleeper):
            closable.close()


@pytest.mark.parametrize("server_config", [UNLIMITED])
def test_every_member_sees_one_order(trio):
    senders = trio

    def chat(client, name):
        for number in range(100):
            client.say(f"{name}{number}")

    threads = [threading.Thread(target=chat, args=(client, name)) for client, name in zip(senders, "abc")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    orders = []
    for client in senders:
        orders.append([client.expect_event("message")["seq"] for _ in range(300)])
    assert orders[0] == orders[1] == orders[2] == sorted(orders[0])


# --- the real process -------------------------------------------------------------

def start_server_process(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert "; connect with: " in first, first + proc.stderr.read()
    return proc, listening_port(first)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals; Windows Ctrl+C is covered by the CI workflow")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_server_and_tells_every_client(sig):
    proc, port = start_server_process("0")
    json_client, plain_client = JsonClient(port), PlainClient(port)
    try:
        json_client.login("alice")
        plain_client.login("bob")
        json_client.expect_event("join", name="bob")
        proc.send_signal(sig)
        assert json_client.expect_event("shutdown")["message"] == "the server is shutting down"
        assert plain_client.expect(lambda line: "shutting down" in line)
        json_client.expect_closed()
        plain_client.expect_closed()
        assert proc.wait(timeout=TIMEOUT) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        with proc:  # closes its pipes
            proc.kill()
        json_client.close()
        plain_client.close()


def test_port_in_use_is_one_clear_line_and_status_2():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "server.py"), str(port)], cwd=ROOT,
                                capture_output=True, text=True, timeout=TIMEOUT * 2)
    finally:
        taken.close()
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr and "8080" in result.stderr


def test_privileged_port_message_suggests_another_port():
    message = bind_error_message(OSError(errno.EACCES, "Permission denied"), "127.0.0.1", 80, platform="darwin")
    assert "administrator" in message and "8080" in message


@pytest.mark.parametrize("argv, host, port", [
    ([], "127.0.0.1", 65432), (["80"], "127.0.0.1", 80), (["0.0.0.0", "8080"], "0.0.0.0", 8080),
    (["--host", "::1", "--port", "9"], "::1", 9), (["example"], "example", 65432),
])
def test_command_line_forms(argv, host, port):
    args = parse_args(argv)
    assert (args.host, args.port) == (host, port)


@pytest.mark.parametrize("argv", [["70000"], ["a", "b", "c"], ["--max-clients", "0"], ["1", "--port", "2"]])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_explains_every_option():
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--help"], capture_output=True, text=True,
                            timeout=TIMEOUT * 2)
    assert result.returncode == 0
    for option in ["--host", "--port", "--max-clients", "--sendq", "--verbose", "--quiet"]:
        assert option in result.stdout


def test_nick_to_your_own_name_is_not_announced(trio):
    alice, bob, carol = trio
    alice.say("/nick alice")
    assert alice.expect_event("error")["code"] == "same_name"
    alice.say("/nick Alice")  # a new spelling is news
    event = bob.expect_event("rename")
    assert (event["old"], event["new"]) == ("alice", "Alice")
    assert not [line for line in bob.seen if '"new":"alice"' in line]


# --- multi-line messages and text that looks like a command ------------------------------------

def test_a_pasted_block_is_one_message_verbatim_in_both_modes(clients):
    sender, json_reader, plain_reader = clients(), clients(), clients(PlainClient)
    sender.login("alice")
    json_reader.login("bob")
    plain_reader.login("carol")
    sender.expect_event("join", name="carol")
    block = "@dataclass\nclass A:\n    x: int = 1  # if a > b\n/quit\n\x1b[31m/* c */"
    sender.send(json.dumps({"type": "say", "text": block}) + "\n")
    expected = "@dataclass\nclass A:\n    x: int = 1  # if a > b\n/quit\n[31m/* c */"
    assert json_reader.expect_event("message")["text"] == expected
    assert plain_reader.expect(lambda line: "<alice>" in line).endswith("<alice> @dataclass")
    indent = "  "  # plain text indents a block's further lines by two spaces (few bytes: see codecs.py)
    assert [plain_reader.line() for _ in range(4)] == [indent + "class A:", indent + "    x: int = 1  # if a > b",
                                                        indent + "/quit", indent + "[31m/* c */"]
    assert sender.expect_event("message")["sender"] == "alice"  # and alice is still here: /quit was text
    sender.send('{"type": "say", "text": "\\n \\n"}\n')
    assert sender.expect_event("error")["code"] == "bad_message"


def test_a_line_that_is_no_private_message_says_how_to_send_it_as_text(clients):
    alice = clients()
    alice.login("alice")
    alice.say("run: git log > out.txt")
    message = alice.expect_event("error")["message"]
    assert message.endswith('(to send the line as text: /bc "run: git log > out.txt")')
    alice.say('/bc "she said \\"hi\\""')
    assert alice.expect_event("message")["text"] == 'she said "hi"'
