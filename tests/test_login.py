"""The login's decision (server/login.py), without sockets: the password first, then the limits, then the room."""

from chatroom.names import NameProblem
from chatroom.server import login
from chatroom.server.session import Ask, Login


def test_a_room_without_a_password_asks_the_room_unless_the_address_must_wait():
    assert login.decide(Login("alice", None), None, 0.0) == login.Join()
    limited = login.decide(Login("alice", None), None, 2.1)
    assert isinstance(limited, login.Refuse) and limited.ask is None and limited.code == "login_limited"
    assert "try again in 3 seconds" in limited.message


def test_the_password_comes_before_everything_else():
    asked = login.decide(Login("alice", None), "secret", 5.0)
    assert asked == login.Refuse("password_required", "this room needs a password", Ask.PASSWORD, counts=False)
    assert login.decide(Login("alice", "guess"), "secret", 5.0) == login.WrongPassword()
    assert isinstance(login.decide(Login("alice", "secret"), "secret", 5.0), login.Refuse)  # then the limit
    assert login.decide(Login("alice", "secret"), "secret", 0.0) == login.Join()


def test_a_wrong_password_says_how_long_it_was_held():
    assert login.wrong_password(0).message == "wrong password"
    held = login.wrong_password(4)
    assert held.ask is Ask.PASSWORD and held.counts and "answered after 4 s" in held.message


def test_the_rooms_no_asks_for_another_name_unless_none_would_do():
    assert login.name_refused(NameProblem("name_taken", "taken")).ask is Ask.NAME
    for final in ("room_full", "shutting_down", "too_much_history"):
        assert login.name_refused(NameProblem(final, "no")).ask is None


def test_passwords_compare_as_text_whatever_they_contain():
    assert login.password_matches("pässwörd", "pässwörd") and not login.password_matches("a", "b")
    assert not login.password_matches("\udcff", "x")  # a lone surrogate from a bad client cannot crash the check
