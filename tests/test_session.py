"""The per-connection state machine, driven with a fake clock and no sockets."""

from __future__ import annotations

from chatroom.commands import Command
from chatroom.protocol import BadEncoding, Error, Hello, Line, LineTooLong, Ping
from chatroom.server.config import Config
from chatroom.server.session import PASSWORD_PROMPT, Ask, Close, Login, Prompt, Reply, Run, Session, State

CONFIG = Config(login_timeout=15, answer_timeout=60, login_total=120, login_tries=5, rate=2, burst=3,
                ping_interval=30)


def line(text: str) -> Line:
    return Line(text)


def codes(actions: list) -> list[str]:
    return [action.event.code for action in actions if isinstance(action, Reply) and isinstance(action.event, Error)]


def test_a_plain_name_asks_to_log_in():
    session = Session(CONFIG, now=0)
    assert session.receive(line("alice"), 1) == [Login("alice", None)]
    assert session.json is False


def test_a_hello_chooses_json_mode():
    session = Session(CONFIG, now=0)
    assert session.receive(line(Hello("bob", password="pw").encode().decode().strip()), 1) == [Login("bob", "pw")]
    assert session.json is True


def test_the_first_answer_has_login_timeout_and_bytes_without_a_newline_do_not_count():
    session = Session(CONFIG, now=0)
    assert session.deadline() == 15
    session.data_arrived(10)  # part of a line: no new time
    assert session.expire(14.9) == []
    actions = session.expire(15)
    assert codes(actions) == ["login_timeout"] and actions[-1] == Close("timeout")
    assert session.state is State.CLOSED


def test_a_question_asked_again_gives_a_person_time():
    session = Session(CONFIG, now=0)
    session.receive(line("alice"), 1)
    actions = session.refused("name_taken", "taken", Ask.NAME, 1)
    assert actions == [Reply(Error(code="name_taken", message="taken")), Prompt("Choose another username:")]
    assert session.deadline() == 61
    assert codes(session.expire(61)) == ["login_timeout"]


def test_the_whole_login_is_capped():
    session = Session(CONFIG, now=0)
    for minute in range(1, 4):
        session.receive(line("x"), minute * 50)
        session.refused("name_taken", "taken", Ask.NAME, minute * 50, counts=False)
    assert session.deadline() == 120
    assert "within 120 seconds" in session.expire(120)[0].event.message


def test_refused_answers_end_the_login():
    session = Session(CONFIG, now=0)
    for attempt in range(4):
        session.receive(line(f"n{attempt}"), attempt)
        assert Close("refused") not in session.refused("name_taken", "taken", Ask.NAME, attempt)
    session.receive(line("n4"), 5)
    actions = session.refused("name_taken", "taken", Ask.NAME, 5)
    assert codes(actions) == ["name_taken", "too_many_tries"] and actions[-1] == Close("refused")


def test_plain_mode_asks_for_the_password_before_the_name_is_looked_up():
    session = Session(CONFIG, now=0, needs_password=True)
    assert session.receive(line("alice"), 1) == [Prompt(PASSWORD_PROMPT)]
    assert session.state is State.PASSWORD
    assert session.receive(line(""), 2) == [Prompt(PASSWORD_PROMPT)]  # Enter alone: asked again, not refused
    assert session.receive(line("secret"), 3) == [Login("alice", "secret")]
    # The password was right but the name is taken: only the name is asked again.
    assert session.refused("name_taken", "taken", Ask.NAME, 3)[-1] == Prompt("Choose another username:")
    assert session.receive(line("alicia"), 4) == [Login("alicia", "secret")]


def test_an_invalid_plain_name_is_refused_before_the_password():
    session = Session(CONFIG, now=0, needs_password=True)
    actions = session.receive(line("two words"), 1)
    assert codes(actions) == ["name_invalid"] and actions[-1] == Prompt("Choose another username:")


def test_a_wrong_password_asks_for_it_again():
    session = Session(CONFIG, now=0, needs_password=True)
    session.receive(line("alice"), 1)
    session.receive(line("guess"), 2)
    assert session.refused("wrong_password", "wrong password", Ask.PASSWORD, 2)[-1] == Prompt(PASSWORD_PROMPT)
    assert session.receive(line("secret"), 3) == [Login("alice", "secret")]


def test_bad_lines_during_login_are_refused_answers():
    session = Session(CONFIG, now=0)
    assert codes(session.receive(LineTooLong(4096), 1)) == ["line_too_long"]
    assert codes(session.receive(BadEncoding(), 2)) == ["bad_encoding"]
    assert codes(session.receive(line('{"type": "hello"}'), 3)) == ["bad_hello"]


def test_a_member_is_pinged_then_closed_and_any_bytes_count_as_alive():
    session = Session(CONFIG, now=0)
    session.receive(line(Hello("bob").encode().decode().strip()), 0)
    session.admitted(0)
    assert session.deadline() == 30
    session.data_arrived(20)
    assert session.expire(30) == []
    assert session.expire(50) == [Reply(Ping())]
    assert session.expire(80) == [Close("timeout")]


def test_plain_members_are_never_pinged():
    session = Session(CONFIG, now=0)
    session.receive(line("bob"), 0)
    session.admitted(0)
    assert session.deadline() is None


def test_the_flood_limit_spares_pong():
    session = Session(CONFIG, now=0)
    session.receive(line("bob"), 0)
    session.admitted(0)
    assert [session.receive(line(f"m{n}"), 1) for n in range(3)] == [[Run(Command("say", text=f"m{n}"))]
                                                                     for n in range(3)]
    limited = session.receive(line("m3"), 1)
    assert codes(limited) == ["rate_limited"] and '"m3"' in limited[0].event.message
    assert session.receive(line("/pong"), 1) == [Run(Command("pong"))]
    assert session.receive(line("later"), 2) == [Run(Command("say", text="later"))]


def test_lines_that_keep_coming_cannot_outrun_the_deadline():
    session = Session(CONFIG, now=0, needs_password=True)
    session.receive(line("alice"), 1)
    for second in range(2, 61):
        assert session.receive(line(""), second) == [Prompt(PASSWORD_PROMPT)]  # Enter alone: no new time
    actions = session.receive(line(""), 61)
    assert codes(actions) == ["login_timeout"] and "within 60 seconds" in actions[0].event.message


def test_only_the_first_password_required_is_free():
    session = Session(CONFIG, now=0)
    session.receive(line(Hello("bob").encode().decode().strip()), 0)
    for attempt in range(6):  # one free, five counted
        actions = session.refused("password_required", "needs a password", Ask.PASSWORD, attempt, counts=False)
    assert actions[-1] == Close("refused")
