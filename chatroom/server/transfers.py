"""A data connection: the bytes of one upload or download, on a connection of their own to the chat port.

The chat handler hands a connection over when its first line names a transfer (`{"type": "upload", ...}`);
from then on this module owns its reads and writes, in the connection's own thread: the answer (`ready` with
the offset, or a `file_note` saying why not), then the raw bytes, then for an upload `stored` (for a download,
the client's `received`). Downloads go out with `socket.sendfile()` (no copy through Python) unless the
connection is TLS. A connection that makes no progress for `FileLimits.stall` seconds is closed; its transfer
waits for the next one, which resumes. Nothing here touches the room or its lock.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable

from ..codecs import encode_json
from ..protocol import RECEIVED, DataReady, DataRequest, DataStored, Event, FileNote
from ..waker import wait_ready
from .files import FileStore, Lease
from .streams import TLS_RECORD, PlainStream, shut

CHUNK = 1 << 20  # bytes read or sent at a time
LINGER = 2.0  # seconds an upload's connection is read after `stored`: bytes then mean the offered size lied
BANNER_WAIT = 1.0  # seconds for the banner to leave (a client reads it before its first line)
NICE = 10  # a data connection's thread runs this much nicer than the chat's: a file never holds up a message

log = logging.getLogger("chatroom.server")


if sys.platform.startswith("linux"):
    def _behind_chat() -> None:
        """This thread yields the CPU to the chat's: Linux gives each thread a nice value of its own."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except OSError:
            pass  # not allowed here: the transfer runs at the chat's priority
else:
    def _behind_chat() -> None:
        """Elsewhere a priority is the whole process's: the transfer runs at the chat's."""


class Stalled(Exception):
    """The peer took or gave nothing for the stall time."""


def _send(stream: PlainStream, data: bytes, timeout: float) -> None:
    """All of `data`, waiting up to `timeout` for each bit of progress; a TLS record's worth at a time (a TLS
    send takes all of what it is given or nothing)."""
    for start in range(0, len(data), TLS_RECORD):
        piece = data[start:start + TLS_RECORD]
        while piece:
            sent = stream.send_nowait(piece)
            if sent:
                piece = piece[sent:]
            elif not wait_ready(stream.sock, True, timeout):
                raise Stalled


def _say(stream: PlainStream, event: Event, timeout: float) -> None:
    _send(stream, encode_json(event), timeout)


def serve(stream: PlainStream, request: DataRequest, early: bytes, store: FileStore, peer: str,
          banner_sent: Callable[[], bool]) -> None:
    """Carry one transfer's bytes over this connection until they are all across, it stalls or it ends.
    `early`: what the client sent after its first line without waiting for the answer (it should not)."""
    stall = store.limits.stall
    _behind_chat()  # for good: the thread ends with the connection
    deadline = time.monotonic() + BANNER_WAIT
    while not banner_sent() and time.monotonic() < deadline:
        time.sleep(0.01)  # only a client that did not wait for the banner gets here
    lease = store.lease(request, lambda: shut(stream.sock))
    try:
        if isinstance(lease, FileNote):
            log.info("%s: data connection refused (%s)", peer, lease.code)
            _say(stream, lease, stall)
            return
        try:
            if request.direction == "upload":
                _upload(stream, lease, early, store)
            else:
                _download(stream, lease, store)
        finally:
            store.release(lease)
    except Stalled:
        log.info("%s: data connection stalled for %g s; closed (the transfer can resume)", peer, stall)
    except (ConnectionError, TimeoutError, ssl.SSLError):
        log.debug("%s: data connection lost", peer)
    except OSError as exc:
        log.debug("%s: data connection: %s", peer, exc)


def _upload(stream: PlainStream, lease: Lease, early: bytes, store: FileStore) -> None:
    stored, stall = lease.stored, store.limits.stall
    store.resume(lease)
    if stored.received:
        log.info("files: upload %d resumes at byte %d of %d", stored.id, stored.received, stored.size)
    _say(stream, DataReady(offset=stored.received, size=stored.size), stall)
    stream.settimeout(stall)
    buffer = memoryview(bytearray(CHUNK))
    early_view = memoryview(early)
    # Unbuffered: what is written is in the file, so after a crash the part file's size is what the server holds.
    with open(store.part_path(lease), "ab", buffering=0) as part:
        while (left := stored.size - stored.received) > 0:
            if early_view:
                data, early_view = early_view[:left], early_view[left:]
            else:
                count = _receive(stream, buffer[:min(CHUNK, left)])
                if not count:
                    return  # the client went: the bytes held wait for its next connection
                data = buffer[:count]
            try:
                while written := part.write(data):
                    store.received(lease, data[:written])
                    data = data[written:]
            except OSError as exc:
                disk_full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
                store.upload_failed(lease, "disk_full" if disk_full else "disk_error",
                                    "the server's disk is full: it was not kept" if disk_full
                                    else f"the server cannot write it ({exc.strerror}): it was not kept")
                return
    _say(stream, DataStored(size=stored.size), stall)
    if early_view or _more_than_offered(stream):
        store.upload_failed(lease, "size_mismatch", "more bytes came than its offered size: it was not kept")


def _receive(stream: PlainStream, into: memoryview) -> int:
    """Bytes read into `into` (0: the peer closed), waiting up to the stream's timeout."""
    try:
        return stream.recv_into(into)
    except TimeoutError:
        raise Stalled from None


def _more_than_offered(stream: PlainStream) -> bool:
    """Whether bytes follow the last one offered (an honest client closes after `stored`)."""
    stream.settimeout(LINGER)
    try:
        return bool(stream.recv(1))
    except (TimeoutError, OSError):
        return False


def _download(stream: PlainStream, lease: Lease, store: FileStore) -> None:
    stored, stall = lease.stored, store.limits.stall
    with open(store.part_path(lease), "rb") as blob:
        _say(stream, DataReady(offset=lease.offset, size=stored.size), stall)
        count = stored.size - lease.offset
        if count and isinstance(stream.sock, ssl.SSLSocket):
            blob.seek(lease.offset)
            while chunk := blob.read(min(CHUNK, count)):
                _send(stream, chunk, stall)
                count -= len(chunk)
        elif count:
            _sendfile(stream.sock, blob, lease.offset, count, stall)
    if _acknowledged(stream, stall):
        store.downloaded(lease)


def _acknowledged(stream: PlainStream, stall: float) -> bool:
    """Whether the client says it has every byte (`{"type": "received"}`): only then is a download over (a
    connection cut after the server sent its last byte into the network may not have delivered it)."""
    stream.settimeout(stall)
    line = b""
    try:
        while not line.endswith(b"\n") and len(line) < 100 and (data := stream.recv(100)):
            line += data
    except (TimeoutError, OSError):
        return False
    return line.strip() == RECEIVED


def _sendfile(sock: socket.socket, blob: io.BufferedReader, offset: int, count: int, stall: float) -> None:
    """The kernel copies the file to the socket; the socket waits for the peer up to `stall` each time, and is
    in its stream's mode again afterwards (streams.py: blocking with SO_RCVTIMEO, or non-blocking)."""
    blocking = sock.getblocking()
    sock.settimeout(stall)
    try:
        sent = sock.sendfile(blob, offset, count)
    except TimeoutError:
        raise Stalled from None
    finally:
        sock.setblocking(blocking)
    if sent < count:
        raise ConnectionError("the download's file ended early")
