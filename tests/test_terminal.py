"""The platform layer's parts that can be checked on any OS: the Win32 record layout and its conversion,
Cygwin's import of readchar, a key thread that fails, and the client's Windows path against a scripted console."""

import contextlib
import ctypes
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT
from winrecords import CTRL_C, ENTER, LEFT, alt_numpad, as_json, pasted, shifted, typed

from chatroom.client import main as app
from chatroom.client.console import terminal
from chatroom.client.console.winconsole import (
    FOCUS_EVENT, INPUT_RECORD, KEY_EVENT_RECORD, LEFT_ALT_PRESSED, NUMLOCK_ON, WINDOW_BUFFER_SIZE_EVENT, KeyRecord,
    OtherRecord, plain_record,
)

VK_OEM_MINUS = 0xBD

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal (POSIX); on Windows test_wine_client.py "
                                                   "draws through colorama in a console")
def test_a_terminal_behind_coloramas_converter_is_still_a_terminal():
    # A console without VT processing gets colorama's AnsiToWin32 in sys.stdout, which has no isatty.
    import os

    import colorama
    controller, tty = os.openpty()
    reading, writing = os.pipe()
    os.close(reading)
    try:
        with open(tty, "w") as stream, open(writing, "w") as pipe:
            assert terminal.is_terminal(colorama.AnsiToWin32(stream, convert=True))
            assert not terminal.is_terminal(colorama.AnsiToWin32(pipe, convert=True))
    finally:
        os.close(controller)


def test_input_record_has_the_win32_layout():
    # wincontypes.h: sizeof(INPUT_RECORD) == 20, the union at offset 4 (DWORD-aligned), KEY_EVENT_RECORD 16 bytes.
    assert ctypes.sizeof(INPUT_RECORD) == 20 and INPUT_RECORD.Event.offset == 4
    assert ctypes.sizeof(KEY_EVENT_RECORD) == 16
    assert [getattr(KEY_EVENT_RECORD, name).offset for name, _ in KEY_EVENT_RECORD._fields_] == [0, 4, 6, 8, 10, 12]


def record_from_bytes(data: bytes) -> INPUT_RECORD:
    record = INPUT_RECORD()
    ctypes.memmove(ctypes.addressof(record), data, len(data))
    return record


def test_a_key_record_as_windows_writes_it_becomes_plain_values():
    # The Alt key-up of a synthesized paste, carrying the first half of an emoji.
    raw = struct.pack("<HxxiHHHHI", 0x1, 0, 1, 0x12, 0x38, 0xD83D, NUMLOCK_ON)
    assert plain_record(record_from_bytes(raw)) == KeyRecord(False, 0x12, 0xD83D, NUMLOCK_ON, 1)
    down = struct.pack("<HxxiHHHHI", 0x1, 1, 2, 0x30, 0x0B, 0xE0, LEFT_ALT_PRESSED)
    assert plain_record(record_from_bytes(down)) == KeyRecord(True, 0x30, 0xE0, LEFT_ALT_PRESSED, 2)


def test_other_records_keep_only_their_kind():
    resize = struct.pack("<Hxxhh", 0x4, 120, 30)
    assert plain_record(record_from_bytes(resize)) == OtherRecord(0x4)


@pytest.mark.skipif(sys.platform == "win32", reason="readchar's POSIX half needs termios, which Windows' Python lacks")
def test_cygwin_and_msys_load_readchars_posix_half():
    # readchar picks its msvcrt reader for sys.platform "cygwin" (MSYS2's Python says "cygwin" too).
    # (ctypes is imported first: on this OS it would look for Cygwin's libpython DLL.)
    code = ("import ctypes, sys; sys.platform = 'cygwin'\n"
            "import chatroom.client.main\n"
            "from readchar import key\n"
            "assert sys.platform == 'cygwin' and key.UP == '\\x1b[A', (sys.platform, key.UP)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 0, result.stderr


def test_a_key_thread_failure_ends_the_client_with_one_line_and_status_1(server, monkeypatch, capsys):
    def broken(stopped):
        yield "a"
        raise RuntimeError("the console went away")

    restored = []

    @contextlib.contextmanager
    def session():
        try:
            yield broken
        finally:
            restored.append(True)

    monkeypatch.setattr(terminal, "session", session)
    assert app.main(["127.0.0.1", str(server.port), "alice"]) == 1
    err = capsys.readouterr().err
    assert err == "client.py: error: reading the keyboard failed: RuntimeError: the console went away\n"
    assert restored == [True]


# --- the Windows path of the real client, against a scripted console (tests/winconsole_sim.py) -------------

SIMULATOR = ROOT / "tests" / "winconsole_sim.py"
COOKED_MODES = {"100": 0x1F7, "101": 0x7}  # what winconsole_sim's console starts with


def run_windows_client(port: int, records, tmp_path: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SIMULATOR), as_json(records), str(tmp_path / "modes.json"),
                             "127.0.0.1", str(port), "alice", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def finish(client: subprocess.Popen, tmp_path: Path) -> tuple[int, str, dict | None]:
    """The client's exit status, its stderr, and the console modes it left (None if it wrote none)."""
    try:
        _, err = client.communicate(timeout=TIMEOUT * 2)
    finally:
        client.kill()
    modes = tmp_path / "modes.json"
    return client.returncode, err, json.loads(modes.read_text()) if modes.exists() else None


def test_windows_path_types_accents_arrows_alt_codes_and_a_paste_and_restores_the_console(server, clients,
                                                                                          tmp_path):
    bob = clients()
    bob.login("bob")
    script = (typed("voilà tout") + LEFT + shifted(VK_OEM_MINUS, "_") + ENTER
              + [OtherRecord(FOCUS_EVENT)] + typed("à") + LEFT + typed("b") + ENTER
              + alt_numpad(0xE9, "0233") + pasted("’😀") + [OtherRecord(WINDOW_BUFFER_SIZE_EVENT)] + ENTER
              + CTRL_C)
    client = run_windows_client(server.port, script, tmp_path)
    try:
        assert bob.expect_event("message", sender="alice", timeout=TIMEOUT * 2)["text"] == "voilà tou_t"
        assert bob.expect_event("message", sender="alice")["text"] == "bà"
        assert bob.expect_event("message", sender="alice")["text"] == "é’😀"
        assert bob.expect_event("leave", name="alice")
    finally:
        status, err, modes = finish(client, tmp_path)
    assert (status, err) == (0, "")
    assert modes == COOKED_MODES


def test_windows_path_restores_the_console_when_the_server_goes(server, clients, tmp_path):
    bob = clients()
    bob.login("bob")
    client = run_windows_client(server.port, typed("hi") + ENTER, tmp_path, "--no-reconnect")
    try:
        assert bob.expect_event("message", sender="alice", timeout=TIMEOUT * 2)["text"] == "hi"
        server.shutdown()
        server.stop(grace=1.0)
    finally:
        status, err, modes = finish(client, tmp_path)
    assert status == app.DISCONNECTED and err == ""
    assert modes == COOKED_MODES
