"""The programs' entry points (server.py, client.py and the installed chatroom-server / chatroom-client):
check the dependencies first, then import the program, whose modules need them."""

from __future__ import annotations

from . import deps
from .cli import program_name


def server() -> int:
    deps.require(program_name("server.py", "chatroom-server"), *deps.SERVER)
    from .server.main import main

    return main()


def client() -> int:
    deps.require(program_name("client.py", "chatroom-client"), *deps.CLIENT)
    from .client.main import main

    return main()
