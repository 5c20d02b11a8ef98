"""Sending files, on the wire: the events about shared files and transfers, what a client says to offer a file
and to end its upload (`offer`, `done`), and the first line of a data connection. Pure.

The control messages travel on the chat connection; a file's bytes travel on a data connection of their own to
the same port, which names its transfer in its first line (docs/protocol.md, "Sending files").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from .events import Event, ProtocolError, _now
from .hello import json_object
from .text import is_unicode

REF_LENGTH = 40  # the longest reference a client may give its offer
TOKEN_LENGTH = 100  # a data connection's token is shorter (server tokens are 32 characters)
SHA256 = re.compile(r"[0-9a-f]{64}")

Direction = Literal["upload", "download"]


@dataclass(frozen=True)
class FileShared(Event):
    """A file kept by the server for everybody (`to` None) or for one member: the share notice. `id` is the
    number people type (`/get 7`); `expires` (Unix seconds) is when the server deletes it."""
    TYPE = "file"
    seq: int
    id: int
    sender: str
    name: str
    size: int
    sha256: str
    to: str | None = None
    expires: float = 0.0
    ts: float = field(default_factory=_now)


@dataclass(frozen=True)
class FileSlot(Event):
    """The server's yes to an offer (an upload: `ref` is the offer's) or to `/get` (a download, with the
    file's `name`, `size`, `sha256` and `sender`): the `token` a data connection names, and for an upload
    the `offset` the server holds already."""
    TYPE = "slot"
    id: int
    token: str
    direction: str
    ref: str = ""
    offset: int = 0
    name: str = ""
    size: int = 0
    sha256: str = ""
    sender: str = ""


@dataclass(frozen=True)
class FileList(Event):
    """The answer to /files: what is shared with you and still kept, oldest first (each a `file` object)."""
    TYPE = "files"
    files: list[FileShared]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "files": [shared.to_dict() for shared in self.files]}


@dataclass(frozen=True)
class FileNote(Event):
    """About one transfer or shared file (`id`; for a refused offer, its `ref`): a refusal, or how it ended.
    `code` is stable (docs/protocol.md); `limit` is the maximum a `file_too_large` broke, `until` (Unix
    seconds) when a `quota_exceeded` frees up (0: unknown)."""
    TYPE = "file_note"
    code: str
    message: str
    id: int = 0
    ref: str = ""
    limit: int = 0
    until: float = 0.0


@dataclass(frozen=True)
class DataReady(Event):
    """A data connection's answer to its first line: the bytes flow from `offset` on (`size` in all)."""
    TYPE = "ready"
    offset: int
    size: int


@dataclass(frozen=True)
class DataStored(Event):
    """After an upload's last byte, on its data connection: the server holds all `size` bytes."""
    TYPE = "stored"
    size: int


# What a downloader says on its data connection once it has every byte: the download is over (its token spent,
# a private file's sender told). Without it, the bytes may not have arrived, and the token stays good to resume.
RECEIVED = b'{"type": "received"}'

FILE_EVENTS: tuple[type[Event], ...] = (FileShared, FileSlot, FileList, FileNote, DataReady, DataStored)

# The codes of a FileNote that are news rather than trouble: shown as notices, not as errors. Every other note
# that names a transfer (its id, or its offer's ref) ends it, and "received" tells a sender, whose upload is over.
NEWS = ("received", "declined", "cancelled")


# --- what a client says ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    """`{"type": "offer", "ref": R, "name": N, "size": S, "to": NAME}`: I want to share a file (with `to`
    alone, or everybody when it is null or left out)."""
    ref: str
    name: str
    size: int
    to: str | None = None

    def encode(self) -> str:
        return json.dumps({"type": "offer", "ref": self.ref, "name": self.name, "size": self.size, "to": self.to},
                          ensure_ascii=False)


@dataclass(frozen=True)
class Done:
    """`{"type": "done", "id": N, "sha256": HEX}`: my upload's bytes are all sent; this is their SHA-256."""
    id: int
    sha256: str

    def encode(self) -> str:
        return json.dumps({"type": "done", "id": self.id, "sha256": self.sha256})


Control = Offer | Done


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_control(line: str) -> Control | None:
    """An `offer` or `done` line (JSON mode, after login); None for any other line. A malformed one is a
    ProtocolError saying what is wrong."""
    data = json_object(line)
    if data is None or data.get("type") not in ("offer", "done"):
        return None
    if data["type"] == "done":
        if not _whole(data.get("id")) or not isinstance(data.get("sha256"), str) \
                or not SHA256.fullmatch(data["sha256"]):
            raise ProtocolError('a done is {"type": "done", "id": N, "sha256": "64 hex digits"}')
        return Done(data["id"], data["sha256"])
    ref, name, size, to = data.get("ref", ""), data.get("name"), data.get("size"), data.get("to")
    if not isinstance(ref, str) or len(ref) > REF_LENGTH:
        raise ProtocolError(f"an offer's ref is a string of at most {REF_LENGTH} characters")
    if not isinstance(name, str) or not name:
        raise ProtocolError("an offer needs the file's name")
    if not _whole(size) or size < 0:
        raise ProtocolError("an offer's size is a whole number of bytes")
    if to is not None and not isinstance(to, str):
        raise ProtocolError("an offer's to is a username or null")
    if not is_unicode(name) or not is_unicode(ref) or not is_unicode(to or ""):
        raise ProtocolError("the offer holds a lone surrogate, which is not Unicode text")
    return Offer(ref, name, size, to or None)


# --- a data connection's first line ----------------------------------------------------------------------

@dataclass(frozen=True)
class DataRequest:
    """`{"type": "upload" | "download", "token": T, "offset": N}`: this connection carries the bytes of the
    transfer `token` names, from `offset` on (an upload's offset is the server's to say: it answers `ready`
    with the offset it holds, whatever was asked)."""
    direction: Direction
    token: str
    offset: int = 0

    def encode(self) -> bytes:
        return json.dumps({"type": self.direction, "token": self.token, "offset": self.offset}).encode() + b"\n"


def parse_data_request(line: str) -> DataRequest | None:
    """The first line of a data connection, or None when the line is anything else (a name, a hello)."""
    data = json_object(line)
    if data is None or data.get("type") not in ("upload", "download"):
        return None
    token, offset = data.get("token"), data.get("offset", 0)
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_LENGTH or not token.isascii():
        token = ""  # refused with bad_token, like any token the server never gave
    if not _whole(offset) or offset < 0:
        offset = -1  # refused as a bad offset
    return DataRequest(data["type"], token, offset)
