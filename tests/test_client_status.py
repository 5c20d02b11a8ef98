"""The console's status line: its words for the session's view."""

from __future__ import annotations

from chatroom.client.console.status import security, status_line
from chatroom.client.session import CONNECTED, NOT_ANSWERING, View


def test_the_status_says_the_state_what_waits_who_is_here_where_and_how():
    view = View("amy", ("amy", "bob"), frozenset(), CONNECTED, pending=4)
    assert status_line(view, 0, "127.0.0.1:9100", security(tls=False, insecure=False)) == \
        "connected · 4 messages pending · 2 users · 127.0.0.1:9100 · clear text"
    assert security(tls=True, insecure=False) == "TLS"
    assert security(tls=True, insecure=True) == "TLS, certificate not checked"
    quiet = View("amy", ("amy",), frozenset(), NOT_ANSWERING, pending=0)
    assert status_line(quiet, 1, "[::1]:9100", "TLS") == \
        "server not answering · 1 unread mention · 1 user · [::1]:9100 · TLS"
