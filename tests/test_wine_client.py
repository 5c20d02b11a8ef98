"""The console client under a genuine Windows CPython, in a Windows console (Wine's, in tmux), against a Linux
server: typed keys as the console makes them from a terminal, and key records as Windows makes them from a
keyboard written into the console (WriteConsoleInputW); the console's modes after every exit; the same with
colorama converting escape codes into console calls, as in a console without VT processing.

Runs where scripts/test-windows.sh has set the Windows CPython up (and runs this after the suite under it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient
from wine import ROOT, Console, missing
from winrecords import (
    ALT_BACKSPACE, CTRL_C, CTRL_LEFT, CTRL_RIGHT, ENTER, LEFT, UP, alt_numpad, pasted, press, typed,
)

from chatroom.server.main import listening_port

if reason := missing():
    pytest.skip(reason, allow_module_level=True)


class LinuxServer:
    """server.py under this (Linux) Python, keeping its history in a file, so it can come back on its port."""

    def __init__(self, history: Path, port: int = 0) -> None:
        self.history = history
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "127.0.0.1", str(port), "--history",
                                      str(history)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        first = self.proc.stdout.readline() if self.proc.stdout else ""
        assert " port " in first, first + self.end(signal.SIGKILL)
        self.port = listening_port(first)

    def end(self, how: signal.Signals = signal.SIGTERM) -> str:
        """Stop it (SIGKILL: as if the machine went away); what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(how)
        _, err = self.proc.communicate(timeout=TIMEOUT)
        return err


@pytest.fixture
def linux_server(tmp_path: Path) -> Iterator[list[LinuxServer]]:
    """The running server is the last of the list (a test may restart it)."""
    servers = [LinuxServer(tmp_path / "room.sqlite3")]
    yield servers
    for server in servers:
        server.end()


@pytest.fixture
def console() -> Iterator[Console]:
    console = Console()
    yield console
    console.close()


def said(peer: JsonClient, console: Console, name: str = "alice") -> str:
    """What `name` says next, as the peer gets it (not the history it gets on joining)."""
    deadline = time.monotonic() + TIMEOUT * 2
    try:
        while (event := peer.expect_event("message", sender=name, timeout=deadline - time.monotonic())).get("earlier"):
            pass
        return str(event["text"])
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the console shows:\n{console.screen()}") from None


def test_typing_keys_records_history_and_a_lost_server_under_windows(linux_server, console):
    server = linux_server[-1]
    bob = JsonClient(server.port)
    bob.login("bob")
    try:
        console.run("client.py", "127.0.0.1", str(server.port), "alice")
        # From the terminal: the console turns bytes into key records (Left is ESC [ D).
        console.type("voilà tout")
        console.type("Left", literal=False)
        console.type("_\r")
        assert said(bob, console) == "voilà tou_t"
        console.type("é’😀\r")
        assert said(bob, console) == "é’😀"
        # From the keyboard, as Windows reports it: AZERTY's à key, Alt+0233, a pasted ’ and emoji.
        console.write(typed("à") + LEFT + typed("b") + ENTER)  # à and Left: the 0xE0 prefix getwch gives both
        assert said(bob, console) == "bà"
        console.write(alt_numpad(0xE9, "0233") + pasted("’😀") + ENTER)
        assert said(bob, console) == "é’😀"
        # Words: Ctrl+Left, Ctrl+Right, Alt+Backspace.
        console.write(typed("abc def") + CTRL_LEFT + typed("x") + CTRL_RIGHT + typed(" ghi") + ALT_BACKSPACE
                      + typed("jkl") + ENTER)
        assert said(bob, console) == "abc xdef jkl"
        # History and Tab.
        console.write(UP + ENTER)
        assert said(bob, console) == "abc xdef jkl"
        console.type("@b\t")  # completes to "@bob ", a private message
        console.shows("> @bob")
        console.type("hi\r")
        assert bob.expect_event("private", sender="alice", timeout=TIMEOUT * 2)["text"] == "hi"
        # A message arriving mid-line leaves the line being typed whole.
        console.type("half")
        console.shows("half")
        bob.say("from bob")
        console.shows("from bob")
        console.type(" done\r")
        assert said(bob, console) == "half done"
        # Ctrl+C (a key record: the terminal's ^C would be a signal) on a line clears it.
        console.type("oops")
        console.shows("oops")
        console.write(CTRL_C)
        console.type("fine\r")
        assert said(bob, console) == "fine"
        # The server goes and comes back: the client reconnects by itself.
        bob.close()
        server.end(signal.SIGKILL)
        console.shows("reconnecting")
        linux_server.append(server := LinuxServer(server.history, server.port))
        console.shows("reconnected", timeout=TIMEOUT * 4)
        bob = JsonClient(server.port)
        bob.login("bob")
        console.type("back\r")
        assert said(bob, console) == "back"
        # Ctrl+C on an empty line leaves; the console is as it was.
        console.write(CTRL_C)
        status, before, after = console.ended()
        assert status == 0 and before == after
        # /quit leaves too.
        console.run("client.py", "127.0.0.1", str(server.port), "alice")
        console.type("/quit\r")
        status, before, after = console.ended()
        assert status == 0 and before == after
    finally:
        bob.close()


def test_a_console_without_vt_processing_draws_through_colorama(linux_server, console):
    server = linux_server[-1]
    bob = JsonClient(server.port)
    bob.login("bob")
    try:
        console.run("client.py", "127.0.0.1", str(server.port), "alice", legacy=True)
        # The welcome may come after the prompt is drawn: wait for both, then look at the whole screen.
        screen = console.shows(lambda shown: ">" in shown.splitlines() and "Welcome, alice!" in shown)
        assert "connected · 2 users" in screen
        assert "\x1b" not in screen and "[0m" not in screen  # converted into console calls, not printed
        console.type("drawn")
        console.shows("> drawn")
        console.type("\r")
        assert said(bob, console) == "drawn"
        console.shows("<alice> drawn")
        console.write(press(0x43, "\x03", 0x8))  # Ctrl+C on the empty line
        status, before, after = console.ended()
        assert status == 0 and before == after
    finally:
        bob.close()
