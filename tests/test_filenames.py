"""The downloads-name sanitizer: hostile offered names become safe names that overwrite nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatroom.filenames import MAX_BYTES, RESERVED, safe_name, unique_name


@pytest.mark.parametrize("offered, saved", [
    ("slides.pdf", "slides.pdf"),
    ("../../x", "x"),
    ("..\\x", "x"),
    ("C:\\Users\\bob\\evil.txt", "evil.txt"),
    ("/etc/passwd", "passwd"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("NUL.tar.gz", "_NUL.tar.gz"),
    ("COM1", "_COM1"),
    ("lpt9.doc", "_lpt9.doc"),
    ("COM¹", "_COM¹"),
    ("CONSOLE.txt", "CONSOLE.txt"),  # only the device names themselves
    ("invoice\u202efdp.exe", "invoicefdp.exe"),  # shows as invoiceexe.pdf with the override
    ("a\x00b\x1b[31m.txt", "ab[31m.txt"),
    (".bashrc", "bashrc"),
    ("..", "file"),
    ("...", "file"),
    ("", "file"),
    ("slides.pdf. . ", "slides.pdf"),
    ('what?<is>:"this"|*.txt', "what__is___this___.txt"),
    ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),  # NFC
    ("zero\u200bwidth.txt", "zerowidth.txt"),
])
def test_hostile_names_become_safe(offered, saved):
    assert safe_name(offered) == saved


def test_a_thousand_characters_are_cut_to_200_bytes_keeping_the_extension():
    name = safe_name("é" * 1000 + ".pdf")
    assert len(name.encode()) <= MAX_BYTES and name.endswith("é.pdf")
    assert len(safe_name("x" * 1000).encode()) == MAX_BYTES


def test_a_taken_name_gets_a_number_and_nothing_is_overwritten():
    taken = {"slides.pdf", "slides (1).pdf"}
    assert unique_name("slides.pdf", taken.__contains__) == "slides (2).pdf"
    assert unique_name("notes", {"notes"}.__contains__) == "notes (1)"
    assert unique_name("free.txt", taken.__contains__) == "free.txt"
    long = safe_name("y" * 500 + ".txt")
    numbered = unique_name(long, {long}.__contains__)
    assert numbered.endswith(" (1).txt") and len(numbered.encode()) <= MAX_BYTES


@given(st.text(max_size=300))
def test_any_offered_name_is_one_plain_safe_part(offered):
    name = safe_name(offered)
    assert name and len(name.encode()) <= MAX_BYTES
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".") and not name.endswith((".", " "))
    assert name.split(".")[0].rstrip(" ").upper() not in RESERVED
    assert all(ord(char) >= 32 and char not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
               for char in name)
