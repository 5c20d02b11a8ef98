"""A transfer's progress in words for people: `↑ slides.pdf 45 % 3.1 MB/s 0:04 left`. Pure.

The console's status line and the window's progress bars both word it so.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import sanitize
from ..render import size_text

UP, DOWN = "↑", "↓"


@dataclass(frozen=True)
class Row:
    """One transfer as a front end shows it. `key` stays the same for its whole life (an upload gets its `id`
    from the server later); `rate` is bytes a second lately (0: not known yet); `state` is what it does
    ("waiting" for the server or a connection, "sending", "receiving", "checking")."""
    key: str
    id: int
    upload: bool
    name: str
    size: int
    done: int
    rate: float
    state: str

    @property
    def fraction(self) -> float:
        return self.done / self.size if self.size else 1.0


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def describe(row: Row, name_width: int = 40) -> str:
    """`↑ slides.pdf 45 % 3.1 MB/s 0:04 left`; while it waits, `↑ slides.pdf 45 % waiting`."""
    name = sanitize(row.name)
    if len(name) > name_width:
        name = name[:name_width - 1] + "…"
    head = f"{UP if row.upload else DOWN} {name} {int(row.fraction * 100)} %"
    if row.state in ("sending", "receiving") and row.rate > 0:
        left = (row.size - row.done) / row.rate
        return f"{head} {size_text(row.rate)}/s {_clock(left)} left"
    return f"{head} {row.state}"


def summary(rows: tuple[Row, ...]) -> str:
    """The transfers for a status line: the first one in full, then how many more."""
    if not rows:
        return ""
    more = f" (+{len(rows) - 1} more)" if len(rows) > 1 else ""
    return describe(rows[0]) + more
