"""A file name someone else offered, made safe to save on this computer, and a name that overwrites nothing.
Pure: the caller says which names exist.

The offered name is the sender's to choose, so it is treated as hostile: only its last path part counts
(`../../x` and `..\\x` are `x`), control and bidi characters go (U+202E would show `gnp.exe` as `exe.png`),
NFC, no leading dots (no hidden files, no `..`), no trailing dots or spaces (Windows drops them, changing the
name), the characters Windows forbids become `_`, Windows' reserved device names (`CON`, `NUL.txt`, `COM1`)
get a `_` before them, and it is cut to at most 200 bytes of UTF-8, keeping its extension.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from wcwidth import iter_graphemes

MAX_BYTES = 200
FALLBACK = "file"  # for a name with nothing left
WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
# Cc controls, Cf format characters (bidi marks and overrides, zero-width ones), Cs lone surrogates, line and
# paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Windows' device names, whatever the extension or case (NUL.txt is NUL), with the superscript digits it also
# reserves.
RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                      *(f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789¹²³")})
LONGEST_EXTENSION = 20  # a longer "extension" is part of the name when cutting it short


def safe_name(offered: str) -> str:
    """The name to save an offered file as (before making it unique in its folder)."""
    name = re.split(r"[/\\]", offered)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join("_" if char in WINDOWS_FORBIDDEN else char for char in name
                   if unicodedata.category(char) not in UNSAFE_CATEGORIES)
    name = name.strip().lstrip(".").rstrip(". ")
    if not name:
        return FALLBACK
    if name.split(".")[0].rstrip(" ").upper() in RESERVED:
        name = "_" + name
    stem, extension = _split(name)
    return _cut(stem, MAX_BYTES - len(extension.encode())) + extension


def _split(name: str) -> tuple[str, str]:
    """A name's stem and extension ("slides", ".pdf"); a long or missing extension is part of the stem."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > LONGEST_EXTENSION:
        return name, ""
    return stem, "." + extension


def _cut(stem: str, room: int) -> str:
    """The stem in at most `room` bytes of UTF-8, cut between characters as people see them."""
    if len(stem.encode()) <= room:
        return stem
    kept, size = [], 0
    for cluster in iter_graphemes(stem):
        size += len(cluster.encode())
        if size > room:
            break
        kept.append(cluster)
    return "".join(kept).rstrip(". ") or FALLBACK


def unique_name(name: str, taken: Callable[[str], bool]) -> str:
    """`name`, or `name (1).ext`, `name (2).ext`... the first that `taken` says is free: nothing is overwritten."""
    if not taken(name):
        return name
    stem, extension = _split(name)
    number = 1
    while True:
        suffix = f" ({number}){extension}"
        candidate = _cut(stem, MAX_BYTES - len(suffix.encode())) + suffix
        if not taken(candidate):
            return candidate
        number += 1
