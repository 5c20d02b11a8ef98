"""The console client: app (select loop, login, CLI), keys, terminal, editor, screen."""

# First: on Cygwin and MSYS2, terminal must load readchar (its POSIX half) before any other module does.
from . import terminal  # noqa: F401
