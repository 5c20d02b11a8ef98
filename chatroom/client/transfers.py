"""The client's file transfers: each upload and download on a data connection of its own, in a thread of its
own, so the chat never waits behind a file.

`/send PATH [NAME]` becomes an offer; the server's `slot` starts the upload, which sends the file from the
offset the server holds (after a lost connection it resumes there: nothing is sent twice), computing its
SHA-256 as it goes, then says `done` with it on the chat connection. A `slot` for a `/get` starts a download
into the downloads folder (`--downloads`, else the user's Downloads folder) under a safe name that
overwrites nothing (filenames.py), into `NAME.part`, renamed only once its SHA-256 matches the share's. The
loop (loop.py) gives this object the typed lines and events that concern it (`handle`), performs what comes
back, shows `rows()` and closes it at the end; the threads report through the loop's mailbox.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .. import filenames
from ..codecs import decode_event
from ..commands import Command, Kind, parse
from ..protocol import (
    BANNER_PREFIX, RECEIVED, DataReady, DataRequest, DataStored, Done, Event, FileNote, FileSlot, Offer, ProtocolError,
    sanitize,
)
from ..protocol.files import Direction
from ..render import size_text
from .connection import CONNECT_TIMEOUT
from .progress import Row
from .session import Action, Notice

try:  # Linux: how much of what was sent still waits in the socket, so an upload's progress is what has left
    import fcntl
    import termios
    _OUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # elsewhere: progress counts what was handed to the system
    _OUTQ = None

CHUNK = 1 << 20  # bytes read, hashed and sent at a time
CHECKPOINTS = 64  # hash states kept, one a chunk back: a resume rarely needs to hash again from the start
STALL = 60.0  # seconds a data connection may make no progress before the client tries a new one
FIRST_RETRY, MOST_RETRY = 1.0, 30.0  # seconds between attempts after a lost data connection, doubling
GIVE_UP = 600.0  # seconds without a working data connection before a transfer is given up (the server's idle)
RATE_WINDOW = 3.0  # seconds of progress a rate is measured over
ANSWER_LIMIT = 4096  # a data connection's answer is one short line

Work = Callable[[float], list[Action]]  # for the loop's thread (its mailbox)


@dataclass(frozen=True)
class Endpoint:
    """Where data connections go: the chat connection's server, with its TLS context (None: clear text)."""
    host: str
    port: int
    context: ssl.SSLContext | None = None
    server_hostname: str | None = None


def endpoint_of(sock: socket.socket) -> Endpoint | None:
    """The server a chat connection reached, to reach it again for a file (None: it is closed already)."""
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return None
    if isinstance(sock, ssl.SSLSocket):
        return Endpoint(host, port, sock.context, sock.server_hostname)
    return Endpoint(host, port)


def default_downloads() -> Path:
    """The user's Downloads folder (XDG's on Linux, the known folder on Windows, ~/Downloads on macOS)."""
    try:
        return platformdirs.user_downloads_path()
    except Exception:  # a system that cannot say (no known-folder API): the usual place
        return Path.home() / "Downloads"


def split_send(rest: str, exists: Callable[[str], bool]) -> tuple[str, str | None]:
    """What follows /send as (path, recipient): the whole of it when it names a file, else all but a last word
    that names the recipient; a path in double quotes is taken as written."""
    rest = rest.strip()
    if rest.startswith('"') and '"' in rest[1:]:
        path, _, after = rest[1:].partition('"')
        return path, after.strip() or None
    if exists(rest):
        return rest, None
    head, _, last = rest.rpartition(" ")
    if head.strip() and exists(head.strip()):
        return head.strip(), last
    return rest, None


def complete_path(word: str) -> list[str]:
    """What a partly typed local path may become (folders end with a separator), for /send's Tab."""
    expanded = os.path.expanduser(word)
    folder, start = os.path.split(expanded)
    try:
        entries = sorted(os.scandir(folder or "."), key=lambda entry: entry.name)
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.name.startswith(start) and (start.startswith(".") or not entry.name.startswith(".")):
            typed = word[:len(word) - len(start)] + entry.name
            found.append(typed + os.sep if entry.is_dir() else typed)
    return found


def shown_path(path: Path) -> str:
    """A path as people read it: under the home folder as ~/..."""
    try:
        return "~" + os.sep + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


class Refused(Exception):
    """The server refused a data connection (its FileNote)."""

    def __init__(self, note: FileNote) -> None:
        super().__init__(note.message)
        self.note = note


class Stopped(Exception):
    """The transfer was cancelled or the client is closing."""


def _line(sock: socket.socket, buffer: bytearray) -> str:
    """The next line from a data connection; what came after it stays in `buffer`."""
    while b"\n" not in buffer:
        if len(buffer) > ANSWER_LIMIT:
            raise ProtocolError("the server's answer is too long")
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the data connection")
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode("utf-8", "replace").rstrip("\r")


def open_data(endpoint: Endpoint, request: DataRequest) -> tuple[socket.socket, DataReady, bytearray]:
    """A data connection that names its transfer: the socket, the server's `ready`, and what came after it.
    A refusal is `Refused`; a failure to connect an OSError (try again later)."""
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=CONNECT_TIMEOUT)
    try:
        if endpoint.context is not None:
            sock = endpoint.context.wrap_socket(sock, server_hostname=endpoint.server_hostname or endpoint.host)
        buffer = bytearray()
        if not _line(sock, buffer).startswith(BANNER_PREFIX):  # the banner: read before we speak
            raise ProtocolError("not a chatroom server")
        sock.sendall(request.encode())
        answer = decode_event(_line(sock, buffer))
        if isinstance(answer, FileNote):
            raise Refused(answer)
        if not isinstance(answer, DataReady):
            raise ProtocolError("the server did not say where the transfer starts")
        sock.settimeout(STALL)
        return sock, answer, buffer
    except BaseException:
        sock.close()
        raise


class _Transfer:
    """One upload or download: its thread, its progress, how to stop it."""

    upload = False

    def __init__(self, key: str, name: str, size: int) -> None:
        self.key, self.name, self.size = key, name, size
        self.id = 0
        self.token = ""
        self.done = 0
        self.state = "waiting"
        self.stop = threading.Event()
        self.renewed = threading.Event()  # a new token came (a download after a restarted server)
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.samples: deque[tuple[float, int]] = deque()

    def cancel(self) -> None:
        self.stop.set()
        self.renewed.set()
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread in its recv or send
            except OSError:
                pass

    def moved(self) -> int:
        """The bytes across: for an upload, those handed to the system that it has sent."""
        return self.done

    def rate(self, now: float, moved: int) -> float:
        """Bytes a second over the last RATE_WINDOW, `moved` being the count now."""
        self.samples.append((now, moved))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW:
            self.samples.popleft()
        (then, before), (_, after) = self.samples[0], self.samples[-1]
        return (after - before) / (now - then) if now > then else 0.0


class _Upload(_Transfer):
    upload = True

    def __init__(self, key: str, path: Path, size: int) -> None:
        super().__init__(key, path.name, size)
        self.path = path
        self.hashed = 0  # the bytes `hasher` covers
        self.hasher = hashlib.sha256()
        self.checkpoints: deque[tuple[int, Any]] = deque(maxlen=CHECKPOINTS)

    def moved(self) -> int:
        sock = self.sock
        if _OUTQ is None or sock is None or self.state not in ("sending", "checking"):
            return self.done
        try:
            waiting: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):  # closed meanwhile
            return self.done
        return max(0, self.done - waiting)

    def rewind(self, file: Any, offset: int) -> None:
        """Make `hasher` cover the first `offset` bytes: from the latest hash state at or before it."""
        if offset != self.hashed:
            for at, state in reversed(self.checkpoints):
                if at <= offset:
                    self.hasher, self.hashed = state.copy(), at
                    break
            else:
                self.hasher, self.hashed = hashlib.sha256(), 0
        file.seek(self.hashed)
        while self.hashed < offset:
            self._hash(file.read(min(CHUNK, offset - self.hashed)))

    def _hash(self, data: bytes) -> None:
        if not data:
            raise OSError(f"{self.name} changed while it was being sent (it is shorter now)")
        self.hasher.update(data)
        self.hashed += len(data)
        self.checkpoints.append((self.hashed, self.hasher.copy()))


class _Download(_Transfer):
    def __init__(self, key: str, slot: FileSlot, part: Path, target: Path | None) -> None:
        super().__init__(key, slot.name, slot.size)
        self.id, self.token, self.sha256 = slot.id, slot.token, slot.sha256
        self.part, self.target = part, target  # the part file sits in the folder it is saved to
        self.hasher = hashlib.sha256()


class Transfers:
    """Every transfer of one client. `downloads`: the folder downloads go to (created when needed)."""

    def __init__(self, downloads: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 retry: tuple[float, float] = (FIRST_RETRY, MOST_RETRY)) -> None:
        self._downloads = downloads
        self.clock = clock
        self.retry = retry  # seconds before the first attempt after a lost data connection, and the most
        self._endpoint: Endpoint | None = None
        self._report: Callable[[Work], None] = lambda work: None
        self._control: Callable[[str], None] = lambda line: None
        self._lock = threading.Lock()
        self._items: dict[str, _Transfer] = {}
        self._wanted: dict[int, Path] = {}  # where the window's Save-as put a file, by its id
        self._refs = 0
        self.changed = False  # a transfer began or ended since rows() was last asked

    @property
    def downloads(self) -> Path:
        """Where downloads go: --downloads, else the user's Downloads folder (asked the first time it is needed)."""
        if self._downloads is None:
            self._downloads = default_downloads()
        return self._downloads

    def attach(self, endpoint: Endpoint | None, report: Callable[[Work], None], control: Callable[[str], None]) -> None:
        """The loop's: where data connections go, how a thread reports (in the loop's thread), and how a
        control line (a done, a /get again) goes to the server."""
        self._endpoint, self._report, self._control = endpoint, report, control

    # --- what the loop hands over ------------------------------------------------------------------

    def handle(self, item: str | Event) -> list[Action]:
        """A typed /send or /cancel, or the server's slot or file note."""
        if isinstance(item, FileSlot):
            return self._slot(item)
        if isinstance(item, FileNote):
            self._noted(item)
            return []
        if isinstance(item, str):
            command = parse(item)
            if isinstance(command, Command) and command.kind is Kind.SEND:
                return self.send(item.strip()[len("/send"):])
            if isinstance(command, Command) and command.kind is Kind.CANCEL:
                self.cancel(int(command.text))
        return []

    def send(self, rest: str) -> list[Action]:
        """/send PATH [NAME]: offer the file (the server's slot starts the upload)."""
        text, to = split_send(rest, lambda path: os.path.isfile(os.path.expanduser(path)))
        return self.offer(text, to)

    def offer(self, text: str, to: str | None = None) -> list[Action]:
        """Offer the file at `text` (a path as typed) to everybody, or to `to` alone."""
        path = Path(os.path.expanduser(text))
        try:
            if path.is_dir():
                return [Notice(f"! {sanitize(text)} is a folder: /send takes one file", "error")]
            with open(path, "rb"):
                size = path.stat().st_size
        except OSError as exc:
            return [Notice(f"! cannot send {sanitize(text)}: {exc.strerror or exc}", "error")]
        if self._endpoint is None:
            return [Notice("! files cannot be sent on this connection", "error")]
        with self._lock:
            self._refs += 1
            key = f"u{self._refs}"
            self._items[key] = _Upload(key, path, size)
            self.changed = True
        self._control(Offer(key, path.name, size, to).encode())
        whom = f" to {to}" if to else ""
        return [Notice(f"-- offering {sanitize(path.name)} ({size_text(size)}){whom}")]

    def want(self, file_id: int, path: Path) -> None:
        """The window's Save-as: file `file_id` goes to `path` (the user agreed to replace it if it exists)."""
        with self._lock:
            self._wanted[file_id] = path

    def cancel(self, file_id: int) -> None:
        """/cancel: every transfer of that file here stops (the line goes to the server too)."""
        with self._lock:
            items = [item for item in self._items.values() if item.id == file_id]
            self._wanted.pop(file_id, None)
        for item in items:
            item.cancel()

    def cancel_key(self, key: str) -> list[Action]:
        """The window's Cancel button: that transfer stops, and the server hears of it."""
        with self._lock:
            item = self._items.get(key)
        if item is None:
            return []
        if item.id:
            self._control(f"/cancel {item.id}")
        item.cancel()
        if not item.id:
            self._end(item)
        return []

    def _slot(self, slot: FileSlot) -> list[Action]:
        if slot.direction == "upload":
            with self._lock:
                item = self._items.get(slot.ref)
            if isinstance(item, _Upload) and not item.token:
                item.id, item.token, item.state = slot.id, slot.token, "sending"
                self._start(item, self._upload)
            elif item is None:
                self._control(f"/cancel {slot.id}")  # cancelled before the server said yes: it frees the slot
            return []
        with self._lock:
            existing = next((item for item in self._items.values()
                             if isinstance(item, _Download) and item.id == slot.id), None)
        if existing is not None:  # asked again after a restarted server forgot the token: go on with the new one
            existing.token = slot.token
            existing.renewed.set()
            return []
        try:
            item = self._reserve(slot)
        except OSError as exc:
            return [Notice(f"! cannot save {sanitize(slot.name)}: {exc.strerror or exc}", "error")]
        self._start(item, self._download)
        return []

    def _reserve(self, slot: FileSlot) -> _Download:
        """A .part file for a download, under a name nothing else has (nor will, while it lasts)."""
        with self._lock:
            target = self._wanted.pop(slot.id, None)
        folder = target.parent if target is not None else self.downloads
        folder.mkdir(parents=True, exist_ok=True)
        stem = target.name if target is not None else filenames.safe_name(slot.name)
        while True:
            name = filenames.unique_name(stem + ".part" if target is not None else stem,
                                         lambda n: (folder / n).exists() or (folder / (n + ".part")).exists())
            part = folder / (name if target is not None else name + ".part")
            try:
                with open(part, "xb"):  # created here and now, or someone was quicker: the next name
                    break
            except FileExistsError:
                continue
        with self._lock:
            key = f"d{slot.id}:{part}"
            item = _Download(key, slot, part, target)
            item.state = "receiving"
            self._items[key] = item
            self.changed = True
        return item

    def _noted(self, note: FileNote) -> None:
        """A note from the server ends the transfers it names (not "received": a sender's news)."""
        if note.code == "received":
            return
        with self._lock:
            items = [item for item in self._items.values()
                     if (note.id and item.id == note.id) or (note.ref and item.key == note.ref)]
            if note.id:
                self._wanted.pop(note.id, None)
        for item in items:
            item.cancel()
            if not item.thread:
                self._end(item)

    def _start(self, item: _Transfer, body: Callable[[Any], None]) -> None:
        item.thread = threading.Thread(target=self._run, args=(item, body), name=f"transfer {item.key}", daemon=True)
        item.thread.start()

    # --- the threads ----------------------------------------------------------------------------------

    def _run(self, item: _Transfer, body: Callable[[Any], None]) -> None:
        """A transfer until it is done, refused, cancelled or given up; connections lost on the way are
        replaced, and it goes on from what the other side holds."""
        first, most = self.retry
        wait, lost_since, moved = first, 0.0, -1
        try:
            while True:
                try:
                    body(item)
                    return
                except Refused as refused:
                    self._failed(item, refused.note.message, refused.note.code)
                    return
                except Stopped:
                    return
                except (OSError, ProtocolError) as exc:
                    if item.stop.is_set():
                        return
                    now = self.clock()
                    if item.done != moved:  # it made progress since the last loss: a new count
                        wait, lost_since, moved = first, now, item.done
                    if now - lost_since >= GIVE_UP:
                        self._failed(item, f"no connection for the transfer for {GIVE_UP / 60:g} minutes ({exc})")
                        return
                    item.state = "waiting"
                if item.stop.wait(wait):
                    return
                wait = min(most, wait * 2)
        except Exception as exc:  # a failure nothing here expects: said, and the transfer ends
            self._failed(item, f"{type(exc).__name__}: {exc}")
        finally:
            if isinstance(item, _Download) and not item.state == "saved":
                item.part.unlink(missing_ok=True)  # nothing half done is left behind
            self._end(item)

    def _connect(self, item: _Transfer, direction: Direction, offset: int) -> tuple[socket.socket, DataReady,
                                                                                  bytearray]:
        if item.stop.is_set() or self._endpoint is None:
            raise Stopped
        sock, ready, rest = open_data(self._endpoint, DataRequest(direction, item.token, offset))
        item.sock = sock
        if item.stop.is_set():
            sock.close()
            raise Stopped
        return sock, ready, rest

    def _upload(self, item: _Upload) -> None:
        sock, ready, rest = self._connect(item, "upload", 0)
        with sock, open(item.path, "rb") as file:
            if os.fstat(file.fileno()).st_size != item.size:
                raise Refused(FileNote("changed", f"{item.name} changed since it was offered: send it again"))
            item.rewind(file, ready.offset)
            item.done, item.state = ready.offset, "sending"
            while item.done < item.size:
                data = file.read(min(CHUNK, item.size - item.done))
                item._hash(data)  # read once, for the hash: these bytes go as they are
                sock.sendall(data)
                item.done += len(data)
                if item.stop.is_set():
                    raise Stopped
            item.state = "checking"
            answer = decode_event(_line(sock, rest))  # `stored` (with nothing left to send, it came at once)
        if not isinstance(answer, DataStored):
            raise Refused(answer if isinstance(answer, FileNote) else FileNote("bad_answer", "the server did not "
                                                                               "say it holds the file"))
        digest = item.hasher.hexdigest()
        self._report(lambda now: self._sent(item, digest))

    def _sent(self, item: _Upload, digest: str) -> list[Action]:
        """In the loop's thread: the bytes are all across; the done (with the SHA-256) goes, and the server's
        share notice will say it is shared."""
        self._control(Done(item.id, digest).encode())
        return []

    def _download(self, item: _Download) -> None:
        if item.done == 0 and item.part.stat().st_size:
            item.part.write_bytes(b"")  # a fresh start writes from the beginning
        try:
            sock, ready, rest = self._connect(item, "download", item.done)
        except Refused as refused:
            if refused.note.code != "bad_token" or item.stop.is_set():
                raise
            self._ask_again(item)  # the server restarted and forgot the token: a new one, then on from here
            raise ConnectionError("a new token") from None
        if ready.offset != item.done or ready.size != item.size:
            sock.close()
            raise ProtocolError("the server offers other bytes than asked")
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with sock, open(item.part, "ab") as part:
            pending = bytes(rest[:item.size - item.done])
            while item.done < item.size:
                if pending:
                    count, data = len(pending), memoryview(pending)
                    pending = b""
                else:
                    count = sock.recv_into(view, min(CHUNK, item.size - item.done))
                    if not count:
                        raise ConnectionError("the data connection ended early")
                    data = view[:count]
                part.write(data)
                item.hasher.update(data)
                item.done += count
                if item.stop.is_set():
                    raise Stopped
            try:
                sock.sendall(RECEIVED + b"\n")  # every byte is here: the server may forget the token
            except OSError:
                pass  # it forgets it later; the file is here
        item.state = "checking"
        if item.hasher.hexdigest() != item.sha256:
            item.part.unlink(missing_ok=True)
            raise Refused(FileNote("hash_mismatch", f"{item.name} did not arrive intact (its SHA-256 does not "
                                                    "match the server's): the partial file was deleted"))
        final = self._claim(item)
        item.state = "saved"
        self._report(lambda now: [Notice(f"-- saved to {shown_path(final)} (sha256 verified)")])

    def _ask_again(self, item: _Download) -> None:
        """/get again (the chat connection may be coming back: the line waits for it), then the new token."""
        item.renewed.clear()
        self._report(lambda now: self._again(item))
        item.renewed.wait(CONNECT_TIMEOUT)
        if item.stop.is_set():
            raise Stopped

    def _again(self, item: _Download) -> list[Action]:
        self._control(f"/get {item.id}")
        return []

    @staticmethod
    def _claim(item: _Download) -> Path:
        """The .part gets its final name: the one the user chose, or a free one (never overwriting)."""
        if item.target is not None:
            os.replace(item.part, item.target)
            return item.target
        folder = item.part.parent
        while True:
            name = filenames.unique_name(item.part.name.removesuffix(".part"), lambda n: (folder / n).exists())
            final = folder / name
            try:
                os.link(item.part, final)  # fails if the name exists: nothing is overwritten
            except FileExistsError:
                continue
            except OSError:  # no hard links here (some file systems): a rename that refuses on Windows
                if final.exists():
                    continue
                os.rename(item.part, final)
                return final
            item.part.unlink()
            return final

    # --- endings and the view -----------------------------------------------------------------------

    def _failed(self, item: _Transfer, why: str, code: str = "") -> None:
        if item.stop.is_set() and code != "hash_mismatch":
            return  # cancelled: the server's note (or the user) said so already
        what = "was not sent" if item.upload else "was not saved"
        message = why if code == "hash_mismatch" else f"{sanitize(item.name)} {what}: {why}"
        self._report(lambda now: [Notice(f"! {message}", "error")])

    def _end(self, item: _Transfer) -> None:
        with self._lock:
            if self._items.get(item.key) is item:
                del self._items[item.key]
                self.changed = True
        self._report(lambda now: [])  # wakes the loop, which shows the transfers without it

    def rows(self, now: float) -> tuple[Row, ...]:
        """What the front ends show, in the order the transfers began."""
        with self._lock:
            self.changed = False
            items = list(self._items.values())
        return tuple(self._row(item, now, item.moved()) for item in items)

    @staticmethod
    def _row(item: _Transfer, now: float, moved: int) -> Row:
        """An upload's count asks the system (what its socket still holds): once a row."""
        state = "sending" if item.state == "checking" and moved < item.size else item.state
        return Row(item.key, item.id, item.upload, item.name, item.size, moved, item.rate(now, moved), state)

    def close(self) -> None:
        """Stop every transfer (the client is ending); downloads not finished leave no file behind."""
        with self._lock:
            items = list(self._items.values())
        for item in items:
            item.cancel()
        for item in items:
            if item.thread is not None:
                item.thread.join(2.0)
            elif isinstance(item, _Download):
                item.part.unlink(missing_ok=True)
