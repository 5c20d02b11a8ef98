"""The window's input: an entry line driven by the console's line editor (history, completion, Ctrl+U, Ctrl+W),
a pasted block of several lines held with a preview of its lines until Enter sends it (Esc lets it go), and
the Send button.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import ttk

from readchar import key

from ..console.editor import LineEditor, Outcome
from ..console.keys import Paste
from .theme import Palette

PREVIEW_LINES = 6  # of a held paste; the rest is counted


class InputBar:
    def __init__(self, parent: tk.Misc, colors: Palette, names: Callable[[], Sequence[str]],
                 on_outcome: Callable[[Outcome], None]) -> None:
        self.on_outcome = on_outcome
        self.editor = LineEditor(names=names)
        self.frame = ttk.Frame(parent, padding=(8, 6, 8, 2))
        self.preview = tk.Text(self.frame, height=1, wrap="none", state="disabled", font="TkFixedFont",
                               background=colors.background, foreground=colors.foreground, borderwidth=0,
                               highlightthickness=1, highlightbackground=colors.grey, padx=8, pady=4)
        self.entry = ttk.Entry(self.frame)
        self.send_button = ttk.Button(self.frame, text="Send", style="Accent.TButton",
                                      command=lambda: self.press(key.CR))
        self.preview.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, 4))
        self.preview.grid_remove()  # shown while a paste is held
        self.entry.grid(row=1, column=0, sticky="ew")
        self.send_button.grid(row=1, column=1, padx=(8, 0))
        self.frame.columnconfigure(0, weight=1)
        for sequence, pressed in [("<Return>", key.CR), ("<KP_Enter>", key.CR), ("<Up>", key.UP),
                                  ("<Down>", key.DOWN), ("<Tab>", key.TAB), ("<Escape>", key.ESC),
                                  ("<Control-u>", key.CTRL_U), ("<Control-w>", key.CTRL_W)]:
            self.entry.bind(sequence, self._key(pressed))
        self.entry.bind("<<Paste>>", lambda _event: self._paste(self.entry.clipboard_get))
        self.entry.bind("<<PasteSelection>>", lambda _event: self._paste(self.entry.selection_get))

    def _key(self, pressed: str) -> Callable[[tk.Event], str]:
        return lambda _event: self.press(pressed)

    def press(self, pressed: str) -> str:
        """A key for the shared line editor, on the entry's text; "break": Tab must not move the focus, nor
        Up/Down anything else."""
        if self.editor.block is None:  # else the entry shows the placeholder, not the line
            self.editor.chars = list(self.entry.get())
            self.editor.cursor = self.entry.index("insert")
        outcome = self.editor.feed(pressed)
        self._show()
        self.on_outcome(outcome)
        return "break"

    def _paste(self, read: Callable[[], str]) -> str | None:
        """A paste of several lines is held by the editor (the entry would show its lines as one, with boxes);
        one line goes in by Tk's own binding."""
        try:
            text = read()
        except tk.TclError:  # nothing to paste
            return None
        if "\n" not in text.rstrip("\r\n") and self.editor.block is None:
            return None
        return self.press(Paste.of(text))

    def _show(self) -> None:
        """The entry (and the preview) as the editor has them."""
        block = self.editor.block
        self.entry.state(["!readonly"])
        self.entry.delete(0, "end")
        if block is None:
            self.entry.insert(0, self.editor.text)
            self.entry.icursor(self.editor.cursor)
            self.preview.grid_remove()
            return
        self.entry.insert(0, self.editor.placeholder)
        self.entry.state(["readonly"])
        lines = block.split("\n")
        shown = lines[:PREVIEW_LINES]
        if len(lines) > len(shown):
            shown.append(f"… and {len(lines) - len(shown)} more lines")
        self.preview.configure(state="normal", height=len(shown))
        self.preview.delete("1.0", "end")
        self.preview.insert("1.0", "\n".join(shown))
        self.preview.configure(state="disabled")
        self.preview.grid()

    def prefill(self, command: str) -> None:
        """Start the entry with a command, keeping what was typed after it."""
        if self.editor.block is not None:
            return
        typed = self.entry.get()
        if typed.startswith(("/msg ", "/nick ")):
            typed = typed.split(" ", 2)[2] if typed.count(" ") >= 2 else ""
        self.entry.delete(0, "end")
        self.entry.insert(0, command + typed)
        self.entry.icursor(len(command))
        self.entry.focus_set()

    def disable(self) -> None:
        self.entry.state(["disabled"])
        self.send_button.state(["disabled"])
