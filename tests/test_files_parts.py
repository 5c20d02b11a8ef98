"""The pure parts of sending files: the limits of an offer, the control lines and data lines, the progress
words, what /send means, and the sessions' hand-over of file commands and events."""

from __future__ import annotations

import pytest

from chatroom.client.progress import Row, describe, summary
from chatroom.client.session import ClientSession, Files, Show, Transmit
from chatroom.client.transfers import split_send
from chatroom.commands import Command, Kind
from chatroom.protocol import (
    DataRequest, Done, FileNote, FileSlot, Line, Offer, ProtocolError, Welcome, parse_control, parse_data_request,
)
from chatroom.server.config import Config
from chatroom.server.files import FileLimits, Usage, check_offer
from chatroom.server.session import Run, Session, Transfer

LIMITS = FileLimits(max_file=1000, user_quota=2000, total=5000, uploads=2)


def test_an_offer_within_every_limit_fits():
    assert check_offer(Offer("r", "a.txt", 1000), LIMITS, Usage(user_bytes=1000, total_bytes=4000), 0) is None


@pytest.mark.parametrize("usage, size, code", [
    (Usage(), 1001, "file_too_large"),
    (Usage(user_uploads=2), 1, "too_many_transfers"),
    (Usage(user_bytes=1500, user_expiring=((60.0, 1000),)), 600, "quota_exceeded"),
    (Usage(total_bytes=4500, total_expiring=((7200.0, 400), (3600.0, 300))), 600, "quota_exceeded"),
    (Usage(disk_free=1000, disk_total=5000), 600, "disk_full"),
])
def test_each_limit_refuses_with_its_code(usage, size, code):
    note = check_offer(Offer("r", "a.txt", size), LIMITS, usage, 0)
    assert note is not None and (note.code, note.ref) == (code, "r")


def test_a_quota_says_when_it_frees_up():
    note = check_offer(Offer("r", "a.txt", 600), LIMITS, Usage(total_bytes=4500, total_expiring=(
        (7200.0, 400), (3600.0, 50))), 0)
    assert note.until == 7200.0 and "space frees up in 2 h" in note.message  # 50 freed in 1 h is not enough
    held = check_offer(Offer("r", "a.txt", 600), LIMITS, Usage(user_bytes=1500), 0)
    assert held.until == 0 and "as transfers under way end" in held.message
    assert check_offer(Offer("r", "x", 1001), LIMITS, Usage(), 0).limit == 1000


def test_sharing_off_refuses_everything():
    assert check_offer(Offer("r", "a", 1), FileLimits(enabled=False), Usage(), 0).code == "files_off"


def test_control_lines():
    assert parse_control('{"type": "offer", "ref": "u1", "name": "a b.pdf", "size": 5, "to": "bob"}') == \
        Offer("u1", "a b.pdf", 5, "bob")
    assert parse_control(Offer("u2", "é.txt", 0).encode()) == Offer("u2", "é.txt", 0)
    assert parse_control(Done(3, "a" * 64).encode()) == Done(3, "a" * 64)
    assert parse_control('{"type": "say", "text": "x"}') is None and parse_control("hello {") is None
    for bad in ['{"type": "offer", "name": "", "size": 1}', '{"type": "offer", "name": "a", "size": -1}',
                '{"type": "offer", "name": "a", "size": true}', '{"type": "done", "id": 1, "sha256": "xyz"}',
                '{"type": "offer", "name": "a", "size": 1, "ref": "' + "r" * 41 + '"}']:
        with pytest.raises(ProtocolError):
            parse_control(bad)


def test_data_lines():
    assert parse_data_request(DataRequest("download", "tok", 5).encode().decode()) == DataRequest("download", "tok", 5)
    assert parse_data_request('{"type": "upload", "token": 7}') == DataRequest("upload", "", 0)  # refused later
    assert parse_data_request('{"type": "download", "token": "t", "offset": -3}').offset == -1
    assert parse_data_request('{"type": "hello", "name": "bob"}') is None and parse_data_request("bob") is None


def test_progress_in_words():
    row = Row("u1", 7, True, "slides.pdf", 10_000_000, 4_500_000, 3_100_000, "sending")
    assert describe(row) == "↑ slides.pdf 45 % 3.1 MB/s 0:02 left"
    waiting = Row("d7", 7, False, "x" * 60, 0, 0, 0, "waiting")
    assert describe(waiting) == "↓ " + "x" * 39 + "… 100 % waiting"
    assert summary((row, waiting)) == describe(row) + " (+1 more)" and summary(()) == ""


def test_what_send_means():
    exists = {"/tmp/my file.pdf", "/tmp/a.txt"}.__contains__
    assert split_send("/tmp/my file.pdf", exists) == ("/tmp/my file.pdf", None)
    assert split_send("/tmp/my file.pdf bob", exists) == ("/tmp/my file.pdf", "bob")
    assert split_send('"/tmp/x y" bob', exists) == ("/tmp/x y", "bob")
    assert split_send("/tmp/missing bob", exists) == ("/tmp/missing bob", None)  # said missing as typed


def test_the_server_session_hands_file_commands_and_control_lines_to_the_store():
    session = Session(Config(), 0.0)
    session.receive(Line('{"type": "hello", "name": "amy"}'), 0.0)
    session.admitted(0.0)
    assert session.receive(Line("/get 3"), 0.0) == [Transfer(Command(Kind.GET, text="3"))]
    assert session.receive(Line(Offer("r", "a", 1).encode()), 0.0) == [Transfer(Offer("r", "a", 1))]
    assert session.receive(Line("/help"), 0.0) == [Run(Command(Kind.HELP))]
    plain = Session(Config(), 0.0)
    plain.receive(Line("amy"), 0.0)
    plain.admitted(0.0)
    assert plain.receive(Line(Offer("r", "a", 1).encode()), 0.0)[0].command.kind is Kind.SAY  # just text there


def test_the_client_session_keeps_send_for_the_client_and_hands_over_slots_and_notes():
    session = ClientSession(Welcome("amy", ["amy"], rate=0), 0.0, jitter=lambda: 0.5)
    session.tick(0.0)  # the welcome is shown
    assert session.send("/send notes.txt bob", 0.0) == [Files("/send notes.txt bob")]
    assert session.send("/cancel 4", 0.0) == [Files("/cancel 4")]
    session.control('{"type": "done"}')
    assert [a for a in session.tick(0.0) if isinstance(a, Transmit)] == [Transmit("/cancel 4"),
                                                                         Transmit('{"type": "done"}')]
    assert session.view.pending == 0
    slot = FileSlot(id=4, token="t", direction="download")
    assert session.receive(slot, 0.0) == [Files(slot)]
    note = FileNote("cancelled", "gone", id=4)
    assert session.receive(note, 0.0) == [Show(note), Files(note)]
