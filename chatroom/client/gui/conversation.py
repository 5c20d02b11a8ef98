"""The window's conversation: a read-only Text that keeps the newest line in view (after a resize too) unless the
user scrolled up, then says what came below; its scrollback is bounded.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font, ttk

from . import styling
from .theme import Palette

SCROLLBACK = 10_000  # lines kept; older ones go, so memory stays flat
AT_END = 0.999  # of the view's fraction: the newest line shows


class Conversation:
    def __init__(self, parent: tk.Misc, colors: Palette, on_bottom: Callable[[], None] = lambda: None) -> None:
        """`on_bottom`: called when the user comes back to the newest line."""
        self.on_bottom = on_bottom
        self.frame = ttk.Frame(parent)
        base = font.nametofont("TkTextFont")
        bold, italic = base.copy(), base.copy()
        bold.configure(weight="bold")
        italic.configure(slant="italic")
        self._fonts = (bold, italic)  # Tk forgets a named font Python no longer holds
        self.text = tk.Text(self.frame, wrap="word", state="disabled", background=colors.background,
                            foreground=colors.foreground, insertbackground=colors.foreground,
                            selectbackground=colors.selection, font=base, padx=10, pady=6, borderwidth=0,
                            highlightthickness=0, spacing1=1, spacing3=1)
        self.scrollbar = ttk.Scrollbar(self.frame, command=self.text.yview)
        self.text.configure(yscrollcommand=self._scrolled)
        self.scrollbar.pack(side="right", fill="y")
        self.text.pack(side="left", fill="both", expand=True)
        self._tags(colors, bold, italic)
        self.scrollback = SCROLLBACK
        self.following = True  # the newest line is in view and stays there
        self.below = self.below_for_me = 0  # events (and those for me) that came while the user looked up
        self._size = (0, 0)
        self.marker = ttk.Button(self.frame, style="Accent.TButton", command=self.follow)
        self.text.bind("<Configure>", self._resized)

    def _tags(self, colors: Palette, bold: font.Font, italic: font.Font) -> None:
        tag = self.text.tag_configure
        tag("hanging", lmargin2=24)  # a wrapped line's rest is indented under its start
        tag("time", foreground=colors.grey)
        tag("system", foreground=colors.grey)
        tag("day", foreground=colors.grey, justify="center", spacing1=8, spacing3=4)
        tag("earlier", foreground=colors.grey, font=italic)
        tag("error", foreground=colors.error)
        tag("private", foreground=colors.private, font=bold)
        tag("own", foreground=colors.own, font=bold)
        for (name, _), color in zip(styling.NAME_TAGS.items(), colors.names):
            tag(name, foreground=color, font=bold)
        tag("private_line", background=colors.private_line)
        tag("mention_line", background=colors.mention_line)

    # --- following the newest line -----------------------------------------------------------

    def _resized(self, event: tk.Event) -> None:
        """The widget's size changed: its lines wrap anew and its bottom moves; the newest line stays in view
        if it was."""
        self._size = (event.width, event.height)
        if self.following:
            self.text.after_idle(self.text.see, "end")

    def _scrolled(self, first: float, last: float) -> None:  # Tk passes the fractions as strings
        self.scrollbar.set(first, last)
        if (self.text.winfo_width(), self.text.winfo_height()) != self._size:
            return  # a resize under way, not the user's scrolling: _resized decides
        following, self.following = self.following, float(last) >= AT_END
        if self.following and not following:
            self._unmark()
            self.on_bottom()

    def follow(self) -> None:
        """Back to the newest line (the marker's click)."""
        self.text.see("end")
        self.following = True
        self._unmark()
        self.on_bottom()

    def _unmark(self) -> None:
        self.below = self.below_for_me = 0
        self.marker.place_forget()

    # --- adding lines ------------------------------------------------------------------------

    def insert(self, shown: list[styling.Runs], news: int = 0, for_me: int = 0) -> None:
        """Add runs at the end, in one call for the whole batch. `news`: the events among them, counted in the
        marker when the user looks further up; `for_me`: how many of those are for me."""
        pairs = [pair for text_runs in shown for pair in text_runs]
        if not pairs:
            return
        (first, first_tags), rest = pairs[0], [part for pair in pairs[1:] for part in pair]
        self.text.configure(state="normal")
        start = self.text.index("end-1c")
        self.text.insert("end", first, first_tags, *rest)
        self.text.tag_add("hanging", start, "end-1c")
        lines = int(self.text.index("end-1c").split(".")[0])
        if lines > self.scrollback + 1:
            self.text.delete("1.0", f"{lines - self.scrollback}.0")
        self.text.configure(state="disabled")
        if self.following:
            self.text.see("end")
        elif news:
            self.below += news
            self.below_for_me += for_me
            self._mark()

    def _mark(self) -> None:
        words = f"↓ {self.below} new message{'' if self.below == 1 else 's'} below"
        if self.below_for_me:
            words += f", {self.below_for_me} for you"
        self.marker.configure(text=words)
        self.marker.place(relx=0.5, rely=1.0, y=-12, anchor="s")

    def shown(self) -> str:
        return self.text.get("1.0", "end-1c")
