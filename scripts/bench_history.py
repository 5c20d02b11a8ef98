"""The history writer's work per message, step by step, in one process: python scripts/bench_history.py
[--groups G] [--per N] [--trigram | --grouped].

Writes G groups of N messages (1,600: what saturation at N=100 gives the writer every 0.1 s) into a new history
file the way the writer does (one transaction a group, the rows made from events whose JSON the room already
encoded), timing each step with this thread's CPU clock. `--trigram` also keeps the FTS5 trigram index of
schema 2 (issue #18's, dropped by issue #21): one entry per message in the same transaction, to show what it
cost. `--grouped` writes one row per group instead (its messages' JSON joined, and their case-folded texts for a
search): not the server's layout, a measure of what a file of groups would cost the writer. docs/performance.md,
"The history's search index" and "An honest load generator".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: that checkout wins

from chatroom.codecs import encode_json  # noqa: E402
from chatroom.protocol import Message  # noqa: E402
from chatroom.server.history import History, _event_json, searchable  # noqa: E402

TRIGRAM_TABLE = ("CREATE VIRTUAL TABLE search USING fts5(text, content='events', content_rowid='id', "
                 "tokenize='trigram case_sensitive 1')")
GROUPS_TABLE = "CREATE TABLE groups (last INTEGER PRIMARY KEY, bodies TEXT NOT NULL, texts TEXT NOT NULL)"
STEPS = ("rows", "insert", "index", "commit")


def measure(groups: int, per: int, trigram: bool, grouped: bool = False) -> dict[str, float]:
    """CPU µs per message of each step."""
    spent: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as directory:
        history = History(Path(directory) / "room.sqlite3", keep=groups * per)
        try:
            db = history._db
            assert db is not None
            if trigram:
                db.execute(TRIGRAM_TABLE)
            if grouped:
                db.execute(GROUPS_TABLE)
            seq = history.last_id
            text = "B|12|345|1733333333333|" + "x" * 40  # the benchmark's payload, 64 bytes
            for _ in range(groups):
                events = []
                for index in range(per):
                    seq += 1
                    event = Message(seq, f"u{index % 100}", text)
                    encode_json(event)  # as the room did for its JSON members
                    events.append(event)
                clock = time.thread_time
                began = clock()
                db.execute("BEGIN")
                if grouped:  # JSON holds no raw newline; a sanitized text holds no NUL
                    rows = [(events[-1].seq, "\n".join([_event_json(e) for e in events]),
                             "\0".join([searchable(e.text) for e in events]))]
                else:
                    rows = [(e.seq, e.TYPE, _event_json(e), searchable(e.text)) for e in events]
                made = clock()
                if grouped:
                    db.executemany("INSERT INTO groups VALUES (?, ?, ?)", rows)
                else:
                    db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)
                inserted = clock()
                if trigram:
                    db.executemany("INSERT INTO search(rowid, text) VALUES (?, ?)", [(r[0], r[3]) for r in rows])
                indexed = clock()
                db.execute("COMMIT")
                committed = clock()
                for step, seconds in zip(STEPS, (made - began, inserted - made, indexed - inserted,
                                                 committed - indexed)):
                    spent[step] += seconds
        finally:
            history.close()
    return {step: spent[step] / (groups * per) * 1e6 for step in STEPS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=40, help="transactions (default 40)")
    parser.add_argument("--per", type=int, default=1600, help="messages in each (default 1600)")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--trigram", action="store_true", help="also keep schema 2's trigram index")
    layout.add_argument("--grouped", action="store_true", help="one row per group (not the server's layout)")
    args = parser.parse_args()
    figures = measure(args.groups, args.per, args.trigram, args.grouped)
    kind = ", with the trigram index" if args.trigram else ", one row per group" if args.grouped else ""
    print(f"{args.groups} groups of {args.per} messages{kind}: µs of CPU per message")
    for step in STEPS:
        print(f"  {figures[step]:6.2f}  {step}")
    print(f"  {sum(figures.values()):6.2f}  in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
