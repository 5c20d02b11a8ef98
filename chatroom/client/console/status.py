"""The status line under the chat (and the window's status bar): who I am, the session's state, what waits,
what is unread, who is here, where and how. Pure.

Most important first, so a narrow terminal cuts the least useful part.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...render import Attention
from ..session import RECONNECTING, View


def security(tls: bool, insecure: bool) -> str:
    if not tls:
        return "clear text"
    return "TLS, certificate not checked" if insecure else "TLS"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def status_line(view: View, unread: Mapping[Attention, int], where: str, security: str) -> str:
    """`unread`: the mentions and private messages since the user last looked; `where`: host:port. While
    reconnecting nobody knows who is here: no count."""
    parts = [view.me, view.state]
    if view.pending:
        parts.append(f"{_plural(view.pending, 'message')} pending")
    if unread.get("mention"):
        parts.append(_plural(unread["mention"], "unread mention"))
    if unread.get("private"):
        parts.append(_plural(unread["private"], "unread private message"))
    if view.state != RECONNECTING:
        parts.append(_plural(len(view.users), "user"))
    parts += [where, security]
    return " · ".join(parts)
