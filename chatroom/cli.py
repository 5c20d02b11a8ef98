"""What the server's and the client's command lines share: the default address, the password variable, ports."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 65432
PASSWORD_ENV = "CHATROOM_PASSWORD"  # the room password, for the server and the client alike


def program_name(script: str, installed: str) -> str:
    """The name the user called the program by: the installed command (chatroom-client) or the script."""
    called = os.path.splitext(os.path.basename(sys.argv[0]))[0]  # chatroom-client.exe on Windows
    return installed if called == installed else script


def port_type(lowest: int) -> Callable[[str], int]:
    """An argparse type for a TCP port from `lowest` (0 lets the server pick a free one) to 65535."""

    def port(text: str) -> int:
        if not text.isdigit() or not lowest <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port number ({lowest}-65535)")
        return int(text)

    return port


def merge_address(parser: argparse.ArgumentParser, port_parse: Callable[[str], int], host: str | None,
                  port: str | None, host_option: str | None, port_option: int | None) -> tuple[str, int]:
    """The host and port from the positional words and the --host/--port options, with the defaults;
    a value given twice differently is a usage error."""
    if port is not None:
        try:
            number = port_parse(port)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
        if port_option is not None and port_option != number:
            parser.error("the port is given twice")
        port_option = number
    if host is not None:
        if host_option is not None and host_option != host:
            parser.error("the host is given twice")
        host_option = host
    return host_option or DEFAULT_HOST, DEFAULT_PORT if port_option is None else port_option
