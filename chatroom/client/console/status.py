"""The status line under the chat: the session's state, what waits, who is here, where and how. Pure.

Most important first, so a narrow terminal cuts the least useful part.
"""

from __future__ import annotations

from ..session import View


def security(tls: bool, insecure: bool) -> str:
    if not tls:
        return "clear text"
    return "TLS, certificate not checked" if insecure else "TLS"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def status_line(view: View, mentions: int, where: str, security: str) -> str:
    """`mentions`: unread since the user last pressed a key; `where`: host:port."""
    parts = [view.state]
    if view.pending:
        parts.append(f"{_plural(view.pending, 'message')} pending")
    if mentions:
        parts.append(_plural(mentions, "unread mention"))
    parts += [_plural(len(view.users), "user"), where, security]
    return " · ".join(parts)
