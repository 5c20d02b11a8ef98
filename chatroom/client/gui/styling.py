"""What the window shows for an event: render's words, cut into (text, tags) runs for a Tk Text. Pure.

render.render does the wording and the sanitizing for both front ends; here its Theme writes markers instead
of escape codes. The markers are control characters, which sanitize removes from every string from the
network, so nothing a server sends can forge one.
"""

from __future__ import annotations

import re

from ... import render
from ...protocol import Event, Message, Private, sanitize

_OPEN, _CLOSE, _RESET = "\x0e", "\x0f", "\x10"


def _mark(tag: str) -> str:
    return f"{_OPEN}{tag}{_CLOSE}"


# One tag per name color: the theme's palette in render.NAME_COLORS' order, so a name has the tag of the color
# the console's 256-color theme gives it (by its hash, or the slot a front end's NameSlots gives it). No
# `mention` code: the window marks a whole line by a line tag instead.
NAME_TAGS = {f"name{index}": render.color_rgb(color) for index, color in enumerate(render.NAME_COLORS)}
MARKERS = render.Theme(time=_mark("time"), system=_mark("system"), error=_mark("error"),
                       private=_mark("private"), earlier=_mark("earlier"), own=_mark("own"),
                       palette=tuple(_mark(tag) for tag in NAME_TAGS), hues=render.NAME_HUES, reset=_RESET)
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


def event_runs(event: Event, me: str, theme: render.Theme = MARKERS) -> Runs:
    """The runs for an event, ending with its newline; [] for nothing to show. `theme`: MARKERS, maybe with
    slots of its own."""
    text = render.render(event, me, theme)
    if not text:
        return []
    line_tags: tuple[str, ...] = ()
    if isinstance(event, Private):
        line_tags = ("private_line",)
    elif isinstance(event, Message) and render.mentions(event, me):
        line_tags = ("mention_line",)
    return runs(text + "\n", line_tags)


def note(text: str, role: str = "system") -> Runs:
    """A line of the client's own (not from the server) in one role's style."""
    return runs(MARKERS.paint(_mark(role), sanitize(text)) + "\n")


def plain(text_runs: Runs) -> str:
    return "".join(text for text, _ in text_runs)
