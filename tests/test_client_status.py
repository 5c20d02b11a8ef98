"""The console's status line: its words for the session's view."""

from __future__ import annotations

from chatroom.client.console.status import security, status_line
from chatroom.client.session import CONNECTED, NOT_ANSWERING, RECONNECTING, View


def test_the_status_says_who_i_am_the_state_what_waits_who_is_here_where_and_how():
    view = View("amy", ("amy", "bob"), frozenset(), CONNECTED, pending=4)
    assert status_line(view, {}, "127.0.0.1:9100", security(tls=False, insecure=False)) == \
        "amy · connected · 4 messages pending · 2 users · 127.0.0.1:9100 · clear text"
    assert security(tls=True, insecure=False) == "TLS"
    assert security(tls=True, insecure=True) == "TLS, certificate not checked"
    quiet = View("amy", ("amy",), frozenset(), NOT_ANSWERING, pending=0)
    assert status_line(quiet, {"mention": 1}, "[::1]:9100", "TLS") == \
        "amy · server not answering · 1 unread mention · 1 user · [::1]:9100 · TLS"


def test_private_messages_are_counted_as_private_and_no_user_count_is_claimed_while_reconnecting():
    view = View("amy", ("amy", "bob", "cy"), frozenset(), RECONNECTING, pending=1)
    assert status_line(view, {"private": 2, "mention": 0}, "h:1", "TLS") == \
        "amy · reconnecting · 1 message pending · 2 unread private messages · h:1 · TLS"
