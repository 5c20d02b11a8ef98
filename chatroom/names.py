"""Username rules: what a valid name is, and when two names are the same person.

Pure. The room uses `check` at login and on /nick.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from importlib import resources

MAX_NAME_LENGTH = 20
_PUNCTUATION = "_-."


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

    for ch, homoglyphs in data.items():
        for glyph in homoglyphs:
            other = glyph["c"].strip("\u200e\u200f")
            if len(ch) == 1 and len(other) == 1:
                a, b = root(ch), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {ch: root(ch) for ch in parent}


def skeleton(name: str) -> str:
    """Names with the same skeleton look alike: 'alice' and 'аlice' (Cyrillic а), 'alice' and 'aIice'."""
    table = _look_alikes()

    def fold(text: str) -> str:
        return "".join(table.get(ch, ch) for ch in text)

    return fold(fold(normalize(name)).casefold())


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
        if not _allowed(ch, first=index == 0):
            what = "a space" if ch.isspace() else repr(ch)
            raise NameProblem(
                "name_invalid",
                f"a username cannot contain {what}: use letters, digits, _ - and . only",
            )
    return shown
