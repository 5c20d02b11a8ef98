"""The client: `session` (pure: events and typed lines into actions), `connection` (socket, connect, login),
`loop` (one select loop that drives the session and calls one front end), `main` (the command line); the
front ends `console` (keys, editor, screen) and `gui` (the Tk window)."""

# First: on Cygwin and MSYS2, terminal must load readchar (its POSIX half) before any other module does.
from .console import terminal  # noqa: F401
