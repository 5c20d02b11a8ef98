"""Text as a person sees it: user-perceived characters (extended grapheme clusters, Unicode UAX #29). Pure.

The editor moves and deletes by cluster, so 👨‍👩‍👧, é written as e + U+0301, 👍🏽 or 🇩🇪 never split. The rules
that matter for chat are here, from unicodedata alone (no dependency): combining and spacing marks, variation
selectors, emoji modifiers and tags extend a cluster; a zero-width joiner joins two pictographs; regional
indicators pair up. Left out: Hangul jamo sequences (precomposed syllables are what keyboards send) and
Prepend characters.
"""

from __future__ import annotations

import unicodedata

ZWJ = "\u200d"
_EXTEND_CATEGORIES = {"Mn", "Me", "Mc"}  # variation selectors are Mn
_EXTENDERS = {ZWJ, "\u200c"}


def _extends(ch: str) -> bool:
    code = ord(ch)
    return (unicodedata.category(ch) in _EXTEND_CATEGORIES or ch in _EXTENDERS
            or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
            or 0xE0020 <= code <= 0xE007F)  # tags (subdivision flags)


def _pictographic(ch: str) -> bool:
    # Unicode's Extended_Pictographic is not in unicodedata; emoji are symbols ("So") in practice.
    return unicodedata.category(ch) == "So"


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _joins(cluster: str, ch: str) -> bool:
    """Whether ch continues the cluster instead of starting a new one."""
    last = cluster[-1]
    if unicodedata.category(last) == "Cc" or unicodedata.category(ch) == "Cc":
        return False
    if _extends(ch):
        return True
    if last == ZWJ:
        return _pictographic(ch) and _pictographic(cluster[0])
    return _regional(ch) and len(cluster) == 1 and _regional(last)


def graphemes(text: str) -> list[str]:
    """The text split into user-perceived characters."""
    clusters: list[str] = []
    for ch in text:
        if clusters and _joins(clusters[-1], ch):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    return clusters
