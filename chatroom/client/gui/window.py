"""The chat window: the conversation, who is here, the input and the status bar, and a menu, over a Background loop.

The loop's thread hands what it has to show over through a queue; Tk's thread polls it with after(), a bounded
slice of work per tick, so the window stays responsive under a burst. The status bar and the input are packed
before the conversation, so a short window takes its lines from the conversation and never hides them.
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from collections import Counter
from collections.abc import Callable
from tkinter import simpledialog, ttk

from ... import names, render
from ...protocol import Event, sanitize
from ..console.editor import Bell, Candidates, Outcome, Submit
from ..console.status import status_line
from ..loop import Background, Ended, Handed, Progress, Received
from ..session import OK, RECONNECTING, Notice, View
from . import files, styling
from .conversation import Conversation
from .inputbar import InputBar
from .theme import Palette

POLL_MS = 15
BATCH = 200  # events shown per tick at most, so keys and redraws get their turn in a burst
SIZE, SMALLEST = (860, 520), (480, 260)

log = logging.getLogger(__name__)


class ChatWindow:
    def __init__(self, root: tk.Tk, background: Background, place: str, address: str, security: str,
                 colors: Palette, on_end: Callable[[int], None]) -> None:
        self.root = root
        self.place, self.address, self.security = place, address, security  # for the title, the status bar
        self.colors = colors
        self.on_end = on_end  # called once the window should close, with the exit status
        self.background = background
        self.view = background.loop.session.view
        self.listed: tuple[str, ...] = ()  # the user list's names, in its order (sorted)
        self._listed_facts: tuple[object, ...] = ()  # what the list shows
        self.ended: Ended | None = None
        self.closing = False
        self.unseen = 0  # messages for me while the window was not focused
        self._failures: set[str] = set()  # why events could not be shown, each logged once
        self.unread: Counter[render.Attention] = Counter()  # for me, since I last looked (the status bar)
        self.theme = styling.MARKERS.keeping_names_apart()
        self._build()
        self._show_view(self.view)
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.bind("<FocusIn>", self._focus_in, add="+")
        root.after(POLL_MS, self._poll)
        self.background.start()  # last: once it runs, the loop's thread owns the connection

    # --- building ---------------------------------------------------------------------

    def _build(self) -> None:
        root = self.root
        root.geometry("{}x{}".format(*SIZE))
        root.minsize(*SMALLEST)
        menubar = tk.Menu(root)
        room = tk.Menu(menubar, tearoff=False)
        room.add_command(label="Who is here", command=lambda: self.send("/users"))
        room.add_command(label="Private message...", command=self.private_to_selected)
        room.add_command(label="Change my name...", command=self.ask_rename)
        room.add_command(label="Send file…", command=lambda: self.files.send_file())
        room.add_command(label="Help", command=lambda: self.send("/help"))
        room.add_separator()
        room.add_command(label="Quit", command=self.close)
        menubar.add_cascade(label="Room", menu=room)
        root.configure(menu=menubar)
        self.menu = room

        # Packed first, so they keep their lines in a short window (the packer takes from the last ones).
        self.status = ttk.Label(root, style="Status.TLabel", anchor="w")
        self.status.pack(side="bottom", fill="x")
        self.input = InputBar(root, self.colors, lambda: self.listed, self._outcome)
        self.input.frame.pack(side="bottom", fill="x")
        self.entry, self.send_button = self.input.entry, self.input.send_button
        self.file_button = ttk.Button(self.input.frame, text="Send file…", command=lambda: self.files.send_file())
        self.file_button.grid(row=1, column=2, padx=(8, 0))

        panes = ttk.Panedwindow(root, orient="horizontal")
        panes.pack(side="top", fill="both", expand=True)
        self.conversation = Conversation(panes, self.colors, on_bottom=self._at_bottom)
        self.text = self.conversation.text
        panes.add(self.conversation.frame, weight=4)
        self.files = files.FilesView(root, self.text, self.background, panes)  # its panel above the input

        side = ttk.Frame(panes, padding=(8, 4, 6, 4))
        self.here = ttk.Label(side, text="Here now")
        self.here.pack(anchor="w", pady=(0, 4))
        self.hint = ttk.Label(side, text="Double-click a name to write privately", style="Hint.TLabel")
        self.hint.pack(side="bottom", anchor="w", fill="x", pady=(4, 0))
        self.user_list = tk.Listbox(side, activestyle="none", background=self.colors.background,
                                    foreground=self.colors.foreground, selectbackground=self.colors.selection,
                                    selectforeground=self.colors.foreground, borderwidth=0, highlightthickness=0,
                                    width=18, exportselection=False)
        self.user_list.pack(fill="both", expand=True)
        self.user_list.bind("<Double-Button-1>", self._double_click)
        side.bind("<Configure>", self._side_resized)
        panes.add(side, weight=1)
        self.entry.focus_set()

    def _side_resized(self, event: tk.Event) -> None:
        """The side's labels wrap at its width, so a narrow window cuts none of their words."""
        for label in (self.here, self.hint):
            label.configure(wraplength=max(event.width - 14, 60))

    # --- what the user does -------------------------------------------------------------

    def send(self, line: str, verbatim: bool = False) -> None:
        if self.ended is None:
            self.background.send(line, verbatim)

    def _outcome(self, outcome: Outcome) -> None:
        match outcome:
            case Submit(line=line, verbatim=verbatim):
                self.send(line, verbatim)  # a pasted block goes as one message, as in the console
                self.conversation.follow()  # what I send, I want to see
            case Bell():
                self.root.bell()
            case Candidates(options=options):
                self._note("  ".join(options))

    def prefill(self, command: str) -> None:
        self.input.prefill(command)

    def private_to(self, name: str) -> None:
        self.prefill(f"/msg {sanitize(name)} ")

    def private_to_selected(self) -> None:
        selected = self.user_list.curselection()  # type: ignore[no-untyped-call]  # untyped in typeshed
        if selected:
            self.private_to(self.listed[selected[0]])
        else:
            self.prefill("/msg ")

    def _double_click(self, event: tk.Event) -> None:
        index: int = self.user_list.nearest(event.y)  # type: ignore[no-untyped-call]  # untyped in typeshed
        if 0 <= index < len(self.listed) and names.key(self.listed[index]) != names.key(self.view.me):
            self.private_to(self.listed[index])
        else:
            self.root.bell()

    def ask_rename(self) -> None:
        me = self.view.me
        name = simpledialog.askstring("Change my name", "New username:", initialvalue=me, parent=self.root)
        if name and name.strip() and name.strip() != me:
            self.send(f"/nick {name.strip()}")

    def close(self) -> None:
        """The window's close button and Room > Quit: say /quit, wait briefly for the goodbye, close."""
        if self.ended is not None:
            self.on_end(OK if self.closing else self.ended.status)
            return
        if not self.closing:
            self.closing = True
            self.background.quit()
            self.root.after(int(self.background.quit_within * 1000), lambda: self.on_end(OK))

    # --- what the loop hands over -------------------------------------------------------

    def _poll(self) -> None:
        batch: list[Handed] = []
        while len(batch) < BATCH:
            try:
                batch.append(self.background.inbox.get_nowait())
            except queue.Empty:
                break
            if isinstance(batch[-1], Ended):
                break
        try:
            if batch:
                self.show(batch)
        finally:  # a failure to show (Tk reports it) must not stop the window showing what comes after
            if self.ended is None:
                self.root.after(1 if batch else POLL_MS, self._poll)

    def show(self, batch: list[Handed]) -> None:
        shown = []
        events = for_me = 0
        view: View | None = None
        for item in batch:
            if isinstance(item, Received):
                view = item.view
                self._here(view)
                try:
                    runs = files.event_runs(item.event, view.me, self.theme)
                    attention = render.attention(item.event, view.me)
                except Exception as exc:  # one event that cannot be drawn must not take the others with it
                    self._failed(item.event, exc)
                    continue
                shown.append(runs)
                self.files.remember(item.event)
                events += 1
                if attention is not None:
                    self.unread[attention] += 1
                    for_me += 1
            elif isinstance(item, Notice):
                shown.append(styling.note(item.text, item.role))
            elif isinstance(item, View):
                view = item
            elif isinstance(item, Progress):
                self.files.show(item.rows)
            else:
                self._ended(item, shown)
        self.conversation.insert(shown, events, for_me)
        if for_me and not self._focused():
            self.unseen += for_me
            self.root.bell()
        if self._looking():
            self.unread.clear()
        self._show_view(view or self.view)

    def _failed(self, event: Event, exc: Exception) -> None:
        if (why := f"{type(exc).__name__}: {exc}") not in self._failures:
            self._failures.add(why)
            log.error("the window could not show a %s event (%s)", event.TYPE, why, exc_info=exc)

    def _ended(self, ended: Ended, shown: list[styling.Runs]) -> None:
        self.ended = ended
        if self.closing or ended.status == OK:
            self.root.after_idle(lambda: self.on_end(OK))
            return
        shown.append(styling.note("-- Close the window to leave."))
        self.input.disable()
        self.file_button.state(["disabled"])

    def _note(self, text: str) -> None:
        self.conversation.insert([styling.note(text)])

    # --- who is here, the status bar, the title -------------------------------------------

    def _here(self, view: View) -> None:
        """Who is here, for the names' colors (the theme keeps the names here apart)."""
        if self.theme.slots is not None:
            self.theme.slots.here(view.users)

    def _show_view(self, view: View) -> None:
        self.view = view
        self._here(view)
        if (facts := (view.users, view.away, view.me, view.state)) != self._listed_facts:
            self._listed_facts = facts
            self._show_users()
        self.status.configure(text=status_line(view, self.unread, self.address, self.security))
        self._set_title()

    def _show_users(self) -> None:
        """The list, sorted; grey while reconnecting, when nobody knows who is here."""
        view = self.view
        stale = view.state == RECONNECTING
        self.listed = tuple(sorted(view.users, key=names.key))
        self.user_list.delete(0, "end")
        for index, user in enumerate(self.listed):
            mine = names.key(user) == names.key(view.me)
            mark = " (you)" if mine else " (reconnecting)" if user in view.away else ""
            self.user_list.insert("end", sanitize(user) + mark)
            if stale or (user in view.away and not mine):
                color = self.colors.grey
            elif mine:
                color = self.colors.own
            else:
                color = self.colors.names[self.theme.slots.slot(user) if self.theme.slots else 0]
            self.user_list.itemconfigure(index, foreground=color)
        count = len(view.users)
        self.here.configure(text=f"Here before the loss ({count})" if stale else f"Here now ({count})",
                            style="Hint.TLabel" if stale else "TLabel")

    def _at_bottom(self) -> None:
        """The user scrolled back to the newest lines."""
        if self.unread and self._focused():
            self.unread.clear()
            self._show_view(self.view)

    def _focused(self) -> bool:
        return self.root.focus_displayof() is not None

    def _looking(self) -> bool:
        """The user sees the newest lines: what is for them is read."""
        return self._focused() and self.conversation.following

    def _focus_in(self, _event: tk.Event) -> None:
        if self.unseen or (self.unread and self.conversation.following):
            self.unseen = 0
            if self.conversation.following:
                self.unread.clear()
            self._show_view(self.view)

    def _set_title(self) -> None:
        reconnecting = self.view.state == RECONNECTING
        state = " (disconnected)" if self.ended is not None else " (reconnecting)" if reconnecting else ""
        unseen = f"({self.unseen}) " if self.unseen else ""
        self.root.title(f"{unseen}{sanitize(self.view.me)}{state} - chatroom {self.place}")
