"""The client: core (connection, login, the session and its loop; no user interface), the console front end
(app: the command line and the console; keys, terminal, editor, screen) and the window front end (gui)."""

# First: on Cygwin and MSYS2, terminal must load readchar (its POSIX half) before any other module does.
from .console import terminal  # noqa: F401
