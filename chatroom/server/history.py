"""The room's memory on disk: public events in a SQLite file, written in small groups by one thread and read
by another, so that a question never delays a write.

The room never waits for the disk: `append` puts an event on a queue, and the writer thread commits what has
queued at most `COMMIT_EVERY` seconds apart. `/history` and `/search` go to the reader thread, which has a
connection of its own (WAL lets it read while the writer writes); a question is bounded in words (room.py),
in the questions that may wait (`QUERY_QUEUE`) and in time (`QUERY_SECONDS`), and one that cannot be answered
says why. A lock file beside the database keeps a second server away; the files are the user's alone
(0600, in a 0700 directory, on POSIX). If the disk fails (read-only, full), or the writer meets anything
unexpected, that is logged once and the room goes on in memory; a file deleted under the running server is
written again from the open one, and said once. A stored row this version cannot read (a newer version's,
or a damaged one) is left out, and said once. Private messages are never written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ..codecs import decode_event, encode_json
from ..protocol import Event, Message, ProtocolError
from .member import Reservation

COMMIT_EVERY = 0.1  # seconds: what a power cut can lose at most
APPLICATION_ID = 0x43685274  # "ChRt": marks a file as a chatroom history
SCHEMA_VERSION = 3  # 2: the searchable text is case-folded; 3: and read row by row, with no index to keep
ID_RESERVE = 100_000  # ids handed out between two commits stay below this many; see `last_id`
QUERY_QUEUE = 16  # questions waiting for the reader; one more is told the file is busy
QUERY_SECONDS = 1.0  # the reader's work on one question, at most
QUERY_WAIT = 3.0  # what an asker waits, queue included, before it is told the file is busy
PROGRESS_STEPS = 50_000  # SQLite steps between two looks at a question's clock (about 15 ms of a scan)
KEPT_GAPS = 1000  # restarts after a crash whose unused ids are remembered, for `caught_up.missing`
APP_NAME = "chatroom"  # the data directory's name
PRIVATE_DIRECTORY, PRIVATE_FILE = 0o700, 0o600

log = logging.getLogger("chatroom.server")


class HistoryError(Exception):
    """The history file cannot be used; the message says which file and what to do."""


class Unanswered(Exception):
    """A question the file could not answer; the message says why, for people."""


def _data_directory() -> Path:
    if sys.platform == "darwin":
        # platformdirs 4 follows $XDG_DATA_HOME on macOS too (earlier versions did not); the README's place,
        # where the files of earlier versions are, stays.
        return Path.home() / "Library" / "Application Support" / APP_NAME
    return platformdirs.user_data_path(APP_NAME, appauthor=False)  # no author level on Windows


def default_path(port: int) -> Path:
    """The file for a port in the per-user data directory: room-8080.sqlite3 (the README says where)."""
    return _data_directory() / f"room-{port}.sqlite3"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def searchable(text: str) -> str:
    """What a search compares, in memory and on disk: the text case-folded (so "STRASSE" finds "Straße")."""
    return text.casefold()


def _event_json(event: Event) -> str:
    return encode_json(event)[:-1].decode()  # usually encoded already, for the room's JSON members


@dataclass(frozen=True)
class Stored:
    """What the file answered to a question: its messages, oldest first, or `trouble`, why it could not."""
    messages: list[Message]
    trouble: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL,
                                   text TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (key TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL);
"""


# --- the files: private, and one server's ------------------------------------------------------------

def _private_directory(directory: Path) -> None:
    """Create what is missing of `directory` as 0700; the data directory of chatroom is made 0700 if an earlier
    version left it open to others. A directory the user chose is left as it is."""
    missing = [folder for folder in (directory, *directory.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIRECTORY, exist_ok=True)
    if os.name == "posix" and directory == _data_directory() and directory.stat().st_mode & 0o077:
        directory.chmod(PRIVATE_DIRECTORY)


def _private_files(path: Path) -> None:
    """The database file, created 0600 if missing; it and its companions made 0600 if an earlier version left
    them readable by others. SQLite gives the -wal and -shm files it creates the database file's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    if os.name != "posix":
        return  # Windows: the user's profile folder is the user's alone (docs/security.md)
    for companion in (path, *_companions(path)):
        try:
            if companion.stat().st_mode & 0o077:
                companion.chmod(PRIVATE_FILE)
        except FileNotFoundError:
            pass


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-lock")]


class _FileLock:
    """An exclusive lock on `FILE-lock` for as long as this server has the file: a second server is refused.
    (SQLite's own exclusive mode would also shut out this server's reader connection.)"""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + "-lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            if sys.platform == "win32":
                import msvcrt
                msvcrt.locking(self.fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            raise BlockingIOError(f"{self.path} is locked by another process") from exc

    def release(self) -> None:
        os.close(self.fd)  # the lock goes with it; the empty file stays (removing it would race a new server)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now (None: none)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _connect(path: Path, busy: float = 0.1) -> sqlite3.Connection:
    # The writer's busy timeout is short: a file held by an earlier version's server is refused at once.
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy)


class History:
    """The file, or nothing (`path` None): then `append` only counts and queries find nothing on disk.

    `keep`: the events the file keeps; `remember`: the latest ones read at start, for the room's memory."""

    def __init__(self, path: Path | None, keep: int = 100_000, remember: int = 2000) -> None:
        self.path = path
        self.keep = keep
        self.on_disk = path is not None
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._appended: list[Event] = []  # not yet taken by the writer (see `append`)
        # An append and the writer's taking never interleave: an event put into a list just taken could miss
        # its commit and the file. Held for a list operation only.
        self._taking = threading.Lock()
        self._questions: queue.Queue[Any] = queue.Queue(QUERY_QUEUE)
        self._db: sqlite3.Connection | None = None
        self._reader_db: sqlite3.Connection | None = None  # the reader's; None: to open at its next question
        self._swap = threading.Lock()  # held by the reader for one question, by the writer to replace the file
        self._lock: _FileLock | None = None
        self._identity: tuple[int, int] | None = None
        self._threads: list[threading.Thread] = []
        self._writing = False  # the writer takes jobs: it runs, and has not failed
        self._unreadable_said = False
        self._rows = 0
        self._handed_out = 0  # the highest id the room said it used: what a clean stop stores
        self.last_id = 0
        self.epoch = secrets.token_hex(8)  # a new file, or none: a new numbering (docs/protocol.md)
        self.gaps: list[tuple[int, int]] = []  # id ranges that hold no events: the jumps of restarts after a crash
        self.loaded: list[Event] = []
        self.reservations: list[Reservation] = []
        if path is not None:
            self._open(path, remember)

    # --- opening --------------------------------------------------------------------------------------

    def _open(self, path: Path, remember: int) -> None:
        what = f"the history file {path}"
        advice = "move it aside or start with --history none"
        try:
            _private_directory(path.parent)
            try:
                self._lock = _FileLock(path)
            except BlockingIOError:
                raise HistoryError(f"{what} is in use by another chatroom server; give this one its own "
                                   "with --history FILE, or --history none") from None
            _private_files(path)
            db = _connect(path)
        except (OSError, sqlite3.Error) as exc:
            self._release()
            raise HistoryError(f"cannot open {what}: {getattr(exc, 'strerror', None) or exc}; "
                               "choose another with --history FILE, or --history none") from None
        except HistoryError:
            self._release()
            raise
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if app_id != APPLICATION_ID and tables:
                raise HistoryError(f"{what} belongs to another program: {advice}")
            db.execute("PRAGMA journal_mode=WAL")
            self._schema(db, tables)
            self._load(db, remember)
            # Before any id is handed out: a kill -9 before the first commit must not let a restart reuse them.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_id', ?)", (str(self.last_id + ID_RESERVE),))
        except sqlite3.OperationalError as exc:
            db.close()
            self._release()
            if "locked" in str(exc):  # an earlier version of chatroom, which locks the file itself
                raise HistoryError(f"{what} is in use by another chatroom server; give this one its own "
                                   "with --history FILE, or --history none") from None
            raise HistoryError(f"cannot use {what}: {exc}; {advice}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            self._release()
            raise HistoryError(f"{what} is damaged or not a chatroom history ({exc}): {advice}") from None
        except HistoryError:
            db.close()
            self._release()
            raise
        self._db = db
        self._identity = _identity(path)
        self._writing = True
        for name, target in (("history writer", self._supervised), ("history reader", self._read)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _schema(self, db: sqlite3.Connection, tables: set[str]) -> None:
        """The tables, and what an older file needs: its searchable text case-folded (schema 1, once), and the
        search index of schema 1 and 2 dropped. A search reads the rows: 100,000 messages in about 30 ms, while
        the index cost the writer more than the rest of its work on every message (docs/performance.md)."""
        db.execute("BEGIN IMMEDIATE")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        if tables and version < 2:
            log.info("updating the searchable text of %s (once, for this version's /search)", self.path)
            db.create_function("searchable", 1, searchable, deterministic=True)
            db.execute("UPDATE events SET text = searchable(text) WHERE text IS NOT NULL")
        if "search" in tables:
            try:
                db.execute("DROP TABLE search")
            except sqlite3.OperationalError:
                # Made by a SQLite with FTS5, opened by one without: never read here, and left. An older chatroom
                # that opens the file again must rebuild it, not trust it (its own mark for a stale index).
                db.execute("INSERT OR REPLACE INTO meta VALUES ('reindex', '1')")
        db.execute(f"PRAGMA user_version={max(version, SCHEMA_VERSION)}")
        db.execute("COMMIT")

    def _load(self, db: sqlite3.Connection, remember: int) -> None:
        """What a restart needs: the numbering (the highest id ever handed out, the epoch, the gaps), the latest
        events, the reserved names."""
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        stored = db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        self.last_id = max(stored, int(meta.get("last_id", 0)))
        self.epoch = meta.get("epoch") or self.epoch
        try:
            self.gaps = [(int(first), int(last)) for first, last in json.loads(meta.get("gaps", "[]"))]
        except (ValueError, TypeError):
            self.gaps = []  # a damaged list only makes a few `missing` counts larger
        if meta.get("clean") != str(self.last_id) and self.last_id > stored:
            # After a crash: the ids of the reserve that nobody used are no events a client could have missed.
            self.gaps = [*self.gaps, (stored + 1, self.last_id)][-KEPT_GAPS:]
        db.execute("DELETE FROM meta WHERE key='clean'")
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                       [("epoch", self.epoch), ("gaps", json.dumps(self.gaps))])
        self._handed_out = self.last_id
        self._rows = db.execute("SELECT count(*) FROM events").fetchone()[0]
        rows = db.execute("SELECT id, body FROM events ORDER BY id DESC LIMIT ?", (remember,)).fetchall()
        self.loaded = self._events(reversed(rows))
        self.reservations = [Reservation(name, digest) for name, digest in
                             db.execute("SELECT name, hash FROM tokens")]

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # --- the room's side: never blocks ---------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Keep a public event for the writer. Only the first since the writer last took them wakes it: a
        wake-up per message cost the room more than the writer's own work (docs/performance.md)."""
        if self._writing:
            with self._taking:
                self._appended.append(event)
                first = len(self._appended) == 1
            if first:
                self._jobs.put(("events", None))

    def ids_used_up_to(self, last_id: int) -> None:
        """Ids up to `last_id` were handed out (private messages too), so a restart starts above them."""
        if self._writing:
            self._jobs.put(("last_id", last_id))

    def reserve(self, key: str, name: str, digest: str | None) -> None:
        """Keep (or with None, forget) a resume token's hash for a name, so it survives a restart."""
        if self._writing:
            self._jobs.put(("token", (key, name, digest)))

    # --- from a connection's own thread: they wait, never under a lock -------------------------------

    def query(self, words: Sequence[str] | None, count: int) -> Stored | None:
        """The last `count` public messages (containing every one of the case-folded `words`, if given: see
        room.py); None without a file. A question that cannot be answered comes back with its `trouble`."""
        if self.path is None:
            return None
        if not self.on_disk:
            return Stored([], "the history file is not in use since a disk error")
        future: Future[list[Message]] = Future()
        try:
            self._questions.put_nowait((words, count, future))
        except queue.Full:
            return Stored([], "the history file has too many questions waiting")
        try:
            return Stored(future.result(QUERY_WAIT))
        except FutureTimeout:
            future.cancel()  # still waiting: the reader will skip it
            return Stored([], "the history file has too many questions waiting")
        except CancelledError:
            return Stored([], "the server is stopping")
        except Unanswered as exc:
            return Stored([], str(exc))

    def call(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """`work(db)` run by the writer on its connection, after the writes queued before (for the file store's
        own table, which lives in this file); its result, or None without a file, after a disk error, or when
        it did not come in time. A failure of `work` is the caller's, never the writer's."""
        if not self._writing:
            return None
        future: Future[Any] = Future()
        self._jobs.put(("call", (work, future)))
        try:
            return future.result(QUERY_WAIT)
        except Exception:
            return None

    def flush(self) -> None:
        """Wait until everything queued before is committed (for tests and tools: the room never waits)."""
        if self._writing:
            done: Future[None] = Future()
            self._jobs.put(("flush", done))
            done.result(QUERY_WAIT)

    def close(self) -> None:
        if self._threads:
            self._jobs.put(("stop", None))
            while True:  # the questions still waiting are not answered: their askers go on from memory
                try:
                    waiting = self._questions.get_nowait()
                except queue.Empty:
                    break
                if waiting is not None:
                    waiting[-1].cancel()
            self._questions.put(None)
            for thread in self._threads:
                thread.join(5)
            self._threads = []
        self._writing = False
        with self._swap:
            for db in (self._db, self._reader_db):
                if db is not None:
                    db.close()
            self._db = self._reader_db = None
        self._release()

    # --- the writer thread ---------------------------------------------------------------------------

    def _supervised(self) -> None:
        """The writer's loop; an unexpected failure is said once, and the room goes on in memory: no more jobs
        are taken, and the ones already queued are finished (a flush) instead of waiting."""
        while True:
            batch, events = self._next_batch()
            try:
                if self._writing and not self._write(batch, events):
                    return
            except Exception:
                self._writing = self.on_disk = False
                log.exception("the history writer failed: the room goes on, but keeps its history in memory "
                              "only from now on (the file %s keeps what was written before)", self.path)
            kind, job = batch[-1]
            if kind == "stop":
                return
            if kind == "flush" and not job.done():
                job.set_result(None)
            if kind == "call":
                self._call(*job)

    def _call(self, work: Callable[[sqlite3.Connection], Any], future: Future[Any]) -> None:
        try:
            future.set_result(work(self._db) if self._writing and self.on_disk and self._db is not None else None)
        except Exception as exc:  # the caller's work: its failure is the caller's, never the writer's
            future.set_exception(exc)

    def _next_batch(self) -> tuple[list[tuple[str, Any]], list[Any]]:
        """The next job, and the changes that follow it within COMMIT_EVERY (up to a flush or a stop); and the
        events appended before the job that ended the batch (a flush waits for them)."""
        batch = [self._jobs.get()]
        deadline = time.monotonic() + COMMIT_EVERY
        while batch[-1][0] in ("events", "last_id", "token") and (left := deadline - time.monotonic()) > 0:
            try:
                batch.append(self._jobs.get(timeout=left))
            except queue.Empty:
                break
        with self._taking:
            events, self._appended = self._appended, []
        return batch, events

    def _write(self, batch: list[tuple[str, Any]], events: list[Any]) -> bool:
        """Commit one group of changes; False to stop (a clean stop stores the exact last id: no gap)."""
        tokens = [job for kind, job in batch if kind == "token"]
        last_id = max([job for kind, job in batch if kind == "last_id"] + [e.seq for e in events] + [0])
        self._handed_out = max(self._handed_out, last_id)
        stopping = batch[-1][0] == "stop"
        if not (events or tokens or last_id or stopping) or not self.on_disk:
            return not stopping
        assert self.path is not None
        for attempt in range(2):
            self._still_there()
            try:
                self._commit(events, tokens, last_id, stopping)
                break
            except sqlite3.Error as exc:
                if attempt == 0 and self.on_disk and _identity(self.path) != self._identity:
                    continue  # deleted just now: written again, then this group
                self.on_disk = False
                log.error("cannot write the history file %s (%s): the room goes on, but keeps its history "
                          "in memory only from now on", self.path, exc)
                break
        return not stopping

    def _commit(self, events: list[Any], tokens: list[tuple[str, str, str | None]], last_id: int,
                stopping: bool) -> None:
        assert self._db is not None
        db = self._db
        db.execute("BEGIN")
        try:
            rows = [(e.seq, e.TYPE, _event_json(e), searchable(e.text) if isinstance(e, Message) else None)
                    for e in events]
            db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)
            for key, name, digest in tokens:
                if digest is None:
                    db.execute("DELETE FROM tokens WHERE key=?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?)", (key, name, digest))
            if stopping:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [("last_id", str(self._handed_out)), ("clean", str(self._handed_out))])
            elif last_id:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_id', ?)", (str(last_id + ID_RESERVE),))
            trimmed = self._trim(db, self._rows + len(rows))
            db.execute("COMMIT")
        except sqlite3.Error:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self._rows += len(rows) - trimmed

    def _trim(self, db: sqlite3.Connection, rows: int) -> int:
        """Keep the latest `keep` of the `rows` events: the oldest beyond them go, found from the oldest end, so
        a trim costs the rows it removes, not the rows it keeps. The rows removed."""
        excess = rows - self.keep
        if excess <= 0:
            return 0
        cutoff = db.execute("SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ?", (excess - 1,)).fetchone()
        if cutoff is None:
            return 0
        removed: int = db.execute("DELETE FROM events WHERE id <= ?", cutoff).rowcount
        return removed

    # --- a file deleted under the running server ---------------------------------------------------

    def _still_there(self) -> None:
        """Before each commit: is the file at `path` still the one this server writes? If it was deleted (or
        replaced), say so once and write it again from the open database, which still holds all of it."""
        assert self.path is not None and self._db is not None
        if _identity(self.path) == self._identity:
            return
        log.warning("the history file %s was deleted or replaced while the server ran: writing it again from "
                    "what this server holds", self.path)
        path, fresh = self.path, self.path.with_name(self.path.name + "-new")
        try:
            _private_directory(path.parent)
            fresh.unlink(missing_ok=True)
            _private_files(fresh)  # VACUUM INTO takes an empty file, and keeps its mode
            self._db.execute("VACUUM INTO ?", (str(fresh),))
            with self._swap:
                for db in (self._db, self._reader_db):
                    if db is not None:
                        db.close()
                self._reader_db = None
                for stale in _companions(path)[:2]:  # the deleted file's: SQLite would read them as the new one's
                    stale.unlink(missing_ok=True)
                os.replace(fresh, path)
                self._db = _connect(path)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._identity = _identity(path)
            if not self._lock or _identity(self._lock.path) is None:
                self._release()
                self._lock = _FileLock(path)
        except (OSError, sqlite3.Error) as exc:
            self.on_disk = False
            log.error("cannot write the history file %s again (%s): the room goes on, but keeps its history in "
                      "memory only from now on", path, getattr(exc, "strerror", None) or exc)

    # --- the reader thread ---------------------------------------------------------------------------

    def _read(self) -> None:
        """Answer questions, one at a time, each within QUERY_SECONDS; the writer is never waited for."""
        while (question := self._questions.get()) is not None:
            words, count, future = question
            if not future.set_running_or_notify_cancel():
                continue  # its asker has stopped waiting
            try:
                with self._swap:
                    future.set_result(self._select(words, count))
            except Unanswered as exc:
                future.set_exception(exc)
            except sqlite3.Error as exc:
                future.set_exception(Unanswered(f"the history file could not be read ({exc})"))
            except Exception as exc:  # a bug: said, and the asker is answered from memory
                log.exception("the history reader failed on a question")
                future.set_exception(Unanswered(f"the history file could not be read ({exc})"))

    def _select(self, words: Sequence[str] | None, count: int) -> list[Message]:
        """The question, stopped after QUERY_SECONDS (the reader's lock `_swap` held)."""
        if self._reader_db is None:
            assert self.path is not None
            self._reader_db = _connect(self.path, busy=QUERY_SECONDS)
        db = self._reader_db
        deadline = time.monotonic() + QUERY_SECONDS
        db.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            rows = db.execute(*self._statement(words, count)).fetchall()
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline:
                raise Unanswered(f"searching the history file took longer than {QUERY_SECONDS:g} s") from None
            raise Unanswered(f"the history file could not be read ({exc})") from None
        finally:
            db.set_progress_handler(None, 0)
        return [event for event in self._events(reversed(rows)) if isinstance(event, Message)]

    def _statement(self, words: Sequence[str] | None, count: int) -> tuple[str, tuple[Any, ...]]:
        """The SQL for a question: every word found by instr() in the case-folded text, newest first, so the
        file means what memory means (any part of a word, in any script: "午餐" in "明天午餐吃什么")."""
        if not words:
            return "SELECT id, body FROM events WHERE type='message' ORDER BY id DESC LIMIT ?", (count,)
        every = " AND ".join(["instr(text, ?)"] * len(words))
        return (f"SELECT id, body FROM events WHERE type='message' AND {every} ORDER BY id DESC LIMIT ?",
                (*words, count))

    def _events(self, rows: Iterable[tuple[int, str]]) -> list[Event]:
        """The stored rows (id, body) as events. A type this version does not know yet is left out; a row it
        cannot read (damaged, or a newer version's) too, and the first one is logged."""
        events = []
        for row_id, body in rows:
            try:
                event = decode_event(body)
            except ProtocolError as exc:
                if not self._unreadable_said:
                    self._unreadable_said = True
                    log.warning("the history file %s has a row this version cannot read (id %d: %s); it is left "
                                "out, and so is any other like it", self.path, row_id, exc)
                continue
            if event is not None:
                events.append(event)
        return events
