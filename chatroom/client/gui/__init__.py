"""The window front end (Tk): `python client.py --gui`. A connect dialog, then the chat window.

Importing this package needs no tkinter; `run` says in one line what to install when it is missing.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import signal
from types import ModuleType

from ...cli import program_name
from ..connection import ClientError
from ..session import USAGE

MISSING_TK = ("the window needs Python's tkinter, which this Python lacks: on Debian/Ubuntu install "
              "python3-tk (sudo apt install python3-tk); the python.org installers for Windows and macOS "
              "include it")


def run(args: argparse.Namespace) -> int:
    """Open the window and run it until it closes; the exit status."""
    from ... import deps  # here: it starts processes, which a console client never needs

    deps.require(program_name("client.py", "chatroom-client"), *deps.WINDOW)
    try:
        tkinter = importlib.import_module("tkinter")
    except ImportError:
        raise ClientError(MISSING_TK, USAGE) from None
    try:
        return _run(tkinter, args)
    finally:
        # The window's objects are in reference cycles; a Tk interpreter freed by the collector in another
        # thread (a connect attempt still running) aborts the process, so free them here, in Tk's thread.
        gc.collect()


def _run(tkinter: ModuleType, args: argparse.Namespace) -> int:
    from .client import WindowClient

    try:
        root = tkinter.Tk(className="chatroom")
    except tkinter.TclError as exc:
        raise ClientError(f"cannot open a window: {exc}", USAGE) from None
    client = WindowClient(root, args)
    # Ctrl+C in the terminal that started the window closes it as the close button does.
    previous = signal.signal(signal.SIGINT, lambda _signal, _frame: client.close())
    try:
        root.mainloop()
    finally:
        signal.signal(signal.SIGINT, previous)
    return client.finish()
