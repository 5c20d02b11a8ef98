"""Every dialect parses to the same Command; help is generated from the table."""

import pytest

from chatroom.commands import TABLE, Command, CommandError, Kind, help_lines, parse


@pytest.mark.parametrize("line", ["?", "*users", "/users", "/list", "/names", "/USERS", "  ?  "])
def test_list_users(line):
    assert parse(line) == Command("users")


@pytest.mark.parametrize("line", ["hi there > bob", "@bob hi there", "/msg bob hi there", '/dm bob "hi there"',
                                  "/dm bob hi there", "/MSG bob   hi there"])
def test_private_message(line):
    assert parse(line) == Command("msg", "bob", "hi there")


@pytest.mark.parametrize("line, text", [
    ("hello", "hello"), ('/bc "hello you"', "hello you"), ("/bc 5 > 3", "5 > 3"),
    ("5 > 3 is true", "5 > 3 is true"), ('"quoted"', '"quoted"'), ("*sigh*", "*sigh*"),
    ("a>b", "a>b"), ("> bob", "> bob"), ("@", "@"),
])
def test_broadcast(line, text):
    assert parse(line) == Command("say", text=text)


def test_last_arrow_decides():
    assert parse("a > b > carol") == Command("msg", "carol", "a > b")


@pytest.mark.parametrize("line, kind", [("*help", "help"), ("/help", "help"), ("/?", "help"),
                                        ("/quit", "quit"), ("/exit", "quit")])
def test_no_argument_commands(line, kind):
    assert parse(line) == Command(kind)


def test_action_and_nick():
    assert parse("/me waves") == Command("me", text="waves")
    assert parse("/nick al") == Command("nick", "al")


@pytest.mark.parametrize("line, code, names", [
    ("/msg", "missing_argument", "NAME"), ("/msg bob", "missing_argument", "TEXT"),
    ("/dm bob", "missing_argument", "TEXT"), ("@bob", "missing_argument", "@NAME TEXT"),
    ("/me", "missing_argument", "/me TEXT"), ("/nick", "missing_argument", "/nick NAME"),
    ("/bc", "missing_argument", "/bc"), ("/frobnicate now", "unknown_command", "/frobnicate"),
    ("/users all", "bad_arguments", "/users"),
])
def test_errors_name_the_problem(line, code, names):
    result = parse(line)
    assert isinstance(result, CommandError) and result.code == code
    assert names in result.message


def test_blank_line_is_nothing():
    assert parse("   ") is None


def test_help_lists_every_form_of_every_entry_but_the_clients_own_pong():
    text = "\n".join(help_lines())
    for spec in TABLE:
        assert (spec.summary in text) == (spec.kind != "pong")
        for form in spec.forms:
            assert (form in text) == (spec.kind != "pong")


@pytest.mark.parametrize("line", ['/bc ""', '/bc " "', '/bc "   "', '/dm bob ""', '/dm bob " "', '/DM bob ""'])
def test_an_empty_quoted_message_is_missing_not_sent(line):
    result = parse(line)
    assert isinstance(result, CommandError) and result.code == "missing_argument"
    assert "TEXT is missing" in result.message


def test_quotes_keep_the_spaces_inside_a_message():
    assert parse('/bc " hi "') == Command("say", text=" hi ")


def test_every_kind_has_one_entry():
    assert sorted(spec.kind for spec in TABLE) == sorted(Kind)
