"""What a client says: the greeting it reads, its hello (which selects JSON-lines mode) and a structured
message line; parsed here with a clear ProtocolError for anything else. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .events import PROTOCOL_VERSION, ProtocolError
from .jsonline import parse_json
from .text import is_unicode, sanitize_lines

# The greeting is read by people (nc, telnet) and by the client, which knows a chatroom server of its protocol
# version by its start and shows the rest, the question.
BANNER_PREFIX = f"Welcome to chatroom (protocol {PROTOCOL_VERSION})! "
BANNER = BANNER_PREFIX + "Choose a username (1-20 letters, digits, _ - .):"
NAME_PROMPT = "Choose another username:"


@dataclass(frozen=True)
class Hello:
    """The structured first line that selects JSON-lines mode."""
    name: str
    version: int = PROTOCOL_VERSION
    password: str | None = None
    reconnect: bool = False  # this client reconnects by itself: give it a token and keep its name
    resume: str | None = None  # the token of the welcome, to take up a session after a lost connection
    after: int | None = None  # the last event id seen: the server replays what came after it
    epoch: str | None = None  # the welcome's epoch that `after` belongs to

    def encode(self) -> bytes:
        data: dict[str, Any] = {"type": "hello", "name": self.name, "version": self.version}
        if self.reconnect:
            data["reconnect"] = True
        for optional in ("password", "resume", "after", "epoch"):
            if getattr(self, optional) is not None:
                data[optional] = getattr(self, optional)
        return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def is_hello(line: str) -> bool:
    return line.lstrip().startswith("{")


def parse_hello(line: str) -> Hello:
    try:
        data = parse_json(line)
    except ValueError:  # not JSON, nested too deep, a number past int's digit limit
        raise ProtocolError("the hello is not valid JSON") from None
    if not isinstance(data, dict) or data.get("type") != "hello":
        raise ProtocolError('the hello must be a JSON object with "type": "hello"')
    name, version = data.get("name"), data.get("version", PROTOCOL_VERSION)
    password = data.get("password")
    if not isinstance(name, str):
        raise ProtocolError('the hello needs a "name" string')
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError('"version" must be a whole number')
    if password is not None and not isinstance(password, str):
        raise ProtocolError('"password" must be a string')
    resume, after, reconnect = data.get("resume"), data.get("after"), data.get("reconnect", False)
    if not isinstance(reconnect, bool):
        raise ProtocolError('"reconnect" must be true or false')
    if resume is not None and (not isinstance(resume, str) or len(resume) > 200):
        raise ProtocolError('"resume" must be the token of a welcome')
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise ProtocolError('"after" must be an event id (a whole number from 0)')
    epoch = data.get("epoch")
    if epoch is not None and (not isinstance(epoch, str) or len(epoch) > 200 or not is_unicode(epoch)):
        raise ProtocolError('"epoch" must be the epoch of a welcome')
    if not is_unicode(name) or not is_unicode(password or "") or not is_unicode(resume or ""):
        raise ProtocolError("the hello holds a lone surrogate, which is not Unicode text")
    return Hello(name=name, version=version, password=password, reconnect=reconnect, resume=resume, after=after,
                 epoch=epoch)


def json_object(line: str) -> dict[str, Any] | None:
    """The JSON object a line holds, or None when it holds no object (it is typed text like any other)."""
    if not line.startswith("{"):
        return None
    try:
        data = parse_json(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_structured(line: str) -> str | None:
    """The text of a structured message line (JSON mode, after login): `{"type": "say", "text": "..."}`,
    or None when the line is not one (then it is typed text like any other).

    It carries what one line cannot: a pasted block of several lines, sent verbatim, never a command."""
    data = json_object(line)
    if data is None or data.get("type") != "say":
        return None
    if not isinstance(data.get("text"), str):
        raise ProtocolError('a structured message is {"type": "say", "text": "..."}')
    text = sanitize_lines(data["text"].replace("\r\n", "\n")).strip("\n")
    if not is_unicode(text):
        raise ProtocolError("the message holds a lone surrogate, which is not Unicode text")
    if not text.strip():
        raise ProtocolError("the message is empty")
    return text
