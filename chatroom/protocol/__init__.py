"""The wire, as h11 splits it: `events` (what the server sends), `framing` (bytes into lines), `hello` (what a
client says first, and a structured message), `text` (what is safe to show), `files` (sending files: their
events, offers and data connections). Pure: the callers do the I/O;
`chatroom.codecs` turns events into each mode's bytes and back.

The names most modules need are importable from here."""

from .events import (
    EVENT_TYPES, LEAVE_REASONS, PROTOCOL_VERSION, UNCHOSEN_ENDINGS, Bye, CaughtUp, Error, Event, Found, Help, Joined,
    Left, Message, Ping, Private, ProtocolError, Reconnecting, Renamed, Shutdown, Users, Welcome,
)
from .files import (
    FILE_EVENTS, NEWS, RECEIVED, DataReady, DataRequest, DataStored, Done, FileList, FileNote, FileShared, FileSlot,
    Offer, parse_control, parse_data_request,
)
from .framing import LINE_LIMIT, SERVER_LINE_LIMIT, BadEncoding, FrameEvent, Line, LineFramer, LineTooLong
from .hello import BANNER, BANNER_PREFIX, NAME_PROMPT, Hello, is_hello, parse_hello, parse_structured
from .text import is_unicode, sanitize, sanitize_lines

EVENT_TYPES.update({cls.TYPE: cls for cls in FILE_EVENTS})  # the file events are decoded like any other

__all__ = [
    "BANNER", "BANNER_PREFIX", "EVENT_TYPES", "LEAVE_REASONS", "LINE_LIMIT", "NAME_PROMPT", "PROTOCOL_VERSION",
    "SERVER_LINE_LIMIT", "UNCHOSEN_ENDINGS", "BadEncoding", "Bye", "CaughtUp", "Error", "Event", "Found",
    "FrameEvent", "Help", "Hello", "Joined", "Left", "Line", "LineFramer", "LineTooLong", "Message", "Ping",
    "Private", "ProtocolError", "Reconnecting", "Renamed", "Shutdown", "Users", "Welcome", "is_hello",
    "is_unicode", "parse_hello", "parse_structured", "sanitize", "sanitize_lines",
    # sending files (files.py)
    "FILE_EVENTS", "NEWS", "RECEIVED", "DataReady", "DataRequest", "DataStored", "Done", "FileList", "FileNote",
    "FileShared", "FileSlot", "Offer", "parse_control", "parse_data_request",
]
