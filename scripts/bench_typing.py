"""Typing a long line in the console: python scripts/bench_typing.py [--length 4000] [--columns 80].

Feeds the line editor one key at a time and redraws the input line after each, as the console does (into a
sink, as if to an 80-column terminal), and prints the time per key: typed at the end of the line, and typed at
its start (Home first), where everything after the cursor is measured and split again. The text mixes
ASCII, accents, CJK and emoji, the characters whose width and clusters cost the most to find.

Works on older checkouts too: PYTHONPATH=/path/to/checkout python scripts/bench_typing.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: that checkout wins

SAMPLE = "hello wörld, e\u0301 你好 👋🏽 🇩🇪 "


class Sink:
    """A terminal that takes everything at once."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def per_key(length: int, at_start: bool) -> list[float]:
    from readchar import key

    from chatroom.client.console.editor import LineEditor
    from chatroom.client.console.screen import Screen

    editor = LineEditor()
    screen = Screen(Sink(), editor, interactive=True, colors=True, environ={"TERM": "xterm-256color"})  # type: ignore[arg-type]
    screen.status = "connected · 2 users · 127.0.0.1:65432 · clear text"
    text = (SAMPLE * (length // len(SAMPLE) + 1))[:length]
    times = []
    for ch in text:
        started = time.perf_counter()
        if at_start:
            editor.feed(key.HOME)
        editor.feed(ch)
        screen.redraw()
        times.append(time.perf_counter() - started)
    assert len(editor.text) == len(text) and (at_start or editor.text == text)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    last = times[-500:]
    return (f"mean {statistics.fmean(times) * 1000:.3f} ms, p99 {ordered[int(0.99 * len(ordered))] * 1000:.3f} ms, "
            f"max {ordered[-1] * 1000:.3f} ms, the last 500 keys {statistics.fmean(last) * 1000:.3f} ms each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4000, help="characters typed (4000)")
    parser.add_argument("--columns", type=int, default=80, help="the terminal's width (80)")
    args = parser.parse_args()
    os.environ["COLUMNS"], os.environ["LINES"] = str(args.columns), "24"  # what shutil.get_terminal_size reads
    for at_start, where in [(False, "at the end"), (True, "at the start")]:
        print(f"{args.length} keys typed {where}: {summary(per_key(args.length, at_start))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
