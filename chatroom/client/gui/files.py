"""The window's file sharing: Send file... (the system's file dialog), a Download link on each shared file
(with a Save-as dialog), and a progress bar with Cancel for each transfer.

The transfers themselves run in the loop's threads (client/transfers.py); this only asks and draws, in Tk's
thread, and hands the user's choices to the loop.
"""

from __future__ import annotations

import tkinter as tk
from functools import partial
from pathlib import Path
from tkinter import filedialog, ttk

from ... import filenames, render
from ...protocol import Event, FileList, FileShared
from ..loop import Background
from ..progress import Row, describe
from . import styling

LINK_COLOR = "#729fcf"


def _links(shared: FileShared, me: str) -> styling.Runs:
    """Download (and for a file offered to me, Decline) after a share notice."""
    runs: styling.Runs = [("  ", ()), ("Download", ("link", f"get{shared.id}"))]
    if render.offered_to_me(shared, me):
        runs += [("  ", ()), ("Decline", ("link", f"decline{shared.id}"))]
    return runs


def event_runs(event: Event, me: str, theme: render.Theme = styling.MARKERS) -> styling.Runs:
    """styling.event_runs, with links after every shared file."""
    text_runs = styling.event_runs(event, me, theme)
    if isinstance(event, FileShared) and text_runs:
        *head, (last, tags) = text_runs
        return [*head, (last.removesuffix("\n"), tags), *_links(event, me), ("\n", ())]
    if isinstance(event, FileList) and event.files:
        lines = styling.plain(text_runs).split("\n")
        out: styling.Runs = [(lines[0] + "\n", ())]
        for line, shared in zip(lines[1:], event.files):
            out += [(line, ()), *_links(shared, me), ("\n", ())]
        return out
    return text_runs


class FilesView:
    """The window's part of sending files: the menu item and button, the links, the progress panel."""

    def __init__(self, root: tk.Tk, text: tk.Text, background: Background, before: tk.Widget) -> None:
        """`before`: the widget the panel is packed before (the conversation), so it never hides the entry."""
        self.root, self.text, self.background = root, text, background
        self.panel = ttk.Frame(root, padding=(6, 2))
        self._before = before
        self._rows: dict[str, tuple[ttk.Frame, ttk.Label, ttk.Progressbar]] = {}
        self._names: dict[int, str] = {}  # the names of the files the links name, for the Save-as dialog
        text.tag_configure("link", foreground=LINK_COLOR, underline=True)
        text.tag_bind("link", "<Enter>", lambda _event: text.configure(cursor="hand2"))
        text.tag_bind("link", "<Leave>", lambda _event: text.configure(cursor=""))
        text.tag_bind("link", "<Button-1>", self._clicked)

    # --- what the user does ------------------------------------------------------------------------

    def send_file(self) -> None:
        """Send file...: the system's dialog, then an offer to everybody."""
        path = filedialog.askopenfilename(parent=self.root, title="Send a file to everybody")
        if path:
            self.background.loop.send_file(path)

    def remember(self, event: Event) -> None:
        """A share notice or list is shown: its links will need the files' names."""
        for shared in event.files if isinstance(event, FileList) else [event] if isinstance(event, FileShared) else []:
            self._names[shared.id] = shared.name

    def _clicked(self, event: tk.Event) -> None:
        index = self.text.index(f"@{event.x},{event.y}")
        for tag in self.text.tag_names(index):
            if tag.startswith("get"):
                self.download(int(tag[3:]))
            elif tag.startswith("decline"):
                self.background.send(f"/decline {tag[7:]}")

    def download(self, file_id: int) -> None:
        """Download: the Save-as dialog in the downloads folder with the file's safe name, then /get."""
        name = filenames.safe_name(self._names.get(file_id, "file"))
        folder = self.background.loop.transfers.downloads
        path = filedialog.asksaveasfilename(parent=self.root, title=f"Save {name} as", initialfile=name,
                                            initialdir=str(folder) if folder.is_dir() else None)
        if path:
            self.background.loop.transfers.want(file_id, Path(path))
            self.background.send(f"/get {file_id}")

    # --- the transfers as they stand ------------------------------------------------------------------

    def show(self, rows: tuple[Row, ...]) -> None:
        """A progress bar with Cancel per transfer, above the entry line; none: no panel."""
        for key in set(self._rows) - {row.key for row in rows}:
            self._rows.pop(key)[0].destroy()
        for row in rows:
            if row.key not in self._rows:
                frame = ttk.Frame(self.panel)
                frame.pack(fill="x", pady=1)
                label = ttk.Label(frame, width=48, anchor="w")
                label.pack(side="left")
                bar = ttk.Progressbar(frame, maximum=1000, length=220)
                bar.pack(side="left", fill="x", expand=True, padx=6)
                ttk.Button(frame, text="Cancel", command=partial(self.background.loop.cancel_transfer, row.key)
                           ).pack(side="right")
                self._rows[row.key] = (frame, label, bar)
            _, label, bar = self._rows[row.key]
            label.configure(text=describe(row, 28))
            bar.configure(value=int(row.fraction * 1000))
        if rows and not self.panel.winfo_ismapped():
            self.panel.pack(fill="x", side="bottom", before=self._before)  # above the entry line, before the chat
        elif not rows:
            self.panel.pack_forget()
