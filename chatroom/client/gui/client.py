"""The window client's life: the connect dialog, then the chat window, then the exit status."""

from __future__ import annotations

import argparse
import tkinter as tk

from ...protocol import Welcome
from ..connection import Connection, Dial
from ..console.editor import key_help
from ..console.status import security
from ..loop import Background, Loop
from ..session import OK
from ..transfers import Transfers
from . import theme
from .dialog import ConnectDialog
from .window import ChatWindow


class WindowClient:
    def __init__(self, root: tk.Tk, args: argparse.Namespace) -> None:
        self.root = root
        self.args = args
        self.colors = theme.apply(root, args.theme if args.theme != "auto" else theme.system_mode())
        self.status = OK  # closing the dialog without connecting is not a failure
        self.chat: ChatWindow | None = None
        self.closed = False
        self.downloads = args.downloads
        self.dialog = ConnectDialog(root, args, self._connected)

    def _connected(self, connection: Connection, welcome: Welcome, dial: Dial | None, host: str, port: int) -> None:
        """`host` and `port` as the user gave them: asking the socket fails once the server has reset it."""
        loop = Loop(connection, welcome, dial, quit_hint="close the window to quit", key_help=key_help(window=True),
                    transfers=Transfers(self.downloads))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.chat = ChatWindow(self.root, Background(loop), f"{host} port {port}", address,
                                   security(self.args.tls, self.args.insecure), self.colors, self._end)
        except BaseException:
            loop.close()  # its thread, which closes it when it ends, starts only once the window is built
            raise

    def _end(self, status: int) -> None:
        if not self.closed:  # the goodbye and the close button's timer may both get here
            self.closed = True
            self.status = status
            self.root.destroy()

    def close(self) -> None:
        if self.chat is not None:
            self.chat.close()
        else:
            self.dialog.abandon()
            self._end(OK)

    def finish(self) -> int:
        """After the window closed: a connect attempt still under way is abandoned (its connection closed when
        it comes), and the session's thread ends (it closes its connection)."""
        self.dialog.abandon()
        if self.chat is not None:
            self.chat.background.join(self.chat.background.quit_within)
        return self.status
