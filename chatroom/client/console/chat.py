"""The console front end: keys through the line editor to the loop, and what the loop says to the screen.

Everything runs in the loop's thread (the main one), the only one that writes to the terminal.
"""

from __future__ import annotations

from collections import Counter

from ... import render
from ...protocol import Event
from ..loop import Loop
from ..progress import Row, summary
from ..session import Notice, View
from .editor import Bell, Candidates, Outcome, Quit, Submit
from .keys import RESIZE, KeyReader
from .screen import Screen
from .status import status_line


class Chat:
    def __init__(self, loop: Loop, screen: Screen, keys: KeyReader, where: str, security: str) -> None:
        self.loop, self.screen, self.keys = loop, screen, keys
        self.where, self.security = where, security
        self.view = loop.session.view
        self.unread: Counter[render.Attention] = Counter()  # since the user last pressed a key
        self._here(self.view)
        self.transfers: tuple[Row, ...] = ()
        self.screen.status = self._status()

    @property
    def users(self) -> tuple[str, ...]:
        return self.view.users

    def run(self) -> int:
        """Until the session ends; the exit status."""
        self.screen.redraw()
        self.loop.watch(self.keys.wakeup, self._keys)
        return self.loop.run(self)

    def _status(self) -> str:
        line = status_line(self.view, self.unread, self.where, self.security)
        return f"{summary(self.transfers)} · {line}" if self.transfers else line  # a transfer first: it moves

    def _here(self, view: View) -> None:
        """Who is here, for the names' colors (the theme keeps the names here apart)."""
        self.view = view
        if self.screen.theme.slots is not None:
            self.screen.theme.slots.here(view.users)

    # --- what the loop says -----------------------------------------------------------------------

    def on_event(self, event: Event, view: View) -> None:
        self._here(view)
        attention = render.attention(event, view.me)
        if attention is not None:
            self.unread[attention] += 1
        if text := render.render(event, view.me, self.screen.theme):
            self.screen.status = self._status()
            self.screen.show(text, bell=attention is not None)
        else:
            self.screen.set_status(self._status())

    def on_notice(self, notice: Notice) -> None:
        theme = self.screen.theme
        self.screen.show(theme.paint(theme.error if notice.role == "error" else theme.system, notice.text))

    def on_transfers(self, rows: tuple[Row, ...]) -> None:
        self.transfers = rows
        self.screen.set_status(self._status())  # the input line is redrawn as it was

    def on_view(self, view: View) -> None:
        if view is not self.view:  # else shown already: the keys' turn reads the view it changed
            self._here(view)
            self.screen.set_status(self._status())

    # --- what the user does ------------------------------------------------------------------------

    def _keys(self) -> None:
        for pressed in self.keys.drain():
            if pressed == RESIZE:
                self.screen.resized()
                continue
            self._press(Quit() if pressed is None else self.screen.editor.feed(pressed))
        view = self.loop.session.view  # with what was typed (a message pending)
        if self.unread or view is not self.view:
            self.unread.clear()  # a key pressed: the user is looking
            self._here(view)
            self.screen.status = self._status()
        self.screen.redraw()

    def _press(self, outcome: Outcome) -> None:
        match outcome:
            case Submit(line=line, verbatim=verbatim):
                self.loop.send(line, verbatim)
            case Quit():
                self.loop.quit()
            case Bell():
                self.screen.bell()
            case Candidates(options=options):
                self.screen.show("  ".join(options))
