"""Text from the network made safe to show: control characters, bidi overrides and lone surrogates. Pure."""

from __future__ import annotations


def _unsafe_code_points() -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: None for cp in range(0x20)}
    table[0x09] = " "  # a tab is kept as the space a user meant
    table[0x7F] = None
    table.update({cp: None for cp in range(0x80, 0xA0)})  # C1, which includes the 8-bit CSI
    # Bidi embeddings, overrides, isolates and marks can reorder what others see
    # ("Trojan Source"); line separators can break a terminal line.
    bidi = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]
    table.update({cp: None for cp in bidi})
    return table


_UNSAFE = _unsafe_code_points()


def sanitize(text: str) -> str:
    """Remove everything that could steer a terminal or reorder text; keep the rest."""
    return text.translate(_UNSAFE)


def sanitize_lines(text: str) -> str:
    """`sanitize` for a message of several lines: each line alone, the line breaks kept."""
    return "\n".join(sanitize(line) for line in text.split("\n"))


def is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate, which a JSON \\ud800 escape can carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
