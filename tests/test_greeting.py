"""The server's first line greets a person (nc, telnet) in words, and still tells the client what it is."""

from __future__ import annotations

import socket
import threading

import pytest
from conftest import RawClient

from chatroom.client import connection
from chatroom.protocol import PROTOCOL_VERSION


def test_nc_is_greeted_in_words_that_name_the_protocol_and_its_version(server):
    person = RawClient(server.port)
    try:
        greeting = person.line()
    finally:
        person.close()
    assert greeting == f"Welcome to chatroom (protocol {PROTOCOL_VERSION})! Choose a username (1-20 letters, " \
                       "digits, _ - .):"
    assert not greeting.startswith("chatroom/")  # no protocol tag a person has to read past


def test_the_client_knows_a_chatroom_server_by_its_greeting_and_shows_the_question(server):
    link = connection.connect("127.0.0.1", server.port, None)
    try:
        assert link.banner == "Choose a username (1-20 letters, digits, _ - .):"
    finally:
        link.close()


@pytest.mark.parametrize("first_line", [b"SSH-2.0-OpenSSH_9.2\r\n", b"Welcome to chatroom (protocol 2)! Hi:\n"])
def test_another_server_or_protocol_version_is_not_taken_for_this_one(first_line):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def greet() -> None:
            with listener.accept()[0] as conn:
                conn.sendall(first_line)
                conn.recv(1)

        thread = threading.Thread(target=greet, daemon=True)
        thread.start()
        with pytest.raises(connection.ClientError, match="is not a chatroom server"):
            connection.connect("127.0.0.1", listener.getsockname()[1], None)
        thread.join(5)
