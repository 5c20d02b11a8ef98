"""What the server's and the client's command lines share: the default address, the password variable, ports."""

from __future__ import annotations

import argparse
from collections.abc import Callable

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 65432
PASSWORD_ENV = "CHATROOM_PASSWORD"  # the room password, for the server and the client alike


def port_type(lowest: int) -> Callable[[str], int]:
    """An argparse type for a TCP port from `lowest` (0 lets the server pick a free one) to 65535."""

    def port(text: str) -> int:
        if not text.isdigit() or not lowest <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port number ({lowest}-65535)")
        return int(text)

    return port
