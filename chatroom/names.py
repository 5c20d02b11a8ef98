"""Username rules: what a valid name is, and when two names are the same person.

Pure. The room uses `check` at login and on /nick.
"""

from __future__ import annotations

import bisect
import functools
import json
import string
import unicodedata
from importlib import resources

MAX_NAME_LENGTH = 20
_PUNCTUATION = "_-."

# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt, Unicode 14.0), a property
# unicodedata does not expose. They draw nothing, so a name holding one (U+034F, a variation
# selector, a Hangul filler...) would pose as the name without it, or as a blank one.
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
_INVISIBLE_STARTS = [first for first, _ in _INVISIBLE]


class NameProblem(ValueError):
    """Why a name cannot be used; the message is shown to the user as is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize(name: str) -> str:
    """The display form: compatibility forms folded, so 'ＢＯＢ' is shown as 'BOB'."""
    return unicodedata.normalize("NFKC", name.strip())


def key(name: str) -> str:
    """Two names with the same key are the same name (case and compatibility forms ignored)."""
    return unicodedata.normalize("NFKC", normalize(name).casefold())


@functools.cache
def _look_alikes() -> dict[str, str]:
    """Each character that looks like others, mapped to one representative of its group.

    The groups come from Unicode's confusables data (as packaged by confusable_homoglyphs);
    characters that are only confusable with a sequence are left alone.
    """
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    parent: dict[str, str] = {}

    def root(ch: str) -> str:
        while parent.get(ch, ch) != ch:
            parent[ch] = parent.get(parent[ch], parent[ch])
            ch = parent[ch]
        return ch

    def join(one: str, other: str) -> None:
        a, b = root(one), root(other)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for ch, homoglyphs in data.items():
        for glyph in homoglyphs:
            other = glyph["c"].strip("\u200e\u200f")
            if len(ch) == 1 and len(other) == 1:
                join(ch, other)
    # Names are compared without case, so 'O' (drawn like Cyrillic О and 0) and 'o' are one group; so are
    # I, l, L, i and 1 ('aIice' is drawn like 'alice', 'ALICE' is 'alice'). Only ASCII: wider case links
    # chain unrelated groups together (long s is f-shaped and folds to s).
    for upper in string.ascii_uppercase:
        join(upper, upper.lower())
    return {ch: root(ch) for ch in parent}


def skeleton(name: str) -> str:
    """Names with the same skeleton look alike, whatever their case: 'alice' and 'аlice' (Cyrillic а),
    'aIice' and 'АLICE'; 'bob' and 'ВОВ' (Cyrillic capitals).

    Look-alikes are mapped as drawn first (Cyrillic В is B, then b), then again after folding the case
    of letters outside ASCII.
    """
    table = _look_alikes()

    def fold(text: str) -> str:
        return "".join(table.get(ch, ch) for ch in text)

    return fold(fold(normalize(name)).casefold())


def _invisible(ch: str) -> bool:
    index = bisect.bisect_right(_INVISIBLE_STARTS, ord(ch)) - 1
    return index >= 0 and ord(ch) <= _INVISIBLE[index][1]


def _allowed(ch: str, first: bool) -> bool:
    category = unicodedata.category(ch)
    if category[0] == "L" or category == "Nd" or ch in _PUNCTUATION:
        return True
    # Combining marks are part of letters in many scripts (Devanagari, Thai...), never alone.
    return category[0] == "M" and not first


def check(name: str) -> str:
    """The display form of a valid name, or NameProblem saying what is wrong."""
    shown = normalize(name)
    if not shown:
        raise NameProblem("name_invalid", "a username cannot be empty")
    if len(shown) > MAX_NAME_LENGTH:
        raise NameProblem("name_invalid", f"a username has at most {MAX_NAME_LENGTH} characters")
    for index, ch in enumerate(shown):
        if _invisible(ch):
            what = f"an invisible character (U+{ord(ch):04X})"
        elif not _allowed(ch, first=index == 0):
            what = "a space" if ch.isspace() else repr(ch)
        else:
            continue
        raise NameProblem("name_invalid", f"a username cannot contain {what}: use letters, digits, _ - and . only")
    return shown
