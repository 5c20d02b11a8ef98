"""The room's memory on disk: public events in a SQLite file, written in small groups by one thread.

The room never waits for the disk: `append` puts an event on a queue, and the writer thread commits what
has queued at most `COMMIT_EVERY` seconds apart. The writer owns the one connection to the file (kept in
exclusive locking mode, so a second server cannot use the same file); queries (`/history`, `/search`) and
the resume tokens go through it too. If the disk fails (read-only, full), or the writer meets anything
unexpected, that is logged once and the room goes on in memory. A stored row this version cannot read (a
newer version's, or a damaged one) is left out, and said once. Private messages are never written.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ..codecs import decode_event, encode_json
from ..protocol import Event, Message, ProtocolError

COMMIT_EVERY = 0.1  # seconds: what a power cut can lose at most
APPLICATION_ID = 0x43685274  # "ChRt": marks a file as a chatroom history
SCHEMA_VERSION = 1
ID_RESERVE = 100_000  # ids handed out between two commits stay below this many; see `last_id`
QUERY_TIMEOUT = 5.0
APP_NAME = "chatroom"  # the data directory's name

log = logging.getLogger("chatroom.server")


class HistoryError(Exception):
    """The history file cannot be used; the message says which file and what to do."""


def default_path(port: int) -> Path:
    """The file for a port in the per-user data directory: room-8080.sqlite3 (the README says where)."""
    if sys.platform == "darwin":
        # platformdirs 4 follows $XDG_DATA_HOME on macOS too (earlier versions did not); the README's place,
        # where the files of earlier versions are, stays.
        directory = Path.home() / "Library" / "Application Support" / APP_NAME
    else:
        directory = platformdirs.user_data_path(APP_NAME, appauthor=False)  # no author level on Windows
    return directory / f"room-{port}.sqlite3"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _event_json(event: Event) -> str:
    return encode_json(event)[:-1].decode()  # usually encoded already, for the room's JSON members


@dataclass(frozen=True)
class Reservation:
    """A name kept for its owner across a restart: the token's hash, as stored."""
    name: str
    token_hash: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL,
                                   text TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (key TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL);
"""


class History:
    """The file, or nothing (`path` None): then `append` only counts and queries find nothing on disk."""

    def __init__(self, path: Path | None, keep: int = 100_000) -> None:
        self.path = path
        self.keep = keep
        self.fts = False
        self.on_disk = path is not None
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._db: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._writing = False  # the writer takes jobs: it runs, and has not failed
        self._unreadable_said = False
        self.last_id = 0
        self.loaded: list[Event] = []
        self.reservations: list[Reservation] = []
        if path is not None:
            self._open(path)

    # --- opening --------------------------------------------------------------------------------------

    def _open(self, path: Path) -> None:
        what = f"the history file {path}"
        advice = "move it aside or start with --history none"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A short busy timeout: a file held by another server is refused at once, not after 5 s.
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=0.1)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open {what}: {getattr(exc, 'strerror', None) or exc}; "
                               "choose another with --history FILE, or --history none") from None
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if app_id != APPLICATION_ID and tables:
                raise HistoryError(f"{what} belongs to another program: {advice}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, or fails if another server has it
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("COMMIT")
            try:
                db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(text, content='events', "
                           "content_rowid='id')")
                self.fts = True
            except sqlite3.OperationalError:
                self.fts = False  # this SQLite has no FTS5: /search falls back to LIKE
            self._load(db)
            # Before any id is handed out: a kill -9 before the first commit must not let a restart reuse them.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_id', ?)", (str(self.last_id + ID_RESERVE),))
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise HistoryError(f"{what} is in use by another chatroom server; give this one its own "
                                   "with --history FILE, or --history none") from None
            raise HistoryError(f"cannot use {what}: {exc}; {advice}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise HistoryError(f"{what} is damaged or not a chatroom history ({exc}): {advice}") from None
        except HistoryError:
            db.close()
            raise
        self._db = db
        self._writing = True
        self._thread = threading.Thread(target=self._supervised, name="history writer", daemon=True)
        self._thread.start()

    def _load(self, db: sqlite3.Connection) -> None:
        """What a restart needs: the highest id ever handed out, the latest events, the reserved names."""
        stored = db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        meta = db.execute("SELECT value FROM meta WHERE key='last_id'").fetchone()
        self.last_id = max(stored, int(meta[0]) if meta else 0)
        rows = db.execute("SELECT id, body FROM events ORDER BY id DESC LIMIT 2000").fetchall()
        self.loaded = self._events(reversed(rows))
        self.reservations = [Reservation(name, digest) for name, digest in
                             db.execute("SELECT name, hash FROM tokens")]

    # --- the room's side: never blocks ---------------------------------------------------------------

    def append(self, event: Event) -> None:
        if self._writing:
            self._jobs.put(("event", event))

    def ids_used_up_to(self, last_id: int) -> None:
        """Ids up to `last_id` were handed out (private messages too), so a restart starts above them."""
        if self._writing:
            self._jobs.put(("last_id", last_id))

    def reserve(self, key: str, name: str, digest: str | None) -> None:
        """Keep (or with None, forget) a resume token's hash for a name, so it survives a restart."""
        if self._writing:
            self._jobs.put(("token", (key, name, digest)))

    # --- queries (from a connection's own thread; they wait for the writer) --------------------------

    def query(self, words: str | None, count: int) -> list[Message] | None:
        """The last `count` public messages (containing every word, if `words`); None without a file."""
        messages: list[Message] | None = self._ask("query", words, count)
        return messages

    def count_between(self, after: int, before: int) -> int:
        """Public events stored with after < id < before (what a resume could not replay)."""
        return self._ask("count", after, before) or 0

    def call(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """`work(db)` run by the writer, after the writes queued before (for the file store's own table, which
        lives in this file); its result, or None without a file or an answer."""
        return self._ask("call", work)

    def _ask(self, kind: str, *args: Any) -> Any:
        """The writer's answer, after the writes queued before the question; None without a file or answer."""
        if not self._writing:
            return None
        future: Future[Any] = Future()
        self._jobs.put((kind, (*args, future)))
        try:
            return future.result(QUERY_TIMEOUT)
        except Exception:
            return None

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(("stop", None))
            self._thread.join(5)
        self._writing = False
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- the writer thread ---------------------------------------------------------------------------

    def _supervised(self) -> None:
        """The writer's loop; an unexpected failure is said once, and the room goes on in memory: no more jobs
        are taken, and the ones already queued are answered (a query with None) instead of waiting."""
        assert self._db is not None
        db = self._db
        while True:
            batch = self._next_batch()
            try:
                if self._writing and not self._write(db, batch):
                    return
            except Exception:
                self._writing = self.on_disk = False
                log.exception("the history writer failed: the room goes on, but keeps its history in memory "
                              "only from now on (the file %s keeps what was written before)", self.path)
            if not self._writing:
                kind, job = batch[-1]
                if kind == "stop":
                    return
                if kind in ("query", "count", "call") and not job[-1].done():
                    job[-1].set_result(None)

    def _next_batch(self) -> list[tuple[str, Any]]:
        """The next job, and the changes that follow it within COMMIT_EVERY (up to a query or a stop)."""
        batch = [self._jobs.get()]
        deadline = time.monotonic() + COMMIT_EVERY
        while batch[-1][0] in ("event", "last_id", "token") and (left := deadline - time.monotonic()) > 0:
            try:
                batch.append(self._jobs.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _write(self, db: sqlite3.Connection, batch: list[tuple[str, Any]]) -> bool:
        """Commit one group of changes, then answer the query or stop that ended it; False to stop."""
        events = [job for kind, job in batch if kind == "event"]
        tokens = [job for kind, job in batch if kind == "token"]
        last_id = max([job for kind, job in batch if kind == "last_id"] + [e.seq for e in events] + [0])
        if (events or tokens or last_id) and self.on_disk:
            try:
                db.execute("BEGIN")
                rows = [(e.seq, e.TYPE, _event_json(e), e.text if isinstance(e, Message) else None)
                        for e in events]
                db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)
                if self.fts:
                    db.executemany("INSERT INTO search(rowid, text) VALUES (?, ?)",
                                   [(row[0], row[3]) for row in rows if row[3] is not None])
                for key, name, digest in tokens:
                    if digest is None:
                        db.execute("DELETE FROM tokens WHERE key=?", (key,))
                    else:
                        db.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?)", (key, name, digest))
                if last_id:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('last_id', ?)", (str(last_id + ID_RESERVE),))
                self._trim(db)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self.on_disk = False
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                log.error("cannot write the history file %s (%s): the room goes on, but keeps its history "
                          "in memory only from now on", self.path, exc)
        kind, job = batch[-1]
        if kind == "stop":
            return False
        if kind in ("query", "count", "call"):
            self._answer(db, kind, job)
        return True

    def _trim(self, db: sqlite3.Connection) -> None:
        cutoff = db.execute("SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?", (self.keep,)).fetchone()
        if cutoff is not None:
            if self.fts:
                db.execute("INSERT INTO search(search, rowid, text) SELECT 'delete', id, text FROM events "
                           "WHERE id <= ? AND text IS NOT NULL", cutoff)
            db.execute("DELETE FROM events WHERE id <= ?", cutoff)

    def _answer(self, db: sqlite3.Connection, kind: str, job: tuple[Any, ...]) -> None:
        *args, future = job
        if kind == "call":
            try:
                future.set_result(args[0](db) if self.on_disk else None)
            except Exception as exc:  # the caller's work: its failure is the caller's, never the writer's
                future.set_exception(exc)
            return
        try:
            future.set_result(self._select(db, *args) if kind == "query" else self._count(db, *args))
        except sqlite3.Error as exc:
            future.set_exception(exc)

    @staticmethod
    def _count(db: sqlite3.Connection, after: int, before: int) -> int:
        count: int = db.execute("SELECT count(*) FROM events WHERE id > ? AND id < ?", (after, before)).fetchone()[0]
        return count

    def _select(self, db: sqlite3.Connection, words: str | None, count: int) -> list[Message]:
        if not words:
            rows = db.execute("SELECT id, body FROM events WHERE type='message' ORDER BY id DESC LIMIT ?",
                              (count,)).fetchall()
        elif self.fts:
            # Every word a quoted phrase: the user's text is never FTS syntax.
            match = " ".join('"' + word.replace('"', '""') + '"' for word in words.split())
            rows = db.execute("SELECT id, body FROM events WHERE id IN (SELECT rowid FROM search WHERE search "
                              "MATCH ?) ORDER BY id DESC LIMIT ?", (match, count)).fetchall()
        else:
            clauses = " AND ".join(["text LIKE ? ESCAPE '\\'"] * len(words.split()))
            patterns = ["%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                        for word in words.split()]
            rows = db.execute(f"SELECT id, body FROM events WHERE type='message' AND {clauses} ORDER BY id DESC "
                              "LIMIT ?", (*patterns, count)).fetchall()
        return [event for event in self._events(reversed(rows)) if isinstance(event, Message)]

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
