"""The status line under the chat: where we are connected, how, who is here, what waits. Pure.

`Status` holds the facts the front end learns; `text()` says them in one line, most important first, so a
narrow terminal cuts the least useful part.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import names
from ..commands import Command, parse
from ..protocol import Message

PUBLIC = ("say", "me")  # what the server echoes to its sender


def security(tls: bool, insecure: bool) -> str:
    if not tls:
        return "clear text"
    return "TLS, certificate not checked" if insecure else "TLS"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class Status:
    where: str  # host:port
    security: str
    state: str = "connected"
    users: int = 0
    mentions: int = 0  # unread: since the user last pressed a key
    pending: int = 0  # public messages sent but not echoed back by the server yet

    def sent(self, line: str, verbatim: bool = False) -> None:
        """A line went to the server: a public message is pending until its echo."""
        command = None if verbatim else parse(line)
        if verbatim or (isinstance(command, Command) and command.kind in PUBLIC):
            self.pending += 1

    def echoed(self, event: Message, me: str) -> None:
        if not event.earlier and self.pending and names.key(event.sender) == names.key(me):
            self.pending -= 1

    def text(self) -> str:
        parts = [self.state]
        if self.pending:
            parts.append(f"{_plural(self.pending, 'message')} pending")
        if self.mentions:
            parts.append(_plural(self.mentions, "unread mention"))
        parts += [_plural(self.users, "user"), self.where, self.security]
        return " · ".join(parts)
