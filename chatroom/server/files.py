"""Shared files on the server: the store on disk, its limits and quotas, the tokens of transfers, and expiry.

A file is uploaded once, kept under a random name in `files-PORT/` beside the history for `--files-keep`
(24 h), then deleted; its metadata lives in the history file (when there is one), so an upload under way and
the kept files survive a restart. Every limit is checked on the offer, before a byte moves (`check_offer`,
pure). The store has a lock of its own for its memory and never holds it around the disk or a socket; the
room's lock is never involved: the handler asks the room to deliver what the store returns, afterwards.
The bytes themselves travel on data connections (transfers.py), which hold a `Lease` on one transfer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import names
from ..commands import Command, Kind
from ..filenames import safe_name
from ..protocol import (
    DataRequest, Done, Event, FileList, FileNote, FileShared, FileSlot, Offer, sanitize,
)
from ..render import duration_text, size_text
from .history import History, token_hash

MiB, GiB = 1 << 20, 1 << 30
KEEPER_TICK = 5.0  # seconds between looks for idle transfers (kept files are deleted at their time)
LOAD_TRIES = 10  # questions of QUERY_WAIT each to the history file at the start: its writer may be busy at first
TAKEOVER_WAIT = 5.0  # seconds a new data connection waits for the one it replaces to let go
BLOB = re.compile(r"[0-9a-f]{32}(\.part)?")  # the store's own files: nothing else in its folder is touched

log = logging.getLogger("chatroom.server")


@dataclass(frozen=True)
class FileLimits:
    """Every limit of file sharing (docs/security.md, "Shared files"); `enabled` False: --files none."""
    enabled: bool = True
    keep: float = 24 * 3600.0  # seconds a shared file is kept
    max_file: int = 100 * MiB
    user_quota: int = 500 * MiB  # what one user's files (kept and under way) may take
    total: int = 2 * GiB  # what all files may take ...
    min_free: float = 0.10  # ... leaving at least this share of the disk free
    uploads: int = 2  # transfers under way per user at once
    downloads: int = 4
    stall: float = 30.0  # seconds a data connection may make no progress before it is closed (it can resume)
    idle: float = 600.0  # seconds an unfinished transfer may wait without a connection before it is dropped


# --- the limits, pure --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    """What is taken when an offer comes: by the user, by everybody, on the disk. `*_expiring` lists the kept
    files as (when they expire, size), which tells when space frees up."""
    user_bytes: int = 0
    user_uploads: int = 0
    user_expiring: tuple[tuple[float, int], ...] = ()
    total_bytes: int = 0
    total_expiring: tuple[tuple[float, int], ...] = ()
    disk_free: int = 1 << 62
    disk_total: int = 1 << 62


def _frees_at(used: int, size: int, limit: int, expiring: tuple[tuple[float, int], ...]) -> float:
    """When enough of `expiring` has gone for `size` more to fit under `limit` (0: not by expiry alone)."""
    for expires, freed in sorted(expiring):
        used -= freed
        if used + size <= limit:
            return expires
    return 0.0


def check_offer(offer: Offer, limits: FileLimits, usage: Usage, now: float) -> FileNote | None:
    """Why an offer is refused (every limit, before a byte moves), or None: it fits."""
    name, size = sanitize(offer.name), offer.size

    def refuse(code: str, message: str, **fields: Any) -> FileNote:
        return FileNote(code=code, message=message, ref=offer.ref, **fields)

    if not limits.enabled:
        return refuse("files_off", "this server does not take files (it runs with --files none)")
    if size > limits.max_file:
        return refuse("file_too_large", f"{name} is {size_text(size)}: this server takes files of at most "
                                        f"{size_text(limits.max_file)}", limit=limits.max_file)
    if usage.user_uploads >= limits.uploads:
        return refuse("too_many_transfers", f"{name} was not sent: you are sending {usage.user_uploads} files "
                                            f"already, the most at once (wait for one, or /cancel it)")
    for used, limit, expiring, whose in [
            (usage.user_bytes, limits.user_quota, usage.user_expiring, "your shared files"),
            (usage.total_bytes, limits.total, usage.total_expiring, "the room's shared files")]:
        if used + size > limit:
            until = _frees_at(used, size, limit, expiring)
            when = (f"space frees up in {duration_text(until - now)}" if until
                    else "space frees up as transfers under way end")
            return refuse("quota_exceeded", f"{name} ({size_text(size)}) does not fit: {whose} take "
                                            f"{size_text(used)} of {size_text(limit)}; {when}", until=until)
    if usage.disk_free - size < limits.min_free * usage.disk_total:
        return refuse("disk_full", f"{name} was not sent: the server's disk is nearly full")
    return None


# --- the store ---------------------------------------------------------------------------------------------

@dataclass(eq=False)
class Stored:
    """One file: being uploaded (`kept` False, its bytes in `blob`.part) or kept for its time."""
    id: int
    blob: str
    owner: str
    name: str
    size: int
    to: str | None = None
    token_hash: str = ""  # the upload's token, until the file is kept
    sha256: str = ""
    kept: bool = False
    expires: float = 0.0  # wall clock: when a kept file is deleted
    received: int = 0  # bytes in the part file
    hasher: Any = None  # SHA-256 of the `received` bytes (None after a restart, until rebuilt from the disk)
    lease: Lease | None = None  # the data connection under way
    idle_since: float = 0.0  # monotonic: since when no data connection has carried it
    total_in: int = 0  # every byte received for it, over all its connections: more than `size` was sent twice
    received_by: set[str] = field(default_factory=set)  # name keys of who downloaded it

    @property
    def owner_key(self) -> str:
        return names.key(self.owner)

    def shared(self) -> FileShared:
        return FileShared(seq=0, id=self.id, sender=self.owner, name=self.name, size=self.size, sha256=self.sha256,
                          to=self.to, expires=self.expires)

    def visible_to(self, key: str) -> bool:
        return self.to is None or key in (self.owner_key, names.key(self.to))


@dataclass(eq=False)
class Download:
    """A download slot: `user` may fetch file `file_id` with the token whose hash is the key of the store's
    `_downloads`, until the last byte has gone out."""
    file_id: int
    user: str
    lease: Lease | None = None
    idle_since: float = 0.0


class Lease:
    """A data connection's hold on one transfer; `shut` ends that connection (another takes over, or the
    transfer is cancelled); `released` is set once the connection has let go."""

    def __init__(self, shut: Callable[[], None], stored: Stored, download: Download | None, offset: int) -> None:
        self.shut = shut
        self.stored = stored
        self.download = download
        self.offset = offset
        self.released = threading.Event()


def _token() -> tuple[str, str]:
    token = secrets.token_urlsafe(24)
    return token, token_hash(token)


_SCHEMA = """CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, blob TEXT NOT NULL, owner TEXT NOT NULL,
    name TEXT NOT NULL, size INTEGER NOT NULL, recipient TEXT, token_hash TEXT NOT NULL, sha256 TEXT NOT NULL,
    kept INTEGER NOT NULL, expires REAL NOT NULL)"""
_COLUMNS = "id, blob, owner, name, size, recipient, token_hash, sha256, kept, expires"


def default_directory(history: Path, port: int) -> Path:
    """Where a server keeps its shared files: files-PORT beside its history file."""
    return history.parent / f"files-{port}"


Deliver = Callable[[str, Event], None]  # an event for the member of that name, if here
Announce = Callable[[FileShared], None]  # a share notice for the room, in its order


class FileStore:
    """The shared files of one server. `directory` None: a temporary folder, deleted at `close` (a server
    without a history file keeps nothing across restarts). `deliver` and `announce` reach the room; the
    server sets them."""

    def __init__(self, limits: FileLimits = FileLimits(), directory: Path | None = None,
                 history: History | None = None) -> None:
        self.limits = limits
        self.history = history or History(None)
        self.temporary = directory is None and limits.enabled
        self.directory = Path(tempfile.mkdtemp(prefix="chatroom-files-")) if self.temporary else Path(directory or ".")
        self.deliver: Deliver = lambda name, event: None
        self.announce: Announce = lambda event: None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._files: dict[int, Stored] = {}
        self._uploads: dict[str, Stored] = {}  # by the token's hash
        self._downloads: dict[str, Download] = {}  # by the token's hash
        self._doomed: set[Path] = set()  # deleted files still open somewhere (Windows): tried again later
        self._next_id = 1
        self._unread = False  # the history file never said which files are kept (see `_load`)
        self._closing = False
        self._keeper = threading.Thread(target=self._keep, name="file keeper", daemon=True)
        if limits.enabled:  # off, nothing is ever kept: no folder, nothing to keep
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()
            self._keeper.start()

    # --- start and stop --------------------------------------------------------------------------------

    def _load(self) -> None:
        """The files kept and the uploads under way before a restart (from the history file), and nothing
        else: part files and blobs no row knows of are junk from a crash, and go. A history file that did not
        answer in time is not an empty one (its writer may be updating an older file, or the disk is slow):
        asked again, and if it never answers, nothing is taken for junk and this run takes no files (new ids
        could overwrite kept rows)."""
        for _ in range(LOAD_TRIES):
            rows = self.history.call(self._read_rows)
            if rows is not None or not self.history.on_disk:
                break
        else:
            self._unread = True
            log.error("files: the history file did not say which files are kept: sharing files is off until "
                      "the server starts again (the files in %s stay on disk)", self.directory)
            return
        rows = rows or []
        now, wall = time.monotonic(), time.time()
        for row in rows:
            stored = Stored(id=row[0], blob=row[1], owner=row[2], name=row[3], size=row[4], to=row[5],
                            token_hash=row[6], sha256=row[7], kept=bool(row[8]), expires=row[9], idle_since=now)
            self._next_id = max(self._next_id, stored.id + 1)
            if stored.kept and (stored.expires <= wall or not self._path(stored).exists()):
                self._forget(stored)
                continue
            if not stored.kept:
                part = self._path(stored)
                stored.received = part.stat().st_size if part.exists() else 0
                self._uploads[stored.token_hash] = stored
            self._files[stored.id] = stored
        known = {self._path(stored).name for stored in self._files.values()}
        for path in self.directory.iterdir():
            if BLOB.fullmatch(path.name) and path.name not in known:
                self._remove_file(path)
        if self._files:
            log.info("files: %d kept, %d uploads to resume (%s)", sum(s.kept for s in self._files.values()),
                     len(self._uploads), self.directory)

    @staticmethod
    def _read_rows(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
        db.execute(_SCHEMA)
        return db.execute(f"SELECT {_COLUMNS} FROM files ORDER BY id").fetchall()

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._keeper.ident is not None:
            self._keeper.join(5)
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- disk and rows (never under the lock) ----------------------------------------------------------

    def _path(self, stored: Stored) -> Path:
        return self.directory / (stored.blob if stored.kept else stored.blob + ".part")

    def _save(self, stored: Stored) -> None:
        row = (stored.id, stored.blob, stored.owner, stored.name, stored.size, stored.to, stored.token_hash,
               stored.sha256, int(stored.kept), stored.expires)
        self.history.call(lambda db: db.execute(f"INSERT OR REPLACE INTO files ({_COLUMNS}) VALUES "
                                                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))

    def _forget(self, stored: Stored) -> None:
        """Delete a file's bytes and its row."""
        self._remove_file(self._path(stored))
        self.history.call(lambda db: db.execute("DELETE FROM files WHERE id=?", (stored.id,)))

    def _remove_file(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except PermissionError:  # Windows: a data connection still has it open
            with self._lock:
                self._doomed.add(path)
        except OSError as exc:
            log.warning("files: cannot delete %s: %s", path, exc)

    def _disk(self) -> tuple[int, int]:
        try:
            usage = shutil.disk_usage(self.directory)
        except OSError:
            return 0, 1
        return usage.free, usage.total

    # --- what members ask on the chat connection ------------------------------------------------------

    def request(self, who: str, json_mode: bool, request: Offer | Done | Command,
                here: Callable[[str], str | None]) -> list[Event]:
        """A member's offer, done, /get, /files, /cancel, /decline or /send: the answers for that member.
        `here(name)` is how a name is shown in the room, or None if nobody has it."""
        if not json_mode:
            return [FileNote("files_need_client", "files need the chatroom client (python client.py, or its "
                                                  "window): nc and telnet cannot send or fetch them")]
        if (not self.limits.enabled or self._unread) and not (isinstance(request, Command)
                                                              and request.kind is Kind.FILES):
            why = ("its history file did not say which files it keeps, so it takes none until it starts again"
                   if self._unread else "it runs with --files none")
            return [FileNote("files_off", f"this server does not take files ({why})",
                             ref=request.ref if isinstance(request, Offer) else "")]
        match request:
            case Offer():
                return [self.offer(who, request, here)]
            case Done():
                return self.done(who, request)
            case Command(kind=Kind.GET):
                return [self.get(who, int(request.text))]
            case Command(kind=Kind.FILES):
                return [self.listing(who)]
            case Command(kind=Kind.CANCEL):
                return self.cancel(who, int(request.text))
            case Command(kind=Kind.DECLINE):
                return self.decline(who, int(request.text))
        return [FileNote("files_need_client", "/send needs the chatroom client, which reads the file from your "
                                              "computer: /send PATH, or /send PATH NAME for NAME alone")]

    def offer(self, who: str, offer: Offer, here: Callable[[str], str | None]) -> FileNote | FileSlot:
        to = None
        if offer.to is not None:
            to = here(offer.to)
            if to is None:
                return FileNote("unknown_user", f'no user named "{sanitize(offer.to)}" is here: '
                                                f"{sanitize(offer.name)} was not sent", ref=offer.ref)
        name = safe_name(offer.name)  # what people see: its last path part, nothing that can steer a terminal
        free, total = self._disk()
        token, digest = _token()
        with self._lock:  # checked and reserved at once: two offers never take the same room
            refusal = check_offer(offer, self.limits, self._usage(names.key(who), free, total), time.time())
            if refusal is not None:
                return refusal
            stored = Stored(id=self._next_id, blob=secrets.token_hex(16), owner=who, name=name, size=offer.size,
                            to=to, token_hash=digest, idle_since=time.monotonic(), hasher=hashlib.sha256())
            self._next_id += 1
            self._files[stored.id] = stored
            self._uploads[digest] = stored
            self._changed.notify_all()  # the keeper watches its idle time
        self._path(stored).touch()
        self._save(stored)
        log.info("files: %s offers %s (%d bytes) as %d%s", who, name, offer.size, stored.id,
                 f" to {to}" if to else "")
        return FileSlot(id=stored.id, token=token, direction="upload", ref=offer.ref, name=name, size=offer.size)

    def _usage(self, key: str, disk_free: int, disk_total: int) -> Usage:
        """What the user `key` and everybody take now (the caller holds the lock), and the disk as measured."""
        mine = [stored for stored in self._files.values() if stored.owner_key == key]
        return Usage(user_bytes=sum(stored.size for stored in mine),
                     user_uploads=sum(not stored.kept for stored in mine),
                     user_expiring=tuple((stored.expires, stored.size) for stored in mine if stored.kept),
                     total_bytes=sum(stored.size for stored in self._files.values()),
                     total_expiring=tuple((s.expires, s.size) for s in self._files.values() if s.kept),
                     disk_free=disk_free, disk_total=disk_total)

    def done(self, who: str, done: Done) -> list[Event]:
        """The uploader says all is sent, with its SHA-256: check it against the bytes held, then share."""
        with self._lock:
            stored = self._files.get(done.id)
            if stored is None or stored.kept or stored.owner_key != names.key(who):
                return [FileNote("no_such_file", f"no upload {done.id} of yours is under way", id=done.id)]
            if stored.received < stored.size:
                return [FileNote("incomplete", f"{stored.name}: the server holds {stored.received} of "
                                               f"{stored.size} bytes; send the rest first", id=done.id)]
            hasher = stored.hasher
        digest = (hasher or _hasher_of(self._path(stored), stored.size)).hexdigest()
        if digest != done.sha256:
            self._drop(stored)
            log.warning("files: %s's upload %d does not match its SHA-256; deleted", who, stored.id)
            return [FileNote("hash_mismatch", f"{stored.name} arrived damaged (its SHA-256 does not match): the "
                                              "server deleted it; send it again", id=stored.id)]
        part, wall = self._path(stored), time.time()
        with self._lock:
            if self._files.get(stored.id) is not stored or stored.kept:
                return [FileNote("cancelled", f"{stored.name} was cancelled", id=stored.id)]
            del self._uploads[stored.token_hash]
            stored.kept, stored.sha256, stored.token_hash = True, digest, ""
            stored.expires = round(wall + self.limits.keep, 3)
            self._changed.notify_all()
        os.replace(part, self._path(stored))
        self._save(stored)
        log.info("files: %d (%s, %d bytes) is shared; %d bytes received for it", stored.id, stored.name,
                 stored.size, stored.total_in)
        self.announce(stored.shared())
        return []

    def get(self, who: str, file_id: int) -> FileNote | FileSlot:
        key = names.key(who)
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None or not stored.kept or not stored.visible_to(key):
                return FileNote("no_such_file", f"there is no file {file_id} for you (/files lists them)",
                                id=file_id)
            mine = sum(1 for download in self._downloads.values() if names.key(download.user) == key)
            if mine >= self.limits.downloads:
                return FileNote("too_many_transfers", f"you are fetching {mine} files already, the most at once: "
                                                      f"/get {file_id} again when one has arrived", id=file_id)
            token, digest = _token()
            self._downloads[digest] = Download(file_id, who, idle_since=time.monotonic())
            self._changed.notify_all()
        return FileSlot(id=file_id, token=token, direction="download", name=stored.name, size=stored.size,
                        sha256=stored.sha256, sender=stored.owner)

    def listing(self, who: str) -> FileList:
        key = names.key(who)
        with self._lock:
            return FileList([s.shared() for s in self._files.values() if s.kept and s.visible_to(key)])

    def cancel(self, who: str, file_id: int) -> list[Event]:
        """/cancel: my download of it, my upload of it, or my shared file (no longer shared)."""
        key = names.key(who)
        with self._lock:
            stored = self._files.get(file_id)
            mine = [(token, download) for token, download in self._downloads.items()
                    if download.file_id == file_id and names.key(download.user) == key]
            for token, _ in mine:
                del self._downloads[token]
        for _, download in mine:
            if download.lease is not None:
                download.lease.shut()
        if mine:
            what = stored.name if stored is not None else f"file {file_id}"
            return [FileNote("cancelled", f"you cancelled the download of {what}", id=file_id)]
        if stored is not None and stored.kept and stored.owner_key != key and stored.visible_to(key):
            # Its last byte went out already (a download is over for the server once all is sent): nothing to stop.
            return [FileNote("cancelled", f"you cancelled the download of {stored.name}", id=file_id)]
        if stored is None or stored.owner_key != key:
            return [FileNote("no_such_file", f"no transfer {file_id} of yours is under way", id=file_id)]
        self._drop(stored)
        what = "no longer shared" if stored.kept else "not sent"
        return [FileNote("cancelled", f"you cancelled {stored.name}: it is {what}", id=file_id)]

    def decline(self, who: str, file_id: int) -> list[Event]:
        key = names.key(who)
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None or stored.to is None or names.key(stored.to) != key:
            return [FileNote("no_such_file", f"no file {file_id} was offered to you", id=file_id)]
        self._drop(stored)
        self.deliver(stored.owner, FileNote("declined", f"{who} declined {stored.name}", id=file_id))
        return [FileNote("declined", f"you declined {stored.name} from {stored.owner}", id=file_id)]

    def _drop(self, stored: Stored) -> None:
        """A file goes: its connections are shut, its bytes and its row deleted, its download slots void."""
        with self._lock:
            if self._files.get(stored.id) is not stored:
                return
            del self._files[stored.id]
            self._uploads.pop(stored.token_hash, None)
            slots = [(token, download) for token, download in self._downloads.items()
                     if download.file_id == stored.id]
            for token, _ in slots:
                del self._downloads[token]
            self._changed.notify_all()
        leases = [stored.lease] + [download.lease for _, download in slots]
        for lease in leases:
            if lease is not None:
                lease.shut()
        for _, download in slots:
            self.deliver(download.user, FileNote("file_gone", f"{stored.name} is no longer shared", id=stored.id))
        self._forget(stored)

    # --- data connections (transfers.py) --------------------------------------------------------------

    def lease(self, request: DataRequest, shut: Callable[[], None]) -> Lease | FileNote:
        """The transfer a data connection's first line names, held for it (an older connection of the same
        transfer is shut and let go of first), or why not."""
        digest = token_hash(request.token)
        for attempt in range(2):
            with self._lock:
                if request.direction == "upload":
                    stored, download = self._uploads.get(digest), None
                else:
                    download = self._downloads.get(digest)
                    stored = self._files.get(download.file_id) if download is not None else None
                if stored is None or (download is None and request.direction == "download"):
                    return FileNote("bad_token", "this server gave no such token, or its transfer is over")
                holder = download if download is not None else stored
                old = holder.lease
                if old is None:
                    offset = stored.received if download is None else request.offset
                    if not 0 <= offset <= stored.size:
                        return FileNote("bad_offset", f"the offset must be between 0 and {stored.size}")
                    holder.lease = lease = Lease(shut, stored, download, offset)
                    return lease
            old.shut()  # a connection that looks alive to us but not to the client: this one takes over
            if attempt or not old.released.wait(TAKEOVER_WAIT):
                break
        return FileNote("busy", "another connection is carrying this transfer")

    def release(self, lease: Lease) -> None:
        with self._lock:
            holder = lease.download or lease.stored
            if holder.lease is lease:
                holder.lease = None
                holder.idle_since = time.monotonic()
                self._changed.notify_all()
        lease.released.set()

    def resume(self, lease: Lease) -> None:
        """Before an upload's connection writes: after a restart, the bytes held are hashed once, from the disk
        (the connection's thread owns the hasher from here on)."""
        stored = lease.stored
        if stored.hasher is None:
            stored.hasher = _hasher_of(self._path(stored), stored.received)

    def received(self, lease: Lease, data: memoryview) -> None:
        """Bytes an upload's connection wrote to the part file."""
        stored = lease.stored
        stored.hasher.update(data)
        with self._lock:
            stored.received += len(data)
            stored.total_in += len(data)

    def upload_failed(self, lease: Lease, code: str, message: str) -> None:
        """An upload that cannot go on (the disk is full, more bytes came than offered): it goes, and its
        owner hears why."""
        stored = lease.stored
        self._drop(stored)
        self.deliver(stored.owner, FileNote(code, f"{stored.name}: {message}", id=stored.id))

    def downloaded(self, lease: Lease) -> None:
        """A download's last byte went out: its token is spent; the sender of a private file hears of it."""
        download = lease.download
        assert download is not None
        stored = lease.stored
        with self._lock:
            for token, slot in list(self._downloads.items()):
                if slot is download:
                    del self._downloads[token]
            first = names.key(download.user) not in stored.received_by
            stored.received_by.add(names.key(download.user))
        if stored.to is not None and first and names.key(download.user) == names.key(stored.to):
            self.deliver(stored.owner, FileNote("received", f"{download.user} received {stored.name}",
                                                id=stored.id))

    def part_path(self, lease: Lease) -> Path:
        return self._path(lease.stored)

    # --- expiry -------------------------------------------------------------------------------------

    def _keep(self) -> None:
        try:
            while True:
                with self._changed:
                    if self._closing:
                        return
                    wall, now, idle = time.time(), time.monotonic(), self.limits.idle
                    idle_since = [s.idle_since for s in self._files.values() if not s.kept and s.lease is None]
                    idle_since += [d.idle_since for d in self._downloads.values() if d.lease is None]
                    wait = min([KEEPER_TICK, *(s.expires - wall for s in self._files.values() if s.kept),
                                *(since + idle - now for since in idle_since)])
                    if wait > 0:
                        self._changed.wait(wait)
                    if self._closing:
                        return
                self.expire(time.time(), time.monotonic())
        except Exception:
            log.exception("the file keeper failed: shared files are no longer deleted when their time is up")

    def expire(self, wall: float, now: float) -> None:
        """Delete the files whose time is up, and drop the transfers that waited too long for a connection."""
        idle = self.limits.idle
        with self._lock:
            gone = [s for s in self._files.values() if (s.expires <= wall if s.kept
                                                         else s.lease is None and now - s.idle_since >= idle)]
            stale = [token for token, download in self._downloads.items()
                     if download.lease is None and now - download.idle_since >= idle]
            for token in stale:
                del self._downloads[token]
            doomed, self._doomed = self._doomed, set()
        for path in doomed:
            self._remove_file(path)
        for stored in gone:
            self._drop(stored)
            if not stored.kept:
                log.info("files: upload %d (%s) waited too long for its bytes; dropped", stored.id, stored.name)
                self.deliver(stored.owner, FileNote("expired", f"{stored.name} was not sent: no byte came for "
                                                               f"{idle / 60:g} minutes", id=stored.id))
            elif stored.to is not None and names.key(stored.to) not in stored.received_by:
                self.deliver(stored.owner, FileNote("expired", f"{stored.to} did not fetch {stored.name} in "
                                                               "time; the server deleted it", id=stored.id))

    # --- for tests and the log ------------------------------------------------------------------------

    def find(self, file_id: int) -> Stored | None:
        with self._lock:
            return self._files.get(file_id)



def _hasher_of(path: Path, size: int) -> Any:
    hasher = hashlib.sha256()
    with open(path, "rb") as file:
        while size > 0 and (chunk := file.read(min(size, 1 << 20))):
            hasher.update(chunk)
            size -= len(chunk)
    return hasher
