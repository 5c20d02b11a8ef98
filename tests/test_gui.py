"""The window client for real: Tk on an Xvfb display, against a real server and raw-socket clients.

Skipped, with the reason, where tkinter or Xvfb cannot be had (.ci/run installs Debian's xvfb).
"""

from __future__ import annotations

import gc
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, JsonClient, certificates
from fakeserver import Relay

from chatroom.client.main import parse_args
from chatroom.client.session import DISCONNECTED, OK
from chatroom.codecs import encode_json
from chatroom.client.loop import Received
from chatroom.protocol import BANNER, Hello, Message, Private, Welcome
from chatroom.server.config import Config

ROOT = Path(__file__).resolve().parent.parent


tkinter = pytest.importorskip("tkinter", reason="the window client needs tkinter (Debian/Ubuntu: python3-tk)")
from chatroom.client.gui.client import WindowClient  # noqa: E402 (after the skip: it imports tkinter)


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """An Xvfb display of our own, for the module's windows; DISPLAY points at it meanwhile."""
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb for a display (Debian/Ubuntu: apt-get install xvfb; .ci/run installs it)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=[write], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    # Xvfb writes the number and the newline separately: closing the pipe before the newline kills it.
    said = b""
    while not said.endswith(b"\n") and select.select([read], [], [], TIMEOUT)[0]:
        if not (chunk := os.read(read, 64)):
            break
        said += chunk
    os.close(read)
    number = said.decode().strip()
    if not number:
        xvfb.kill()
        xvfb.wait(TIMEOUT)
        pytest.skip("Xvfb did not start")
    before = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield f":{number}"
    if before is None:
        os.environ.pop("DISPLAY")
    else:
        os.environ["DISPLAY"] = before
    xvfb.terminate()
    xvfb.wait(TIMEOUT)


@pytest.fixture(scope="module")
def kept(display: str) -> Iterator[list[tkinter.Tk]]:
    """The module's Tk roots, kept alive until its end and then freed in this thread: a Tk interpreter
    freed by the garbage collector in another thread (a server's) aborts the process."""
    roots: list[tkinter.Tk] = []
    yield roots
    roots.clear()
    gc.collect()


@pytest.fixture
def root(kept: list[tkinter.Tk]) -> Iterator[tkinter.Tk]:
    try:
        window = tkinter.Tk(className="chatroom")
    except tkinter.TclError as exc:
        pytest.skip(f"Tk cannot open a window on Xvfb: {exc}")
    kept.append(window)
    yield window
    if not gone(window):
        window.destroy()
    gc.collect()  # the test's Tk variables and fonts, freed here rather than in a server's thread


def until(root: tkinter.Tk, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Run Tk's event loop until the condition holds (or the window is gone and it holds then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the window")
        try:
            root.update()
        except tkinter.TclError:  # the window was destroyed
            if condition():
                return
            raise
        time.sleep(0.005)


def gone(root: tkinter.Tk) -> bool:
    try:
        return not root.winfo_exists()
    except tkinter.TclError:
        return True


def shown(client: WindowClient) -> str:
    return client.chat.text.get("1.0", "end")


def start(root: tkinter.Tk, port: int) -> WindowClient:
    """The dialog, prefilled with the address (without a username, so it waits for the user)."""
    client = WindowClient(root, parse_args(["--gui", "127.0.0.1", str(port)]))
    until(root, lambda: True)
    return client


def connected(root: tkinter.Tk, port: int, name: str = "amy", *options: str) -> WindowClient:
    """Everything given on the command line: the dialog connects at once."""
    client = WindowClient(root, parse_args(["--gui", "127.0.0.1", str(port), name, *options]))
    until(root, lambda: client.chat is not None)
    return client


def type_line(root: tkinter.Tk, client: WindowClient, text: str) -> None:
    entry = client.chat.entry
    entry.delete(0, "end")
    entry.insert(0, text)
    entry.focus_force()
    until(root, lambda: root.focus_get() is entry)
    entry.event_generate("<Return>")


def test_a_conversation_through_the_window(root, server, clients, monkeypatch):
    bob = clients()
    bob.login("bob")
    client = start(root, server.port)
    dialog = client.dialog
    assert (dialog.host.get(), dialog.port.get(), dialog.name.get(), dialog.tls.get()) == \
        ("127.0.0.1", str(server.port), "", False)
    assert client.chat is None  # no username yet: the dialog waits
    dialog.name.set("amy")
    name = dialog.entries["name"]
    name.focus_force()
    until(root, lambda: root.focus_get() is name)
    name.event_generate("<Return>")
    until(root, lambda: client.chat is not None)
    chat = client.chat
    until(root, lambda: chat.user_list.get(0, "end") == ("amy (you)", "bob"))  # sorted
    until(root, lambda: "Welcome, amy!" in shown(client))  # after the history, which the session holds it for
    assert "amy" in root.title()

    type_line(root, client, "hello bob")
    assert bob.expect_event("message", sender="amy")["text"] == "hello bob"
    bob.say("hi amy")
    until(root, lambda: "<bob> hi amy" in shown(client))
    bob.say("/me waves")
    until(root, lambda: "* bob waves" in shown(client))

    type_line(root, client, "/msg bob a secret")
    assert bob.expect_event("private", sender="amy")["text"] == "a secret"
    bob.say("/msg amy psst")
    until(root, lambda: "[private from bob] psst" in shown(client))
    line = chat.text.search("[private from bob]", "1.0")
    assert "private_line" in chat.text.tag_names(line)

    # Double-clicking bob in the list starts a private message to him.
    x, y, _, height = chat.user_list.bbox(1)
    for event in ["<ButtonPress-1>", "<ButtonRelease-1>"] * 2:
        chat.user_list.event_generate(event, x=x + 2, y=y + height // 2)
    assert chat.entry.get() == "/msg bob "
    chat.entry.insert("end", "via the list")
    chat.entry.event_generate("<Return>")
    assert bob.expect_event("private", sender="amy")["text"] == "via the list"

    # Up recalls what was sent; Tab completes a name.
    chat.entry.event_generate("<Up>")
    assert chat.entry.get() == "/msg bob via the list"
    chat.entry.delete(0, "end")
    chat.entry.insert(0, "/msg b")
    chat.entry.event_generate("<Tab>")
    assert chat.entry.get() == "/msg bob " and root.focus_get() is chat.entry

    chat.menu.invoke("Who is here")
    until(root, lambda: "Users here (2):" in shown(client))
    monkeypatch.setattr("tkinter.simpledialog.askstring", lambda *args, **kwargs: "amelia")
    chat.menu.invoke("Change my name...")
    until(root, lambda: chat.user_list.get(0, "end") == ("amelia (you)", "bob"))
    assert "amy is now known as amelia" in shown(client) and root.title().startswith("amelia")

    carol = clients()
    carol.login("carol")
    until(root, lambda: "carol joined" in shown(client))
    carol.close()
    until(root, lambda: "carol left (closed the connection)" in shown(client))
    until(root, lambda: "carol" not in chat.user_list.get(0, "end"))
    line = chat.text.search("carol left", "1.0")
    assert "system" in chat.text.tag_names(line)

    root.tk.call(root.protocol("WM_DELETE_WINDOW"))  # the window's close button
    assert bob.expect_event("leave", name="amelia")["reason"] == "quit"
    until(root, lambda: gone(root))
    assert client.finish() == OK


def test_a_pasted_block_goes_as_one_message_as_in_the_console(root, server, clients):
    bob = clients()
    bob.login("bob")
    client = connected(root, server.port)
    chat = client.chat
    root.clipboard_clear()
    root.clipboard_append("first line\n  second line\n")
    chat.entry.focus_force()
    until(root, lambda: root.focus_get() is chat.entry)
    chat.entry.event_generate("<<Paste>>")
    chat.entry.event_generate("<Return>")
    assert bob.expect_event("message", sender="amy")["text"] == "first line\n  second line"
    until(root, lambda: "  second line" in shown(client))
    chat.close()
    until(root, lambda: gone(root))


def test_the_dialog_says_what_went_wrong_and_lets_the_user_retry(root, make_server, clients):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    server = make_server(password="sesame")
    client = start(root, free)
    dialog = client.dialog
    dialog.connect_button.invoke()
    assert dialog.status.cget("text") == "Type a username."
    dialog.name.set("amy")
    dialog.connect_button.invoke()
    refused = f"cannot connect to 127.0.0.1 port {free}: nothing is listening there (is the server running?)"
    until(root, lambda: dialog.status.cget("text") == refused)

    dialog.port.set("99999")
    dialog.connect_button.invoke()
    assert dialog.status.cget("text") == "'99999' is not a port number (1-65535)"

    dialog.port.set(str(server.port))
    assert not dialog.entries["password"].winfo_ismapped()
    dialog.connect_button.invoke()
    until(root, lambda: "needs a password" in dialog.status.cget("text"))
    until(root, lambda: dialog.entries["password"].winfo_ismapped())
    assert dialog.entries["password"].cget("show") == "•"
    dialog.password.set("wrong")
    dialog.connect_button.invoke()
    until(root, lambda: dialog.status.cget("text") == "Wrong password. Type the room password.")

    bob = JsonClient(server.port)
    bob.line()
    bob.send(Hello("bob", password="sesame").encode())
    bob.expect_event("welcome")
    dialog.password.set("sesame")
    dialog.name.set("BOB")
    dialog.connect_button.invoke()
    until(root, lambda: dialog.status.cget("text") == 'Sorry, the username "BOB" is taken. Choose another username.')
    assert root.focus_lastfor() is dialog.entries["name"]
    dialog.name.set("amy")
    dialog.connect_button.invoke()
    until(root, lambda: client.chat is not None)
    assert bob.expect_event("join")["name"] == "amy"
    bob.close()
    client.chat.close()
    until(root, lambda: gone(root))
    assert client.finish() == OK


def test_not_a_chatroom_server_in_the_console_words(root, fake_server):
    client = start(root, fake_server.port)
    client.dialog.name.set("amy")
    client.dialog.connect_button.invoke()
    fake_server.accept().say("SSH-2.0-OpenSSH_9.2")
    until(root, lambda: "Connecting" not in client.dialog.status.cget("text"))
    assert client.dialog.status.cget("text") == f"127.0.0.1 port {fake_server.port} is not a chatroom server"


def test_a_connection_made_after_the_dialogs_quit_is_closed(root, fake_server):
    client = start(root, fake_server.port)
    client.dialog.name.set("amy")
    client.dialog.connect_button.invoke()
    peer = fake_server.accept()  # the attempt has connected and waits for the greeting
    quit_button = next(button for button in client.dialog.frame.winfo_children()[-1].winfo_children()
                       if button.cget("text") == "Quit")
    quit_button.invoke()
    until(root, lambda: gone(root))
    assert client.finish() == OK
    peer.welcome()  # the server answers late: nobody is there to take the connection
    assert peer.closed()


def test_a_connection_the_server_reset_before_the_window_opened_is_shown_as_lost(root, fake_server):
    """The dialog's attempt logged in, then the server reset the connection before the dialog looked again: the
    window still opens, with the address the user gave (asking the socket for it then fails: ENOTCONN), and
    shows the connection lost (before, a blank window and a socket nobody closed)."""
    client = WindowClient(root, parse_args(["--gui", "localhost", str(fake_server.port), "amy", "--no-reconnect"]))
    until(root, lambda: client.dialog._attempt is not None)  # the dialog has started connecting
    attempt = client.dialog._attempt
    peer = fake_server.accept()
    peer.welcome()
    assert attempt.done.wait(TIMEOUT)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # with a reset
    assert select.select([attempt.result[0].sock], [], [], TIMEOUT)[0]  # it has arrived
    until(root, lambda: client.chat is not None)
    assert root.title().endswith(f"chatroom localhost port {fake_server.port}")
    until(root, lambda: client.chat.ended is not None)
    assert "! Connection lost" in shown(client)
    client.chat.close()
    until(root, lambda: gone(root))
    assert client.finish() == DISCONNECTED


def test_a_window_that_cannot_be_built_closes_its_connection(root, fake_server, monkeypatch):
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in building the window")

    monkeypatch.setattr("chatroom.client.gui.client.ChatWindow", broken)
    monkeypatch.setattr(root, "report_callback_exception", lambda *args: None)  # Tk would print the traceback
    client = WindowClient(root, parse_args(["--gui", "127.0.0.1", str(fake_server.port), "amy"]))
    until(root, lambda: client.dialog._attempt is not None)
    attempt = client.dialog._attempt
    peer = fake_server.accept()
    peer.welcome()
    until(root, lambda: client.dialog._attempt is None)  # the dialog took the connection, and failed with it
    assert attempt.result is not None and peer.closed()
    client.close()
    until(root, lambda: gone(root))


def test_a_mention_or_private_message_flashes_an_unfocused_window(root, server, clients, monkeypatch):
    bob = clients()
    bob.login("bob")
    client = connected(root, server.port)
    chat = client.chat
    rings = []
    monkeypatch.setattr(chat, "_focused", lambda: False)
    monkeypatch.setattr(root, "bell", lambda: rings.append(1))
    bob.say("nobody in particular")
    bob.say("amy, are you there?")
    bob.say("/msg amy psst")
    until(root, lambda: "psst" in shown(client))
    assert len(rings) >= 1 and chat.unseen == 2 and root.title().startswith("(2) amy")
    line = chat.text.search("amy, are you there?", "1.0")
    assert "mention_line" in chat.text.tag_names(line)
    chat._focus_in(None)
    assert root.title().startswith("amy")
    client.chat.close()
    until(root, lambda: gone(root))


def test_the_servers_shutdown_shows_in_the_window_and_the_status_is_3(root, server):
    client = connected(root, server.port, "amy", "--no-reconnect")
    chat = client.chat
    stopper = threading.Thread(target=lambda: (server.shutdown(), server.stop(grace=1.0)))
    stopper.start()
    until(root, lambda: chat.ended is not None)
    stopper.join(TIMEOUT)
    assert "The server is shutting down." in shown(client) and "Connection lost" not in shown(client)
    assert chat.entry.instate(["disabled"]) and "(disconnected)" in root.title()
    chat.close()
    until(root, lambda: gone(root))
    assert client.finish() == DISCONNECTED


def test_the_window_reconnects_by_itself_and_shows_it(root, server, clients):
    relay = Relay(server.port)  # passes the window's connections on, and cuts them
    try:
        client = connected(root, relay.port)
        bob = clients()
        bob.login("bob")
        until(root, lambda: "bob joined" in shown(client))  # an event id: what came after it is asked for
        relay.hold()
        relay.cut()
        until(root, lambda: "-- connection lost; reconnecting in 1 s (attempt 1)" in shown(client))
        assert "close the window to quit" in shown(client) and "(reconnecting)" in root.title()
        bob.expect_event("reconnecting", name="amy")
        bob.say("while you were out")
        relay.release()
        until(root, lambda: "1 message while you were away" in shown(client), timeout=TIMEOUT * 2)
        assert shown(client).count("while you were out") == 1 and "(reconnecting)" not in root.title()
        assert "amy is reconnecting" not in shown(client)
        type_line(root, client, "back")
        assert bob.expect_event("message", sender="amy")["text"] == "back"
        client.chat.close()
        until(root, lambda: gone(root))
        assert client.finish() == OK
    finally:
        relay.close()


def test_use_tls_in_the_dialog(root, make_server, tmp_path):
    from chatroom import tls
    certificates(tmp_path)
    server = make_server(tls_context=tls.server_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")))
    client = WindowClient(root, parse_args(["--gui", "127.0.0.1", str(server.port), "--tls", "--cafile",
                                                str(tmp_path / "ca.pem")]))
    dialog = client.dialog
    assert dialog.tls.get()
    dialog.tls.set(False)
    dialog.name.set("amy")
    dialog.connect_button.invoke()
    until(root, lambda: "Connecting" not in dialog.status.cget("text"))
    assert dialog.status.cget("text").startswith(f"127.0.0.1 port {server.port} ")  # the console's words
    dialog.tls.set(True)
    dialog.connect_button.invoke()
    until(root, lambda: client.chat is not None)
    chat = client.chat
    assert chat.background.loop.connection.sock.version() in ("TLSv1.2", "TLSv1.3")
    type_line(root, client, "over TLS")
    until(root, lambda: "<amy> over TLS" in shown(client))
    chat.close()
    until(root, lambda: gone(root))
    assert client.finish() == OK


def test_a_hostile_server_never_breaks_the_window(root, fake_server):
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m" + "\u202egnp.exe\u202c" + "\u2066iso\u2069" + "\x00\x08\r"
    long_line = "x" * 4000
    lines = [json.dumps({"type": "message", "seq": 1, "sender": "mallory", "text": evil, "ts": 1}).encode(),
             json.dumps({"type": "message", "seq": 2, "sender": "mallory", "text": long_line, "ts": 1}).encode(),
             encode_json(Private(3, "mal\u202elory", "amy", "\x1b[5mblink")).rstrip(),
             b"not json \x1b[31m at all", b"\xff\xfe broken utf-8",
             json.dumps({"type": "users", "users": ["amy", "\x1b[31mred"], "you": "amy"}).encode(),
             json.dumps({"type": "message", "seq": 4, "sender": "mallory", "text": "still here", "ts": 1}).encode()]
    served = fake_server.serve(BANNER, Welcome("amy", ["amy", "m\x1b[2Jallory"]), *[line + b"\n" for line in lines])
    client = connected(root, fake_server.port, "amy", "--no-reconnect")
    served().hang_up()
    chat = client.chat
    until(root, lambda: chat.ended is not None)
    text = shown(client)
    assert "still here" in text and long_line in text and "! Connection lost" in text
    unsafe = [ch for ch in text + "".join(chat.user_list.get(0, "end")) + root.title()
              if ch != "\n" and (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u202e\u202c\u2066\u2069")]
    assert unsafe == []
    assert chat.entry.instate(["disabled"])
    chat.close()  # after the loss, closing the window ends with the console's status for it
    until(root, lambda: gone(root))
    assert client.finish() == DISCONNECTED


def test_an_event_the_window_cannot_show_is_logged_once_and_the_window_goes_on(root, fake_server, caplog):
    """The decoder refuses what cannot be drawn (a time out of range), but a failure to draw one event must not
    freeze the window (before, _poll raised before it asked Tk for the next poll). Nothing a server sends can
    cause one now, so the test hands the window such an event itself, twice, as the loop's thread would."""
    served = fake_server.serve(BANNER, Welcome("amy", ["amy"]))
    client = connected(root, fake_server.port, "amy", "--no-reconnect")
    chat = client.chat
    until(root, lambda: "Welcome, amy!" in shown(client))
    view = chat.background.loop.session.view
    for _ in range(2):
        chat.background.inbox.put(Received(Message(1, "mallory", None), view, 0.0))  # no text: cannot be drawn
    peer = served()
    peer.say(Message(2, "bob", "still here"))
    until(root, lambda: "still here" in shown(client))
    failures = [record for record in caplog.records if "could not show" in record.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    peer.hang_up()
    until(root, lambda: chat.ended is not None)
    chat.close()
    until(root, lambda: gone(root))
    assert client.finish() == DISCONNECTED


def test_a_burst_of_1000_messages_keeps_the_window_responsive(root, make_server):
    server = make_server(Config(rate=0))
    flood = JsonClient(server.port)
    flood.login("flood")
    client = connected(root, server.port)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        root.after(5, tick)

    tick()
    flood.send("".join(f"burst {number:04d}\n" for number in range(1000)))
    until(root, lambda: "burst 0999" in shown(client))
    flood.close()
    text = shown(client)
    assert all(f"burst {number:04d}" in text for number in range(1000))
    assert max(later - earlier for earlier, later in zip(ticks, ticks[1:])) < 0.5  # the loop never froze
    client.chat.close()
    until(root, lambda: gone(root))


def test_the_scrollback_is_bounded(root, server):
    client = connected(root, server.port)
    chat = client.chat
    chat.conversation.scrollback = 50
    chat.conversation.insert([[(f"line {number}\n", ())] for number in range(200)])
    assert int(chat.text.index("end-1c").split(".")[0]) <= 51
    assert "line 199" in shown(client) and "line 100\n" not in shown(client)
    chat.close()
    until(root, lambda: gone(root))


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="needs xdotool to see the window's title")
def test_client_py_gui_with_a_username_connects_at_once_and_ctrl_c_quits_with_status_0(display, server, clients):
    bob = clients()
    bob.login("bob")
    proc = subprocess.Popen([sys.executable, str(ROOT / "client.py"), "--gui", "127.0.0.1", str(server.port), "amy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert bob.expect_event("join")["name"] == "amy"
        subprocess.run(["xdotool", "search", "--sync", "--name", f"^amy - chatroom 127.0.0.1 port {server.port}$"],
                       capture_output=True, timeout=TIMEOUT, check=True)  # the chat window is up
        proc.send_signal(signal.SIGINT)
        assert bob.expect_event("leave", name="amy")["reason"] == "quit"
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0 and err == "", err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_user_who_is_reconnecting_is_marked_in_the_list(root, server):
    client = connected(root, server.port)
    bob = JsonClient(server.port)
    try:
        bob.line()
        bob.send(Hello("bob", reconnect=True).encode())  # a client that comes back by itself
        bob.event()
        until(root, lambda: "bob" in client.chat.user_list.get(0, "end"))
        bob.close()
        until(root, lambda: "bob (reconnecting)" in client.chat.user_list.get(0, "end"))
        client.chat.close()
        until(root, lambda: gone(root))
        assert client.finish() == OK
    finally:
        bob.close()


def test_files_in_the_window_send_file_progress_download_and_cancel(root, make_server, tmp_path, monkeypatch):
    from filetools import DataRelay

    from chatroom.server.files import FileLimits, FileStore
    server = make_server(Config(rate=0), files=FileStore(FileLimits(), tmp_path / "store"))
    relay = DataRelay(server.port, rate=600_000)
    try:
        client = connected(root, relay.port, "amy", "--downloads", str(tmp_path / "downloads"))
        chat = client.chat
        slides = tmp_path / "slides.pdf"
        slides.write_bytes(os.urandom(400_000))
        monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **options: str(slides))
        chat.menu.invoke("Send file…")
        until(root, lambda: "amy shares slides.pdf (400 kB) — /get 1  Download" in shown(client))

        saved = tmp_path / "chosen" / "my slides.pdf"
        saved.parent.mkdir()
        monkeypatch.setattr("tkinter.filedialog.asksaveasfilename", lambda **options: str(saved))
        start = chat.text.tag_ranges("get1")[0]
        x, y, width, height = chat.text.bbox(start)
        for event in ("<Motion>", "<Button-1>"):  # over the link (Tk's "current" mark follows the pointer), click
            chat.text.event_generate(event, x=x + 2, y=y + height // 2)
        until(root, lambda: bool(chat.files._rows))  # a progress bar while it comes
        _, label, bar = next(iter(chat.files._rows.values()))
        until(root, lambda: 0 < bar.cget("value") < 1000 and label.cget("text").startswith("↓ slides.pdf"))
        until(root, lambda: "(sha256 verified)" in shown(client))
        assert saved.read_bytes() == slides.read_bytes() and not chat.files._rows

        chat.file_button.invoke()  # the button next to Send: the same dialog, a second upload
        until(root, lambda: bool(chat.files._rows))
        row = next(iter(chat.files._rows.values()))[0]
        cancel = next(child for child in row.winfo_children() if isinstance(child, tkinter.ttk.Button))
        cancel.invoke()
        until(root, lambda: not chat.files._rows and not chat.files.panel.winfo_ismapped())
        until(root, lambda: not list((tmp_path / "store").glob("*.part")))
        chat.close()
        until(root, lambda: gone(root))
    finally:
        relay.close()


# --- issue #22: a window people keep open ---------------------------------------------------------------------

def resize(root: tkinter.Tk, width: int, height: int) -> None:
    root.geometry(f"{width}x{height}")
    until(root, lambda: (root.winfo_width(), root.winfo_height()) == (width, height))
    root.update()


def inside(widget: tkinter.Misc, root: tkinter.Tk) -> bool:
    """The widget is shown whole within the window."""
    top, bottom = widget.winfo_rooty(), widget.winfo_rooty() + widget.winfo_height()
    left, right = widget.winfo_rootx(), widget.winfo_rootx() + widget.winfo_width()
    return (widget.winfo_ismapped() and widget.winfo_height() > 10 and root.winfo_rooty() <= top
            and bottom <= root.winfo_rooty() + root.winfo_height() and right <= root.winfo_rootx() + root.winfo_width()
            and left >= root.winfo_rootx())


def at_end(chat) -> bool:
    return chat.text.yview()[1] >= 0.999


@pytest.mark.parametrize("width, height", [(860, 450), (640, 480), (480, 260), (1280, 800)])
def test_the_input_status_bar_and_hint_stay_whole_at_every_size(root, server, width, height):
    client = connected(root, server.port)
    chat = client.chat
    resize(root, width, height)
    for widget in (chat.entry, chat.send_button, chat.status, chat.user_list):
        assert inside(widget, root), (widget, width, height)
    for label in (chat.hint, chat.here):  # wrapped at the side's width, not cut
        assert label.winfo_reqwidth() <= label.master.winfo_width()
    assert (width, height) != (480, 260) or root.minsize() == (480, 260)
    chat.close()
    until(root, lambda: gone(root))


def test_the_view_follows_the_newest_line_after_a_resize_unless_scrolled_up_then_says_what_is_below(root, server,
                                                                                                    clients):
    bob = clients()
    bob.login("bob")
    client = connected(root, server.port)
    chat = client.chat
    resize(root, 1280, 800)
    chat.conversation.insert([[(f"line {number} " + "words " * 20 + "\n", ())] for number in range(150)])
    until(root, lambda: at_end(chat))
    resize(root, 640, 480)  # the lines wrap anew: the newest one stays in view
    until(root, lambda: at_end(chat))
    assert chat.text.bbox("end-2c") is not None

    chat.text.yview_moveto(0.3)  # the user scrolls up
    until(root, lambda: not chat.conversation.following)
    top = chat.text.index("@0,0")  # the line at the top of the view
    bob.say("amy, look at this")
    bob.say("and this")
    until(root, lambda: chat.conversation.marker.winfo_ismapped() and "2 new" in chat.conversation.marker.cget("text"))
    assert chat.conversation.marker.cget("text") == "↓ 2 new messages below, 1 for you"
    assert chat.text.index("@0,0") == top  # the view stayed where the user is reading
    resize(root, 860, 450)
    assert not at_end(chat) and chat.conversation.marker.winfo_ismapped()
    chat.conversation.marker.invoke()
    until(root, lambda: at_end(chat) and not chat.conversation.marker.winfo_ismapped())
    chat.close()
    until(root, lambda: gone(root))


def paste(root: tkinter.Tk, entry: tkinter.Misc, text: str) -> None:
    root.clipboard_clear()
    root.clipboard_append(text)
    entry.focus_force()
    until(root, lambda: root.focus_get() is entry)
    entry.event_generate("<<Paste>>")


def test_a_pasted_block_shows_its_lines_until_enter_sends_it_and_esc_lets_it_go(root, server, clients):
    bob = clients()
    bob.login("bob")
    client = connected(root, server.port)
    chat = client.chat
    resize(root, 860, 450)
    paste(root, chat.entry, "def f():\n    return 1\n# done\n")
    preview = chat.input.preview
    until(root, lambda: preview.winfo_ismapped())
    assert preview.get("1.0", "end-1c") == "def f():\n    return 1\n# done"  # lines, indentation kept
    assert chat.entry.get() == "[3 lines pasted: Enter sends, Esc discards]" and inside(chat.entry, root)
    chat.entry.event_generate("<Escape>")
    until(root, lambda: not preview.winfo_ismapped())
    assert chat.entry.get() == ""
    chat.entry.insert(0, "typed, then cleared")
    chat.entry.event_generate("<Control-u>")  # as in the console
    assert chat.entry.get() == ""
    paste(root, chat.entry, "one\ntwo")
    chat.entry.event_generate("<Return>")
    assert bob.expect_event("message", sender="amy")["text"] == "one\ntwo"
    assert not preview.winfo_ismapped() and chat.entry.get() == ""
    chat.close()
    until(root, lambda: gone(root))


def test_the_status_bar_pending_lines_and_a_stale_user_list_while_the_server_is_away(root, server, clients):
    relay = Relay(server.port)
    try:
        client = connected(root, relay.port)
        chat = client.chat
        bob = clients()
        bob.login("bob")
        where = f"127.0.0.1:{relay.port} · clear text"
        until(root, lambda: chat.status.cget("text") == f"amy · connected · 2 users · {where}")
        until(root, lambda: chat.here.cget("text") == "Here now (2)")
        relay.hold()
        relay.cut()
        until(root, lambda: chat.status.cget("text") == f"amy · reconnecting · {where}")  # no stale count
        assert chat.here.cget("text") == "Here before the loss (2)"
        assert {chat.user_list.itemcget(index, "foreground") for index in range(2)} == {chat.colors.grey}
        type_line(root, client, "are you there?")
        until(root, lambda: "1 message pending" in chat.status.cget("text"))
        assert '-- not connected: "are you there?" waits, and goes once the connection is back' in shown(client)
        relay.release()
        type_line(root, client, "")  # Enter on an empty line: try now
        until(root, lambda: "-- reconnecting now" in shown(client))
        assert bob.expect_event("message", sender="amy")["text"] == "are you there?"
        until(root, lambda: chat.status.cget("text") == f"amy · connected · 2 users · {where}")
        assert chat.here.cget("text") == "Here now (2)"
        client.chat.close()
        until(root, lambda: gone(root))
    finally:
        relay.close()


def test_history_its_end_a_day_line_and_the_welcome_then_names_apart_and_privates_counted_as_such(root, server,
                                                                                                 clients,
                                                                                                 monkeypatch):
    bob, carol = clients(), clients()
    bob.login("bob")  # bob's and carol's hashes pick neighbouring greens
    carol.login("carol")
    bob.say("before amy came")
    bob.expect_event("message", text="before amy came")
    client = connected(root, server.port)
    chat = client.chat
    until(root, lambda: "Welcome, amy!" in shown(client))
    text = shown(client)
    order = [text.index(part) for part in ["(earlier) <bob> before amy came", "— end of history —", "Welcome, amy!"]]
    assert order == sorted(order)
    assert text.startswith("— ") and "day" in chat.text.tag_names("1.2")  # the day, above it all
    monkeypatch.setattr(chat, "_focused", lambda: False)  # the user looks elsewhere
    bob.say("hi all")
    carol.say("/msg amy psst")
    until(root, lambda: "psst" in shown(client))
    tags = [chat.text.tag_names(chat.text.search(found, "1.0") + f"+{skip}c") for found, skip in [("<bob>", 1),
                                                                                                  ("carol]", 0)]]
    bob_tag = next(tag for tag in tags[0] if tag.startswith("name"))
    carol_tag = next(tag for tag in tags[1] if tag.startswith("name"))
    assert chat.text.tag_cget(bob_tag, "foreground") != chat.text.tag_cget(carol_tag, "foreground")
    assert chat.status.cget("text").startswith("amy · connected · 1 unread private message · 3 users")
    chat.close()
    until(root, lambda: gone(root))


def pixel(window: int, x: int, y: int) -> str:
    """The color of a pixel of a window, as a screenshot sees it ("#rrggbb")."""
    shot = subprocess.run(["import", "-window", str(window), "-crop", f"1x1+{x}+{y}", "txt:-"],
                          capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
    return "#" + shot.splitlines()[1].split("#")[1][:6].lower()  # after ImageMagick's header line


@pytest.mark.skipif(shutil.which("import") is None, reason="needs ImageMagick's import for screenshots")
@pytest.mark.parametrize("mode", ["light", "dark"])
def test_the_theme_s_colors_are_on_the_screen_in_light_and_dark(root, server, mode):
    from chatroom.client.gui.theme import contrast, palette
    client = connected(root, server.port, "amy", "--theme", mode)
    chat = client.chat
    resize(root, 860, 450)
    window = root.winfo_id()
    frame = int(root.wm_frame(), 16) if root.wm_frame() else window
    colors = palette(mode)
    conversation = pixel(frame, chat.text.winfo_rootx() - root.winfo_rootx() + 4,
                         chat.text.winfo_rooty() - root.winfo_rooty() + chat.text.winfo_height() - 4)
    status = pixel(frame, chat.status.winfo_rootx() - root.winfo_rootx() + chat.status.winfo_width() - 3,
                   chat.status.winfo_rooty() - root.winfo_rooty() + 2)
    assert conversation == colors.background and status == colors.background  # one surface, the theme's
    assert contrast(colors.background, colors.foreground) > 12
    dark = mode == "dark"
    assert (sum(int(conversation[index:index + 2], 16) for index in (1, 3, 5)) < 200) == dark
    chat.close()
    until(root, lambda: gone(root))
