"""Text as a person sees it in a terminal: user-perceived characters (extended grapheme clusters, Unicode
UAX #29) and the columns they take. Pure, from wcwidth's tables (wcwidth segments and measures by the same
Unicode version, so a cluster's width is the one the terminal gives it).

The editor moves and deletes by cluster, so 👨‍👩‍👧, é written as e + U+0301, 👍🏽, 🇩🇪 or the Devanagari
conjunct क्षि never split; an emoji takes two columns, a combining mark or a zero-width space none.
"""

from __future__ import annotations

import wcwidth


def graphemes(text: str) -> list[str]:
    """The text split into user-perceived characters."""
    return list(wcwidth.iter_graphemes(text))


def text_width(text: str) -> int:
    """Columns the text takes in a terminal. Control characters take none: what is drawn is sanitized first
    (and the screen measures its own style codes apart)."""
    return wcwidth.width(text, control_codes="ignore")
