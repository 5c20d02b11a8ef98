"""The client's command line and its one-sentence connection errors."""

import logging
import socket

import pytest

from chatroom.client.main import _log_after_the_chat, main, parse_args


@pytest.mark.parametrize("argv, host, port, name", [
    ([], "127.0.0.1", 65432, None), (["127.0.0.1", "80"], "127.0.0.1", 80, None),
    (["10.0.0.2", "8080", "alice"], "10.0.0.2", 8080, "alice"),
    (["--port", "9", "--name", "zoë"], "127.0.0.1", 9, "zoë"),
    (["::1", "--port", "9"], "::1", 9, None),
])
def test_command_line_forms(argv, host, port, name):
    args = parse_args(argv)
    assert (args.host, args.port, args.name) == (host, port, name)


@pytest.mark.parametrize("argv", [["h", "99999"], ["h", "80", "n", "extra"], ["h", "80", "--port", "81"]])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and "error:" in capsys.readouterr().err


def test_help_mentions_every_option(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    for option in ["--host", "--port", "--name", "--no-color", "NO_COLOR"]:
        assert option in out


@pytest.mark.parametrize("error, sentence", [
    (socket.gaierror(-2, "Name or service not known"), "cannot find the host 'nowhere': check the name or address"),
    (TimeoutError(), "cannot connect to nowhere port 1: no answer within 10 seconds"),
    (OSError(101, "Network is unreachable"), "cannot connect to nowhere port 1: Network is unreachable"),
])
def test_connection_errors_are_one_sentence(monkeypatch, capsys, error, sentence):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(socket, "create_connection", fail)
    assert main(["nowhere", "1", "x"]) == 1
    assert capsys.readouterr().err == f"client.py: error: {sentence}\n"


def test_one_number_is_the_port_with_a_hint(capsys):
    args = parse_args(["9100"])
    assert (args.host, args.port, args.name) == ("127.0.0.1", 9100, None)
    assert capsys.readouterr().err == ("client.py: taking 9100 as the port (the host comes first: "
                                       "python client.py 127.0.0.1 9100)\n")
    assert parse_args(["9100", "9101"]).host == "9100"  # a host may be a number when a port follows


def test_a_port_then_a_name_are_taken_as_such_with_a_hint(capsys):
    args = parse_args(["9700", "dee"])
    assert (args.host, args.port, args.name) == ("127.0.0.1", 9700, "dee")
    assert capsys.readouterr().err == ("client.py: taking 9700 as the port and dee as the username (the host "
                                       "comes first: python client.py 127.0.0.1 9700 dee)\n")
    assert parse_args(["--host", "h", "9700", "dee"]).host == "h"


@pytest.mark.parametrize("argv, where, hint", [
    (["--name", "x"], "127.0.0.1 port 65432",
     "; that is only the default address: give the server's as python client.py HOST PORT"),
    (["h", "--name", "x"], "h port 65432",
     "; 65432 is only the default port: give the server's as python client.py h PORT"),
    (["h", "1", "x"], "h port 1", ""),
])
def test_nothing_listening_at_a_default_says_it_is_only_the_default(monkeypatch, capsys, argv, where, hint):
    def refused(address, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    assert main(argv) == 1
    assert capsys.readouterr().err == (f"client.py: error: cannot connect to {where}: nothing is listening there "
                                       f"(is the server running?){hint}\n")


def test_the_installed_command_calls_itself_by_its_name(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["/home/amy/.local/bin/chatroom-client"])
    with pytest.raises(SystemExit):
        parse_args(["h", "80", "n", "extra"])
    err = capsys.readouterr().err
    assert err.startswith("usage: chatroom-client ") and "chatroom-client: error: expected at most" in err
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "examples: chatroom-client 127.0.0.1 8080 chatroom-client 192" in " ".join(capsys.readouterr().out.split())
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: (_ for _ in ()).throw(TimeoutError()))
    assert main(["nowhere", "1", "x"]) == 1
    assert capsys.readouterr().err.startswith("chatroom-client: error: cannot connect to nowhere port 1")


def test_what_the_console_client_logs_is_written_after_the_chat_not_over_it(capsys):
    with _log_after_the_chat():
        try:
            raise RuntimeError("a bug")
        except RuntimeError:
            logging.getLogger("chatroom.client.loop").exception("a reconnect attempt failed unexpectedly")
        assert capsys.readouterr().err == ""  # the chat has the terminal
    err = capsys.readouterr().err
    assert "a reconnect attempt failed unexpectedly\nTraceback" in err and "RuntimeError: a bug" in err
