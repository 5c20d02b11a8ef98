"""Framing: a byte stream split into UTF-8 lines of at most a given size. Pure."""

from __future__ import annotations

from dataclasses import dataclass

LINE_LIMIT = 4096  # bytes a client may send in one line, without the newline
SERVER_LINE_LIMIT = 1 << 20  # a user list or help can be long; clients still stay bounded


@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class LineTooLong:
    limit: int


@dataclass(frozen=True)
class BadEncoding:
    pass


FrameEvent = Line | LineTooLong | BadEncoding


class LineFramer:
    """Split a byte stream into UTF-8 lines of at most `limit` bytes.

    Memory stays bounded whatever the peer sends: the part of a line past the
    limit is dropped as it arrives, and reported once.
    """

    def __init__(self, limit: int = LINE_LIMIT) -> None:
        self.limit = limit
        self._pending = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[FrameEvent]:
        events: list[FrameEvent] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            if self._pending:
                piece = bytes(self._pending) + piece
                self._pending.clear()
            events.append(self._decode(piece))
        rest = data[start:]
        if rest and not self._discarding:
            # One more byte than the limit is allowed for the '\r' of a "\r\n" ending.
            if len(self._pending) + len(rest) > self.limit + 1:
                self._pending.clear()
                self._discarding = True
                events.append(LineTooLong(self.limit))
            else:
                self._pending += rest
        return events

    def _decode(self, piece: bytes) -> FrameEvent:
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if len(piece) > self.limit:
            return LineTooLong(self.limit)
        try:
            return Line(piece.decode("utf-8"))
        except UnicodeDecodeError:
            return BadEncoding()

