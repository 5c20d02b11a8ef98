"""History, search and grace under attack (issue #18): no member can freeze, flood or squat the room.

One section per point of the issue, each against a real server on loopback (a server process where a restart
or a kill is part of it)."""

from __future__ import annotations

import pytest
from conftest import PlainClient

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
