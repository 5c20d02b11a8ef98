"""The client's command line and its one-sentence connection errors."""

import socket

import pytest

from chatroom.client import app


@pytest.mark.parametrize("argv, host, port, name", [
    ([], "127.0.0.1", 65432, None), (["127.0.0.1", "80"], "127.0.0.1", 80, None),
    (["10.0.0.2", "8080", "alice"], "10.0.0.2", 8080, "alice"),
    (["--port", "9", "--name", "zoë"], "127.0.0.1", 9, "zoë"),
    (["::1", "--port", "9"], "::1", 9, None),
])
def test_command_line_forms(argv, host, port, name):
    args = app.parse_args(argv)
    assert (args.host, args.port, args.name) == (host, port, name)


@pytest.mark.parametrize("argv", [["h", "99999"], ["h", "80", "n", "extra"], ["h", "80", "--port", "81"]])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        app.parse_args(argv)
    assert info.value.code == 2 and "error:" in capsys.readouterr().err


def test_help_mentions_every_option(capsys):
    with pytest.raises(SystemExit):
        app.parse_args(["--help"])
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
    assert app.main(["nowhere", "1", "x"]) == 1
    assert capsys.readouterr().err == f"client.py: error: {sentence}\n"


def test_one_number_is_the_port_with_a_hint(capsys):
    args = app.parse_args(["9100"])
    assert (args.host, args.port, args.name) == ("127.0.0.1", 9100, None)
    assert capsys.readouterr().err == ("client.py: taking 9100 as the port (the host comes first: "
                                       "python client.py 127.0.0.1 9100)\n")
    assert app.parse_args(["9100", "9101"]).host == "9100"  # a host may be a number when a port follows


def test_the_installed_command_calls_itself_by_its_name(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["/home/amy/.local/bin/chatroom-client"])
    with pytest.raises(SystemExit):
        app.parse_args(["h", "80", "n", "extra"])
    err = capsys.readouterr().err
    assert err.startswith("usage: chatroom-client ") and "chatroom-client: error: expected at most" in err
    with pytest.raises(SystemExit):
        app.parse_args(["--help"])
    assert "examples: chatroom-client 127.0.0.1 8080 |" in " ".join(capsys.readouterr().out.split())
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: (_ for _ in ()).throw(TimeoutError()))
    assert app.main(["nowhere", "1", "x"]) == 1
    assert capsys.readouterr().err.startswith("chatroom-client: error: cannot connect to nowhere port 1")
