"""Print above the input line: each event appears above it, and the line is redrawn intact below.

The one writer of the terminal. When stdout is not a terminal it writes plain lines and no escape codes.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from colorama import Cursor, Fore, Style
from colorama.ansi import clear_line

from ..render import PLAIN, Theme
from .editor import LineEditor, text_width

COLORS = Theme(
    time=Style.DIM,
    system=Fore.LIGHTBLACK_EX,
    error=Fore.RED + Style.BRIGHT,
    private=Fore.MAGENTA + Style.BRIGHT,
    earlier=Style.DIM,
    own=Fore.GREEN + Style.BRIGHT,
    palette=(Fore.CYAN, Fore.BLUE + Style.BRIGHT, Fore.YELLOW, Fore.LIGHTCYAN_EX, Fore.LIGHTYELLOW_EX,
             Fore.LIGHTBLUE_EX, Fore.WHITE + Style.BRIGHT),
    reset=Style.RESET_ALL,
)


class Screen:
    def __init__(self, out: TextIO, editor: LineEditor, interactive: bool, colors: bool) -> None:
        self.out = out
        self.editor = editor
        self.interactive = interactive
        self.theme = COLORS if colors and interactive else PLAIN
        self.prompt = "> "

    def _input_line(self) -> str:
        columns = shutil.get_terminal_size().columns - text_width(self.prompt)
        visible, cursor = self.editor.view(columns)
        line = "\r" + clear_line() + self.prompt + visible
        back = text_width(visible) - cursor
        return line + Cursor.BACK(back) if back else line

    def show(self, text: str, bell: bool = False) -> None:
        """Print text (one or more lines) above the input line."""
        if not self.interactive:
            self.out.write(text + "\n")
            self.out.flush()
            return
        self.out.write("\r" + clear_line() + text + "\n" + ("\a" if bell else "") + self._input_line())
        self.out.flush()

    def bell(self) -> None:
        if self.interactive:
            self.out.write("\a")
            self.out.flush()

    def redraw(self) -> None:
        if self.interactive:
            self.out.write(self._input_line())
            self.out.flush()

    def close(self) -> None:
        """Leave the terminal as it was: no half-drawn input line, default colors."""
        if self.interactive:
            self.out.write("\r" + clear_line() + Style.RESET_ALL)
            self.out.flush()
