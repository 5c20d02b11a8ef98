"""An event as the text a person reads, styled by a Theme.

Pure, and shared by the console client (colors) and the server's plain-text mode (PLAIN).
Every string from the network is sanitized here, so nothing in it can steer a terminal.
"""

from __future__ import annotations

import colorsys
import dataclasses
import datetime
import math
import re
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from . import names
from .protocol import (
    LEAVE_REASONS, NEWS, Bye, CaughtUp, Error, Event, FileList, FileNote, FileShared, Found, Help, Joined, Left,
    Message, Private, Reconnecting, Renamed, Shutdown, Users, Welcome, sanitize, sanitize_lines,
)

# Colors for user names, from xterm's 256: two rings of hues of its 6x6x6 cube (channel levels 1-5, and the
# paler 3-5), readable on a dark background, in hue order; the own name's green and the errors' red left out.
# Many colors, so few names share one; the hash picks the same one for a name in every session and window.
NAME_COLORS = (209, 215, 221, 227, 191, 155, 119, 84, 85, 86, 87, 81, 75, 69, 63, 99, 135, 171, 207, 206, 205,
               204, 217, 223, 229, 193, 157, 158, 159, 153, 147, 183, 219, 218)
_CUBE_LEVELS = (0, 95, 135, 175, 215, 255)


def _slot(name: str, count: int) -> int:
    return zlib.crc32(names.key(name).encode()) % count


def name_color(name: str) -> int:
    """The xterm-256 color a user's name has by its hash alone (a front end that knows who is here asks its
    `NameSlots`, which keeps the names here apart)."""
    return NAME_COLORS[_slot(name, len(NAME_COLORS))]


class NameSlots:
    """Which color of a palette each name gets: the one its hash picks, unless a name here now has a color of a
    near hue (`hues`: each color's, in degrees; without them only the same color counts), then the first in a
    walk around the palette that is far from all of theirs, else one no name here has. So two names here look
    alike only when there are more names than distinct colors; a name keeps its color while it is here, and one
    that comes back usually finds its own free."""

    NEAR = 45.0  # degrees of hue: closer than this, two names look alike

    def __init__(self, count: int, hues: tuple[float, ...] = ()) -> None:
        self.count, self.hues = count, hues
        self._taken: dict[str, int] = {}  # the names here (by key) and their slots
        # coprime with the count, so the walk visits every slot; about 3/8 of the palette, far in hue
        self._stride = next((step for step in range(max(1, round(count * 0.382)), count)
                             if math.gcd(step, count) == 1), 1)

    def here(self, users: Iterable[str]) -> None:
        """The names here now, in the order they came: the new ones get a slot, those gone free theirs."""
        keys = [names.key(user) for user in users]
        self._taken = {key: slot for key, slot in self._taken.items() if key in keys}
        for key in keys:
            if key not in self._taken:
                self._taken[key] = self._free(key)

    def _near(self, one: int, other: int) -> bool:
        if one == other or not self.hues:
            return one == other
        apart = abs(self.hues[one] - self.hues[other]) % 360
        return min(apart, 360 - apart) < self.NEAR

    def _free(self, key: str) -> int:
        first = _slot(key, self.count)
        walk = [(first + step * self._stride) % self.count for step in range(self.count)]
        used = set(self._taken.values())
        apart = [slot for slot in walk if not any(self._near(slot, other) for other in used)]
        free = [slot for slot in walk if slot not in used]
        return (apart or free or [first])[0]

    def slot(self, name: str) -> int:
        key = names.key(name)
        return self._taken[key] if key in self._taken else _slot(key, self.count)


def color_rgb(color: int) -> str:
    """An xterm-256 color of the 6x6x6 cube (16-231) as "#rrggbb"."""
    red, green, blue = ((color - 16) // 36, (color - 16) // 6 % 6, (color - 16) % 6)
    return "#" + "".join(f"{_CUBE_LEVELS[level]:02x}" for level in (red, green, blue))


def _hue(color: int) -> float:
    red, green, blue = (int(color_rgb(color)[index:index + 2], 16) / 255 for index in (1, 3, 5))
    return colorsys.rgb_to_hls(red, green, blue)[0] * 360


NAME_HUES = tuple(_hue(color) for color in NAME_COLORS)


@dataclass(frozen=True)
class Theme:
    """Escape codes per role; the empty default theme writes plain text."""
    time: str = ""
    system: str = ""
    error: str = ""
    private: str = ""
    earlier: str = ""
    own: str = ""
    mention: str = ""  # a whole line that names you
    palette: tuple[str, ...] = ()
    reset: str = ""
    hues: tuple[float, ...] = ()  # of the palette's colors, in degrees, when known: near hues look alike
    # Who has which palette color; None: each name by its hash alone (the same everywhere, but two may meet).
    slots: NameSlots | None = None

    def keeping_names_apart(self) -> Theme:
        """This theme with slots of its own, for a front end that tells them who is here."""
        return dataclasses.replace(self, slots=NameSlots(len(self.palette), self.hues)) if self.palette else self

    def paint(self, code: str, text: str) -> str:
        return f"{code}{text}{self.reset}" if code else text

    def highlight(self, text: str) -> str:
        """The whole of an already painted text in the mention style (renewed after each reset inside)."""
        if not self.mention:
            return text
        return self.paint(self.mention, text.replace(self.reset, self.reset + self.mention))

    def name(self, name: str, me: str = "") -> str:
        """A user's name in a color of its own, the same in every session."""
        if me and names.key(name) == names.key(me):
            return self.paint(self.own, name)
        if not self.palette:
            return name
        slot = self.slots.slot(name) if self.slots is not None else _slot(name, len(self.palette))
        return self.paint(self.palette[slot], name)


PLAIN = Theme()


def clock(ts: float) -> str:
    """The time of day of `ts`, or "--:--" for one this platform cannot show (the decoder refuses those from the
    network, but drawing must never raise: on Windows, localtime refuses a time before 1970)."""
    try:
        return time.strftime("%H:%M", time.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "--:--"


def day(ts: float) -> datetime.date:
    """The local date of a time stamp."""
    return datetime.date.fromtimestamp(ts)


def day_line(ts: float) -> str:
    """The separator before the first event of a day: "— Tuesday 1 December —"."""
    date = day(ts)
    return f"— {date:%A} {date.day} {date:%B} —"


def preview(text: str) -> str:
    """The start of a message, for a notice that quotes it: at most 40 characters."""
    return text if len(text) <= 40 else text[:39] + "…"


def size_text(count: float) -> str:
    """A number of bytes for people, in decimal units as file managers and browsers show them: 2.4 MB."""
    if count < 1000:
        return f"{count:.0f} byte{'' if count == 1 else 's'}"
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if count < 999.95 or unit == "TB":
            return f"{count:.1f} {unit}" if count < 99.95 else f"{count:.0f} {unit}"
    raise AssertionError("unreachable")


def duration_text(seconds: float) -> str:
    """A stretch of time for people: "5 min", "3 h 20 min", "2 days"."""
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{round(hours / 24)} days"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def offered_to_me(event: FileShared, me: str) -> bool:
    """A file offered to me alone (I may /decline it)."""
    return event.to is not None and bool(me) and names.key(event.to) == names.key(me)


def shared_text(event: FileShared, me: str = "", theme: Theme = PLAIN) -> str:
    """A share notice: who shares what with whom, and the command that fetches it."""
    sender, name = sanitize(event.sender), sanitize(event.name)
    what = f"{name} ({size_text(event.size)})"
    if event.to is None:
        return f"{theme.name(sender, me)} shares {what} — /get {event.id}"
    if offered_to_me(event, me):
        return f"{theme.name(sender, me)} offers you {what} — /get {event.id} or /decline {event.id}"
    to = sanitize(event.to)
    return f"{theme.name(sender, me)} offers {theme.name(to, me)} {what} — until they /get or /decline it"


def leave_reason(code: str) -> str:
    return LEAVE_REASONS.get(code, sanitize(code))


def render(event: Event, me: str = "", theme: Theme = PLAIN, indent: int | None = None) -> str:
    """The lines to show for an event (joined by newlines), or "" for nothing. The lines of a message after its
    first stand under its text, or with `indent` spaces before each (the server's plain text: fewer bytes)."""
    t = theme
    stamp = t.paint(t.time, f"[{clock(event.ts)}]") if hasattr(event, "ts") else ""

    def system(text: str) -> str:
        # Names stay in the notice's color: a reset inside would end it early.
        return f"{stamp} {t.paint(t.system, '-- ' + text)}".lstrip()

    match event:
        case Message(sender=sender, text=text, action=action, earlier=earlier):
            sender = sanitize(sender)
            who = t.name(sender, me)
            head = (f"[{clock(event.ts)}] " + ("(earlier) " if earlier else "")
                    + (f"* {sender} " if action else f"<{sender}> "))
            # The lines of a pasted block stand under its first, after the sender.
            text = sanitize_lines(text).replace("\n", "\n" + " " * (len(head) if indent is None else indent))
            line = f"* {who} {text}" if action else f"<{who}> {text}"
            if earlier:
                return f"{stamp} {t.paint(t.earlier, '(earlier)')} {line}"
            if mentions(event, me):
                return t.highlight(f"{stamp} {line}")
            return f"{stamp} {line}"
        case Private(sender=sender, to=to, text=text):
            sender, to, text = sanitize(sender), sanitize(to), sanitize(text)
            if me and names.key(sender) == names.key(me):
                tag = t.paint(t.private, "[private to ") + t.name(to, me)
            elif me:
                tag = t.paint(t.private, "[private from ") + t.name(sender, me)
            else:
                tag = t.paint(t.private, "[private ") + f"{t.name(sender)} -> {t.name(to)}"
            return f"{stamp} {tag}{t.paint(t.private, ']')} {text}"
        case Joined(name=name, back=back):
            return system(f"{sanitize(name)} {'is back' if back else 'joined'}")
        case Reconnecting(name=name):
            return system(f"{sanitize(name)} is reconnecting")
        case Left(name=name, reason=reason):
            return system(f"{sanitize(name)} left ({leave_reason(reason)})")
        case Renamed(old=old, new=new):
            return system(f"{sanitize(old)} is now known as {sanitize(new)}")
        case Welcome(name=name, users=users, away=away, resumed=resumed):
            here = ", ".join(sanitize(user) + (" (reconnecting)" if user in away else "") for user in users)
            if resumed:
                return system(f"Welcome back, {sanitize(name)}! Here now: {here}.")
            return system(f"Welcome, {sanitize(name)}! Here now: {here}. Type /help for the commands.")
        case Users(users=users, you=you, away=away):
            rows = [f"Users here ({len(users)}):"]
            for number, user in enumerate(users, 1):
                mark = " (you)" if names.key(user) == names.key(you) else " (reconnecting)" if user in away else ""
                rows.append(f"  [{number}] {t.name(sanitize(user), you)}{mark}")
            return "\n".join(rows)
        case CaughtUp(count=count, missing=missing):
            text = (f"— {count} message{'' if count == 1 else 's'} while you were away —" if count
                    else "— nothing new while you were away —")
            if missing:
                text += f" ({missing} older events could not be replayed: /history shows more)"
            return f"{stamp} {t.paint(t.system, text)}"  # a marker of its own: no "-- " before it
        case Found(query=query, messages=messages):
            head = f'Messages with "{sanitize(query)}"' if query else "The last messages"
            rows = [f"{head} ({len(messages)}):" if messages else f"{head}: none"]
            shown_day = None
            for message in messages:  # old answers carry their dates: a line at each new day
                if (date := day(message.ts)) != shown_day:
                    rows.append(t.paint(t.system, day_line(message.ts)))
                    shown_day = date
                rows.append(render(dataclasses.replace(message, earlier=False), me, theme, indent))
            return "\n".join(rows)
        case FileShared():
            return f"{stamp} {t.paint(t.system, '--')} {shared_text(event, me, t)}"
        case FileList(files=files):
            rows = [f"Files kept here ({len(files)}):" if files else "Files kept here: none"]
            for shared in files:
                rows.append(f"  {shared_text(shared, me, t)} (kept {duration_text(shared.expires - shared.ts)} more)")
            return "\n".join(rows)
        case FileNote(code=code, message=message) if code in NEWS:
            return system(sanitize(message))
        case Help(lines=lines):
            return "\n".join(sanitize(line) for line in lines)
        case Error(message=message) | FileNote(message=message):
            return t.paint(t.error, f"! {sanitize(message)}")
        case Bye(reason=reason):
            if reason == "quit":
                return system("Goodbye!")
            return system(f"Disconnected: {leave_reason(reason)}")
        case Shutdown(message=message):
            return system(f"The {sanitize(message).removeprefix('the ')}.")
    return ""


def mentions(event: Message, me: str) -> bool:
    """Someone else's message that names me."""
    if not me or event.earlier or names.key(event.sender) == names.key(me):
        return False
    pattern = rf"(?<![\w.-]){re.escape(names.key(me))}(?![\w-])"
    return re.search(pattern, names.key(event.text)) is not None


Attention = Literal["mention", "private"]


def attention(event: Event, me: str) -> Attention | None:
    """Whether an event is for me: a private message to me, or my name mentioned by someone else (ring the
    bell, count it as unread as what it is)."""
    if isinstance(event, Private):
        to_me = names.key(event.to) == names.key(me) and names.key(event.sender) != names.key(me)
        return "private" if to_me else None
    return "mention" if isinstance(event, Message) and mentions(event, me) else None
