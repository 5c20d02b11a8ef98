"""The chat window: the conversation, the user list, the entry line and a menu, over a Background loop.

The loop's thread hands what it has to show over through a queue; Tk's thread polls it with after(), a bounded
slice of work per tick, so the window stays responsive under a burst.
"""

from __future__ import annotations

import queue
import tkinter as tk
from collections.abc import Callable
from tkinter import font, simpledialog, ttk

from readchar import key

from ... import names, render
from ...protocol import sanitize
from ..console.editor import Bell, Candidates, LineEditor, Submit
from ..loop import Background, Ended, Handed, Progress, Received
from ..session import OK, QUIT_WAIT, RECONNECTING, Notice, View
from . import files, styling

POLL_MS = 15
BATCH = 200  # events shown per tick at most, so keys and redraws get their turn in a burst
SCROLLBACK = 10_000  # lines kept in the conversation; older ones go, so memory stays flat
BACKGROUND, FOREGROUND, GREY = "#1e1f22", "#d3d7cf", "#8b8e94"
OWN_COLOR = "#8ae234"  # the bright green of the console's own name
AWAY_COLOR = "#888a85"  # the grey of the notices: a user who is reconnecting


class ChatWindow:
    def __init__(self, root: tk.Tk, background: Background, where: str, on_end: Callable[[int], None]) -> None:
        self.root = root
        self.where = where
        self.on_end = on_end  # called once the window should close, with the exit status
        self.background = background
        view = background.loop.session.view
        self.me, self.state = view.me, view.state
        self.users: tuple[str, ...] = ()
        self.away: frozenset[str] = frozenset()
        self.ended: Ended | None = None
        self.closing = False
        self.unseen = 0  # messages for me while the window was not focused
        self.scrollback = SCROLLBACK
        self.editor = LineEditor(names=lambda: self.users)
        self._build()
        self._show_users(view.users, view.away)
        self._set_title()
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.bind("<FocusIn>", self._focus_in, add="+")
        self.background.start()
        root.after(POLL_MS, self._poll)

    # --- building ---------------------------------------------------------------------

    def _build(self) -> None:
        root = self.root
        root.geometry("860x520")
        root.minsize(420, 240)
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

        base = font.nametofont("TkTextFont")
        bold = base.copy()
        bold.configure(weight="bold")
        italic = base.copy()
        italic.configure(slant="italic")
        self._fonts = (bold, italic)  # Tk forgets a named font Python no longer holds

        panes = ttk.Panedwindow(root, orient="horizontal")
        panes.pack(fill="both", expand=True)
        talk = ttk.Frame(panes)
        self.text = tk.Text(talk, wrap="word", state="disabled", background=BACKGROUND, foreground=FOREGROUND,
                            insertbackground=FOREGROUND, font=base, padx=8, pady=6, borderwidth=0,
                            highlightthickness=0, spacing1=1, spacing3=1)
        scroll = ttk.Scrollbar(talk, command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.text.pack(side="left", fill="both", expand=True)
        self.text.tag_configure("hanging", lmargin2=24)  # a wrapped line's rest is indented under its start
        self.text.tag_configure("time", foreground=GREY)
        self.text.tag_configure("system", foreground=GREY)
        self.text.tag_configure("earlier", foreground=GREY, font=italic)
        self.text.tag_configure("error", foreground="#ef2929")
        self.text.tag_configure("private", foreground="#e29ddc", font=bold)
        self.text.tag_configure("own", foreground=OWN_COLOR, font=bold)
        for tag, color in styling.NAME_TAGS.items():
            self.text.tag_configure(tag, foreground=color, font=bold)
        self.text.tag_configure("private_line", background="#3a2740")
        self.text.tag_configure("mention_line", background="#3d3821")
        panes.add(talk, weight=4)

        side = ttk.Frame(panes, padding=(6, 4))
        self.here = ttk.Label(side, text="Here now")
        self.here.pack(anchor="w")
        self.user_list = tk.Listbox(side, activestyle="none", background=BACKGROUND, foreground=FOREGROUND,
                                    selectbackground="#3b3f45", selectforeground="#ffffff", borderwidth=0,
                                    highlightthickness=0, width=18, exportselection=False)
        self.user_list.pack(fill="both", expand=True)
        self.user_list.bind("<Double-Button-1>", self._double_click)
        ttk.Label(side, text="Double-click a name to write privately", foreground=GREY,
                  wraplength=150).pack(anchor="w")
        panes.add(side, weight=1)

        bottom = ttk.Frame(root, padding=(6, 6))
        bottom.pack(fill="x", side="bottom", before=panes)  # packed first: a short window never hides it
        self.entry = ttk.Entry(bottom)
        self.entry.pack(side="left", fill="x", expand=True)
        self.send_button = ttk.Button(bottom, text="Send", command=lambda: self._edit(key.CR))
        self.send_button.pack(side="right", padx=(6, 0))
        self.file_button = ttk.Button(bottom, text="Send file…", command=lambda: self.files.send_file())
        self.file_button.pack(side="right", padx=(6, 0))
        self.files = files.FilesView(root, self.text, self.background, panes)
        for sequence, pressed in [("<Return>", key.CR), ("<KP_Enter>", key.CR), ("<Up>", key.UP),
                                  ("<Down>", key.DOWN), ("<Tab>", key.TAB)]:
            self.entry.bind(sequence, self._key(pressed))
        self.entry.focus_set()

    # --- what the user does -------------------------------------------------------------

    def send(self, line: str) -> None:
        if self.ended is None:
            self.background.send(line)

    def _key(self, pressed: str) -> Callable[[tk.Event], str]:
        return lambda _event: self._edit(pressed)

    def _edit(self, pressed: str) -> str:
        """A key for the shared line editor (history, completion, Enter), on the entry's text."""
        self.editor.chars = list(self.entry.get())
        self.editor.cursor = self.entry.index("insert")
        outcome = self.editor.feed(pressed)
        self.entry.delete(0, "end")
        self.entry.insert(0, self.editor.text)
        self.entry.icursor(self.editor.cursor)
        match outcome:
            case Submit(line=line):
                self.send(line)  # a pasted text of several lines goes as one message, as in the console
            case Bell():
                self.root.bell()
            case Candidates(options=options):
                self._note("  ".join(options))
        return "break"  # Tab must not move the focus, nor Up/Down anything else

    def prefill(self, command: str) -> None:
        """Start the entry with a command, keeping what was typed after it."""
        typed = self.entry.get()
        if typed.startswith(("/msg ", "/nick ")):
            typed = typed.split(" ", 2)[2] if typed.count(" ") >= 2 else ""
        self.entry.delete(0, "end")
        self.entry.insert(0, command + typed)
        self.entry.icursor(len(command))
        self.entry.focus_set()

    def private_to(self, name: str) -> None:
        self.prefill(f"/msg {sanitize(name)} ")

    def private_to_selected(self) -> None:
        selected = self.user_list.curselection()  # type: ignore[no-untyped-call]  # untyped in typeshed
        if selected:
            self.private_to(self.users[selected[0]])
        else:
            self.prefill("/msg ")

    def _double_click(self, event: tk.Event) -> None:
        index: int = self.user_list.nearest(event.y)  # type: ignore[no-untyped-call]  # untyped in typeshed
        if 0 <= index < len(self.users) and names.key(self.users[index]) != names.key(self.me):
            self.private_to(self.users[index])
        else:
            self.root.bell()

    def ask_rename(self) -> None:
        name = simpledialog.askstring("Change my name", "New username:", initialvalue=self.me, parent=self.root)
        if name and name.strip() and name.strip() != self.me:
            self.send(f"/nick {name.strip()}")

    def close(self) -> None:
        """The window's close button and Room > Quit: say /quit, wait briefly for the goodbye, close."""
        if self.ended is not None:
            self.on_end(OK if self.closing else self.ended.status)
            return
        if not self.closing:
            self.closing = True
            self.background.quit()
            self.root.after(int((QUIT_WAIT + 1) * 1000), lambda: self.on_end(OK))

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
        if batch:
            self.show(batch)
        if self.ended is None:
            self.root.after(1 if batch else POLL_MS, self._poll)

    def show(self, batch: list[Handed]) -> None:
        shown = []
        attention = 0
        view: View | None = None
        for item in batch:
            if isinstance(item, Received):
                view = item.view
                shown.append(files.event_runs(item.event, view.me))
                self.files.remember(item.event)
                attention += render.wants_attention(item.event, view.me)
            elif isinstance(item, Notice):
                shown.append(styling.note(item.text, item.role))
            elif isinstance(item, View):
                view = item
            elif isinstance(item, Progress):
                self.files.show(item.rows)
            else:
                self._ended(item, shown)
        self._insert(shown)
        if view is not None:
            self.me, self.state = view.me, view.state
            self._show_users(view.users, view.away)
        if attention and not self._focused():
            self.unseen += attention
            self.root.bell()
        self._set_title()

    def _ended(self, ended: Ended, shown: list[styling.Runs]) -> None:
        self.ended = ended
        if self.closing or ended.status == OK:
            self.root.after_idle(lambda: self.on_end(OK))
            return
        shown.append(styling.note("-- Close the window to leave."))
        self.entry.state(["disabled"])
        self.send_button.state(["disabled"])
        self.file_button.state(["disabled"])

    def _note(self, text: str) -> None:
        self._insert([styling.note(text)])

    def _insert(self, shown: list[styling.Runs]) -> None:
        pairs = [pair for text_runs in shown for pair in text_runs]
        if not pairs:
            return
        (first, first_tags), rest = pairs[0], [part for pair in pairs[1:] for part in pair]
        at_bottom = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        start = self.text.index("end-1c")
        self.text.insert("end", first, first_tags, *rest)  # one call for the whole batch
        self.text.tag_add("hanging", start, "end-1c")
        lines = int(self.text.index("end-1c").split(".")[0])
        if lines > self.scrollback + 1:
            self.text.delete("1.0", f"{lines - self.scrollback}.0")
        self.text.configure(state="disabled")
        if at_bottom:
            self.text.see("end")

    def _show_users(self, users: tuple[str, ...], away: frozenset[str] = frozenset()) -> None:
        if (users, away) == (self.users, self.away):
            return
        self.users, self.away = users, away
        self.user_list.delete(0, "end")
        for index, user in enumerate(users):
            mine = names.key(user) == names.key(self.me)
            mark = " (you)" if mine else " (reconnecting)" if user in away else ""
            self.user_list.insert("end", sanitize(user) + mark)
            color = OWN_COLOR if mine else AWAY_COLOR if user in away else render.color_rgb(render.name_color(user))
            self.user_list.itemconfigure(index, foreground=color)
        self.here.configure(text=f"Here now ({len(users)})")

    # --- the title: who and where, unread mentions, the end ----------------------------

    def _focused(self) -> bool:
        return self.root.focus_displayof() is not None

    def _focus_in(self, _event: tk.Event) -> None:
        if self.unseen:
            self.unseen = 0
            self._set_title()

    def _set_title(self) -> None:
        reconnecting = self.state == RECONNECTING
        state = " (disconnected)" if self.ended is not None else " (reconnecting)" if reconnecting else ""
        unseen = f"({self.unseen}) " if self.unseen else ""
        self.root.title(f"{unseen}{sanitize(self.me)}{state} - chatroom {self.where}")
