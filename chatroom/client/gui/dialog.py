"""The connect dialog: where to and as whom. Errors show here in the console client's words; fix and retry.

Connecting and logging in run in a thread (they may wait seconds); the result comes back through a queue.
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from ...cli import PASSWORD_ENV, port_type
from ...protocol import Hello, Welcome
from ..core import ClientError, Connection, Dial, connect, dialer, login, tls_context

POLL_MS = 50
_port = port_type(1)


class Refused(ClientError):
    """The server refused the name or wants a (right) password: the dialog asks, the user tries again."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _name_refused(reason: str) -> str:
    raise Refused(f"{reason}Choose another username.", "name")


def _password_asked(reason: str) -> str:
    raise Refused(f"{reason or 'This room needs a password. '}Type the room password.", "password")


Result = tuple[Connection, Welcome, Dial | None] | ClientError


def attempt(results: queue.SimpleQueue[Result], host: str, port: int, hello: Hello, use_tls: bool,
            cafile: str | None, insecure: bool) -> None:
    """Connect and log in once, in a thread; the connection (with how to dial again if the hello asks to be
    kept) or the ClientError (or Refused) goes to `results`.

    It holds nothing of Tk: a Tk object freed in another thread than Tk's aborts the process.
    """
    try:
        context = tls_context(use_tls, cafile, insecure)
        connection = connect(host, port, hello, context)
    except ClientError as exc:
        results.put(exc)
        return
    try:
        welcome = login(connection, hello, _name_refused, _password_asked)
        results.put((connection, welcome, dialer(host, port, context) if hello.reconnect else None))
    except BaseException as exc:
        connection.sock.close()
        if not isinstance(exc, ClientError):
            raise
        results.put(exc)


class ConnectDialog:
    def __init__(self, root: tk.Tk, args: argparse.Namespace,
                 on_connected: Callable[[Connection, Welcome, Dial | None], None]) -> None:
        self.root = root
        self.args = args
        self.on_connected = on_connected
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
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
        self.status = ttk.Label(self.frame, text="", foreground="#a40000", wraplength=360, justify="left")
        self.status.grid(row=5, column=0, columnspan=2, sticky="w", pady=(8, 4))
        buttons = ttk.Frame(self.frame)
        buttons.grid(row=6, column=0, columnspan=2, sticky="e")
        self.connect_button = ttk.Button(buttons, text="Connect", command=self.connect, default="active")
        self.connect_button.pack(side="right")
        ttk.Button(buttons, text="Quit", command=root.destroy).pack(side="right", padx=(0, 8))
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
        self.connect_button.state(["disabled"])
        self.status.configure(text=f"Connecting to {host} port {port} ...")
        hello = Hello(name, password=self.password.get() or None, reconnect=not self.args.no_reconnect)
        threading.Thread(target=attempt, args=(self._results, host, port, hello, self.tls.get(), self.args.cafile,
                                               self.args.insecure), daemon=True).start()
        self.root.after(POLL_MS, self._poll)

    def _poll(self) -> None:
        if not self.frame.winfo_exists():
            return
        try:
            result = self._results.get_nowait()
        except queue.Empty:
            self.root.after(POLL_MS, self._poll)
            return
        if isinstance(result, ClientError):
            self.fail(str(result), getattr(result, "field", None))
            return
        self.frame.destroy()
        self.root.unbind("<Return>")
        self.on_connected(*result)
