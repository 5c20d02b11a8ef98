"""The connect dialog: where to and as whom. Errors show here in the console client's words; fix and retry.

Connecting and logging in run in an `Attempt` (a thread: they may wait seconds), which the dialog polls.
"""

from __future__ import annotations

import argparse
import os
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from ...cli import PASSWORD_ENV, port_type
from ...protocol import Hello, Welcome
from ..connection import Attempt, ClientError, Connection, Dial, Refused, dialer, tls_context

POLL_MS = 50
_port = port_type(1)


def _words(error: ClientError) -> tuple[str, str | None]:
    """What the dialog says about a failed attempt, and the field to fix."""
    if isinstance(error, Refused) and error.refusal == "name":
        return f"{error.reason}Choose another username.", "name"
    if isinstance(error, Refused):
        return f"{error.reason or 'This room needs a password. '}Type the room password.", "password"
    return str(error), None


class ConnectDialog:
    def __init__(self, root: tk.Tk, args: argparse.Namespace,
                 on_connected: Callable[[Connection, Welcome, Dial | None, str, int], None]) -> None:
        self.root = root
        self.args = args
        self.on_connected = on_connected
        self._attempt: Attempt | None = None
        self._dial: Dial | None = None
        self._where = ("", 0)  # the host and port of the attempt under way, as the user gave them
        self.frame = ttk.Frame(root, padding=16)
        self.frame.pack(fill="both", expand=True)
        self.host = tk.StringVar(value=args.host)
        self.port = tk.StringVar(value=str(args.port))
        self.name = tk.StringVar(value=args.name or "")
        self.tls = tk.BooleanVar(value=args.tls)
        self.password = tk.StringVar(value=os.environ.get(PASSWORD_ENV, ""))
        self.entries: dict[str, ttk.Entry] = {}
        for row, (label, field, variable) in enumerate([("Server", "host", self.host), ("Port", "port", self.port),
                                                        ("Username", "name", self.name),
                                                        ("Room password", "password", self.password)]):
            ttk.Label(self.frame, text=label).grid(row=row, column=0, sticky="w", pady=3, padx=(0, 10))
            entry = ttk.Entry(self.frame, textvariable=variable, width=32, show="•" if field == "password" else "")
            entry.grid(row=row, column=1, sticky="ew", pady=3)
            self.entries[field] = entry
        self._password_widgets = self.frame.grid_slaves(row=3)
        if not self.password.get():
            for widget in self._password_widgets:
                widget.grid_remove()  # shown when the room asks for a password
        ttk.Checkbutton(self.frame, text="Use TLS (encrypted)", variable=self.tls).grid(row=4, column=1, sticky="w")
        self.status = ttk.Label(self.frame, text="", style="Error.TLabel", wraplength=360, justify="left")
        self.status.grid(row=5, column=0, columnspan=2, sticky="w", pady=(8, 4))
        buttons = ttk.Frame(self.frame)
        buttons.grid(row=6, column=0, columnspan=2, sticky="e")
        self.connect_button = ttk.Button(buttons, text="Connect", command=self.connect, default="active")
        self.connect_button.pack(side="right")
        ttk.Button(buttons, text="Quit", command=self.quit).pack(side="right", padx=(0, 8))
        self.frame.columnconfigure(1, weight=1)
        root.bind("<Return>", lambda _event: self.connect())  # from any field, or the focused Connect button
        root.title("chatroom: connect")
        self.entries["name"].focus_set()
        if args.name:  # everything was given on the command line: go, as the console client does
            root.after_idle(self.connect)

    def fail(self, message: str, field: str | None = None) -> None:
        self.status.configure(text=message)
        self.connect_button.state(["!disabled"])
        if field == "password":
            for widget in self._password_widgets:
                widget.grid()
        if field:
            entry = self.entries[field]
            entry.focus_set()
            entry.select_range(0, "end")

    def connect(self) -> None:
        if self.connect_button.instate(["disabled"]):
            return
        try:
            port = _port(self.port.get().strip())
        except argparse.ArgumentTypeError as exc:
            self.fail(str(exc), "port")
            return
        host, name = self.host.get().strip(), self.name.get().strip()
        if not host or not name:
            self.fail("Type the server's address." if not host else "Type a username.", "name" if host else "host")
            return
        try:
            context = tls_context(self.tls.get(), self.args.cafile, self.args.insecure)
        except ClientError as exc:
            self.fail(str(exc))
            return
        self.connect_button.state(["disabled"])
        self.status.configure(text=f"Connecting to {host} port {port} ...")
        hello = Hello(name, password=self.password.get() or None, reconnect=not self.args.no_reconnect)
        self._dial = dialer(host, port, context)
        self._where = (host, port)
        self._attempt = Attempt(self._dial, hello)  # it holds nothing of Tk: one freed in its thread aborts
        self.root.after(POLL_MS, self._poll)

    def _poll(self) -> None:
        attempt = self._attempt
        if attempt is None or not self.frame.winfo_exists():
            return
        if not attempt.done.is_set():
            self.root.after(POLL_MS, self._poll)
            return
        self._attempt = None
        match attempt.result:
            case ClientError() as error:
                self.fail(*_words(error))
            case (connection, welcome):
                self.frame.destroy()
                self.root.unbind("<Return>")
                self.on_connected(connection, welcome, None if self.args.no_reconnect else self._dial, *self._where)

    def abandon(self) -> None:
        """The window goes: a connection the attempt under way makes is closed, now or when it comes."""
        if self._attempt is not None:
            self._attempt.abandon()
            self._attempt = None

    def quit(self) -> None:
        self.abandon()
        self.root.destroy()
