"""Print above the input line: each event appears above it, and the line is redrawn intact below.

The one writer of the terminal. When stdout is not a terminal it writes plain lines and no escape codes.
After a resize it paints the screen anew from what it printed last, wrapped at the new width.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections import deque
from collections.abc import Mapping
from typing import TextIO

from colorama import Cursor, Fore, Style
from colorama.ansi import clear_line, clear_screen

from ...render import NAME_COLORS, NAME_HUES, PLAIN, Theme
from .editor import LineEditor, graphemes, text_width

COLORS_16 = Theme(
    time=Style.DIM,
    system=Fore.LIGHTBLACK_EX,
    error=Fore.RED + Style.BRIGHT,
    private=Fore.MAGENTA + Style.BRIGHT,
    earlier=Style.DIM,
    own=Fore.GREEN + Style.BRIGHT,
    mention="\x1b[7m",  # reverse video: colorama has no name for it
    palette=(Fore.CYAN, Fore.YELLOW, Fore.BLUE + Style.BRIGHT, Fore.MAGENTA, Fore.LIGHTCYAN_EX, Fore.LIGHTYELLOW_EX,
             Fore.LIGHTBLUE_EX, Fore.LIGHTMAGENTA_EX, Fore.LIGHTRED_EX, Fore.WHITE + Style.BRIGHT),
    reset=Style.RESET_ALL,
)
COLORS_256 = dataclasses.replace(COLORS_16, palette=tuple(f"\x1b[38;5;{color}m" for color in NAME_COLORS),
                                 hues=NAME_HUES)
RECENT = 300  # texts kept for a repaint: more than a screen holds


def color_theme(environ: Mapping[str, str]) -> Theme:
    """256 colors when the terminal says it has them (TERM=*256color*, or COLORTERM set), else 16."""
    return COLORS_256 if "256color" in environ.get("TERM", "") or environ.get("COLORTERM") else COLORS_16


_STYLE = re.compile(r"(\x1b\[[0-9;]*m)")
# What comes before a line's text: leading spaces, the time, "(earlier)", then a name, a private tag or "-- ".
_HEAD = re.compile(r" *(\[\d\d:\d\d\] )?(\(earlier\) )?(<[^>]*> |\* \S+ |\[private [^\]]*\] |-- |! )?")


def _units(line: str) -> list[tuple[str, int]]:
    """A styled line as what cannot be split, each with its width: style codes (0) and characters."""
    units: list[tuple[str, int]] = []
    for piece in _STYLE.split(line):
        if _STYLE.fullmatch(piece):
            units.append((piece, 0))
        else:
            units += [(cluster, text_width(cluster)) for cluster in graphemes(piece)]
    return units


def wrap(line: str, columns: int, reset: str = Style.RESET_ALL) -> list[str]:
    """A styled line as rows of at most `columns` cells, continuation rows indented under its text.

    Rows break at their last space, or mid-word when they have none (never inside a character).
    A style still open at a break is ended there and opened again after the next row's indent.
    """
    visible = _STYLE.sub("", line)
    if text_width(visible) <= columns:
        return [line]
    head = _HEAD.match(visible)
    indent = min(text_width(head.group(0)) if head else 0, columns // 2)
    units = _units(line)
    rows: list[str] = []
    styles: list[str] = []  # the styles open where the row starts
    start = 0
    while start < len(units):
        room = columns - (indent if rows else 0)
        end, used, space = start, 0, None
        while end < len(units) and used + units[end][1] <= room:
            if units[end][0] == " ":
                space = end
            used += units[end][1]
            end += 1
        if end < len(units) and units[end][0] == " ":
            space = end  # the row is full just before a space
        if end < len(units) and space is not None and space > start:
            end, after = space, space + 1
        else:
            end = after = max(end, start + 1)
        row = (" " * indent if rows else "") + "".join(styles)
        for text, _ in units[start:after]:
            if _STYLE.fullmatch(text):
                styles = [] if text == reset else styles + [text]
        rows.append(row + "".join(text for text, _ in units[start:end]) + (reset if styles else ""))
        start = after
    return rows


class Screen:
    def __init__(self, out: TextIO, editor: LineEditor, interactive: bool, colors: bool,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.out = out
        self.editor = editor
        self.interactive = interactive
        self.theme = (color_theme(environ) if colors and interactive else PLAIN).keeping_names_apart()
        self.prompt = "> "
        self._prompt_columns = text_width(self.prompt)
        self.status = ""  # the status line, shown above the input line when set
        self._status_shown = False  # whether the row above the cursor is the status line
        self._status_cut, self._status_row = ("", 0), ""  # the status line and the width it was cut to, painted
        self._recent: deque[str] = deque(maxlen=RECENT)  # what was shown last, for a repaint after a resize
        self._size = shutil.get_terminal_size()  # what the screen was drawn at

    def _input_line(self) -> str:
        columns = shutil.get_terminal_size().columns - self._prompt_columns
        visible, _, back = self.editor.view(columns)
        line = "\r" + clear_line() + self.prompt + visible
        return line + str(Cursor.BACK(back)) if back else line

    def _clear_footer(self) -> str:
        """Erase the status line and the input line, and all below them (what a narrowed window pushed
        down); the cursor ends where the footer began."""
        # From the input line down first: an erase from the top-left corner counts as clearing the whole
        # screen, which tmux (scroll-on-clear) copies into its history, leaving a copy of the footer there.
        erase = "\r" + clear_screen(0)
        if self._status_shown:
            erase += Cursor.UP(1) + "\r" + clear_line()
            self._status_shown = False
        return erase

    def _footer(self) -> str:
        if not self.status:
            return self._input_line()
        self._status_shown = True
        cut = (self.status, shutil.get_terminal_size().columns - 1)
        if cut != self._status_cut:  # drawn after every key: cut and painted once
            self._status_cut, self._status_row = cut, self.theme.paint(self.theme.system, wrap(*cut)[0])
        return self._status_row + "\n" + self._input_line()

    def set_status(self, text: str) -> None:
        if text != self.status:
            self.status = text
            self.redraw()

    def show(self, text: str, bell: bool = False) -> None:
        """Print text (one or more lines) above the status and input lines."""
        if not self.interactive:
            self.out.write(text + "\n")
            self.out.flush()
            return
        self._recent.append(text)
        if self._size_changed():
            self.resized()
            return
        rows = self._rows(text, self._size.columns)
        self.out.write(self._clear_footer() + "\n".join(rows) + "\n" + ("\a" if bell else "") + self._footer())
        self.out.flush()

    def _size_changed(self) -> bool:
        """Whether the terminal's size differs from the one drawn at: a resize whose signal came before the
        size did, or that came between two draws, is painted all the same."""
        size = shutil.get_terminal_size()
        changed, self._size = size != self._size, size
        return changed

    @staticmethod
    def _rows(text: str, columns: int) -> list[str]:
        # One cell short of the width: a row that fills it wraps at once in some consoles (Windows).
        return [row for line in text.split("\n") for row in wrap(line, columns - 1)]

    def resized(self) -> None:
        """The terminal's size changed, and it may have re-flowed what it shows (tmux, VTE): rows we wrapped
        lose their indent, a status line cut in two leaves its first half. Paint the screen anew: the latest
        text wrapped at the new width, then the footer. Row by row from the top, not a clear of the screen,
        which tmux would copy into its history."""
        if not self.interactive:
            return
        self._size = size = shutil.get_terminal_size()
        room = size.lines - (2 if self.status else 1)
        rows: list[str] = []
        for text in reversed(self._recent):
            if len(rows) >= room:
                break
            rows[:0] = self._rows(text, size.columns)
        rows = rows[-room:] if room > 0 else []
        self._status_shown = False
        self.out.write(str(Cursor.POS(1, 1)) + "".join(f"{clear_line()}{row}\n" for row in rows) + "\r"
                       + clear_screen(0) + self._footer())
        self.out.flush()

    def bell(self) -> None:
        if self.interactive:
            self.out.write("\a")
            self.out.flush()

    def redraw(self) -> None:
        if not self.interactive:
            return
        if self._size_changed():
            self.resized()
            return
        self.out.write(self._clear_footer() + self._footer())
        self.out.flush()

    def close(self) -> None:
        """Leave the terminal as it was: no half-drawn input or status line, default colors."""
        if self.interactive:
            self.out.write(self._clear_footer() + Style.RESET_ALL)
            self.out.flush()
