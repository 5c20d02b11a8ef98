"""What the window shows for an event: render's words, cut into (text, tags) runs for a Tk Text. Pure.

render.render does the wording and the sanitizing for both front ends; here its Theme writes markers instead
of escape codes. The markers are control characters, which sanitize removes from every string from the
network, so nothing a server sends can forge one.
"""

from __future__ import annotations

import re

from ... import render
from ...protocol import Event, Message, Private
from ..screen import COLORS

_OPEN, _CLOSE, _RESET = "\x0e", "\x0f", "\x10"


def _mark(tag: str) -> str:
    return f"{_OPEN}{tag}{_CLOSE}"


# One name tag per color of the console's palette: render.name_color picks the same index for both.
NAME_TAGS = tuple(f"name{index}" for index in range(len(COLORS.palette)))
MARKERS = render.Theme(time=_mark("time"), system=_mark("system"), error=_mark("error"),
                       private=_mark("private"), earlier=_mark("earlier"), own=_mark("own"),
                       palette=tuple(_mark(tag) for tag in NAME_TAGS), reset=_RESET)
_RUN = re.compile(f"{_OPEN}([^{_CLOSE}]*){_CLOSE}([^{_RESET}]*){_RESET}")

Runs = list[tuple[str, tuple[str, ...]]]


def runs(text: str, line_tags: tuple[str, ...] = ()) -> Runs:
    """Marked-up text as (text, tags) runs; every run also gets `line_tags`."""
    out: Runs = []
    position = 0
    for match in _RUN.finditer(text):
        if match.start() > position:
            out.append((text[position:match.start()], line_tags))
        out.append((match.group(2), (match.group(1), *line_tags)))
        position = match.end()
    if position < len(text):
        out.append((text[position:], line_tags))
    return out


def event_runs(event: Event, me: str) -> Runs:
    """The runs for an event, ending with its newline; [] for nothing to show."""
    text = render.render(event, me, MARKERS)
    if not text:
        return []
    line_tags: tuple[str, ...] = ()
    if isinstance(event, Private):
        line_tags = ("private_line",)
    elif isinstance(event, Message) and render.wants_attention(event, me):
        line_tags = ("mention_line",)
    return runs(text + "\n", line_tags)


def note(text: str, role: str = "system") -> Runs:
    """A line of the client's own (not from the server) in one role's style."""
    return runs(MARKERS.paint(_mark(role), render.sanitize(text)) + "\n")


def plain(text_runs: Runs) -> str:
    return "".join(text for text, _ in text_runs)


# --- the console palette's escape codes as Tk colors ------------------------------

# The 16 ANSI colors (Tango), readable on the window's dark background like in a terminal.
ANSI = ("#2e3436", "#cc0000", "#4e9a06", "#c4a000", "#3465a4", "#75507b", "#06989a", "#d3d7cf",
        "#555753", "#ef2929", "#8ae234", "#fce94f", "#729fcf", "#ad7fa8", "#34e2e2", "#eeeeec")
DEFAULT_FOREGROUND = "#d3d7cf"


def _xterm256(number: int) -> str:
    if number < 16:
        return ANSI[number]
    if number >= 232:
        grey = 8 + 10 * (number - 232)
        return f"#{grey:02x}{grey:02x}{grey:02x}"
    levels = (0, 95, 135, 175, 215, 255)
    number -= 16
    return "#{:02x}{:02x}{:02x}".format(levels[number // 36], levels[number // 6 % 6], levels[number % 6])


def tk_color(code: str) -> str:
    """The color an SGR escape code (or several, e.g. blue + bright) sets the text to, as #rrggbb."""
    numbers = [int(part) for params in re.findall(r"\x1b\[([\d;]*)m", code) for part in params.split(";") if part]
    color, bright = None, 1 in numbers
    index = 0
    while index < len(numbers):
        number = numbers[index]
        if 30 <= number <= 37 or 90 <= number <= 97:
            color = ANSI[number % 10 + (8 if number >= 90 else 0)]
            bright = bright or number >= 90
        elif number == 38 and numbers[index + 1:index + 2] == [5]:
            color = _xterm256(numbers[index + 2])
            index += 2
        elif number == 38 and numbers[index + 1:index + 2] == [2]:
            color = "#{:02x}{:02x}{:02x}".format(*numbers[index + 2:index + 5])
            index += 4
        index += 1
    if color in ANSI[:8] and bright:  # a terminal shows bold + a basic color as its bright twin
        color = ANSI[ANSI.index(color) + 8]
    return color or DEFAULT_FOREGROUND


NAME_COLORS = {tag: tk_color(code) for tag, code in zip(NAME_TAGS, COLORS.palette)}
