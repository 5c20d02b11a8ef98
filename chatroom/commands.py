"""One table of commands; every dialect is one more form of an entry, and help comes from the table.

Pure: `parse` turns a typed line into a Command or a CommandError.
A form is written the way help shows it. Its first word is the command word;
NAME, TEXT, COUNT, ID (a file's number) and PATH are arguments, "TEXT" (quoted) means quotes around the text
are removed, and [COUNT] (in brackets) may be left out. Two forms are positional instead:
`@NAME TEXT` and `TEXT > NAME`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(str, enum.Enum):
    """What a command does; each kind has one entry in TABLE and one handler in the room, whose dispatch is a
    `match` that mypy checks for every kind. A str, so the client can compare it with plain strings."""
    SAY = "say"
    MSG = "msg"
    ME = "me"
    USERS = "users"
    NICK = "nick"
    HISTORY = "history"
    SEARCH = "search"
    HELP = "help"
    QUIT = "quit"
    PONG = "pong"
    # Sending files: files.py on the server performs these, never the room (nothing of a transfer runs under
    # its lock); the client does /send and its part of /cancel itself.
    SEND = "send"
    GET = "get"
    FILES = "files"
    CANCEL = "cancel"
    DECLINE = "decline"


FILE_KINDS = frozenset({Kind.SEND, Kind.GET, Kind.FILES, Kind.CANCEL, Kind.DECLINE})


@dataclass(frozen=True)
class Spec:
    kind: Kind
    forms: tuple[str, ...]
    summary: str
    rated: bool = True  # counts against the flood limit
    listed: bool = True  # in /help; the client's own answers (/pong) are not for people to type


TABLE: tuple[Spec, ...] = (
    Spec(Kind.SAY, ("TEXT", '/bc "TEXT"'), "send a message to everybody"),
    Spec(Kind.MSG, ("TEXT > NAME", "@NAME TEXT", "/msg NAME TEXT", '/dm NAME "TEXT"'),
         "send a private message to NAME"),
    Spec(Kind.ME, ("/me TEXT",), "describe an action: /me waves shows * you waves"),
    Spec(Kind.USERS, ("?", "*users", "/users", "/list", "/names"), "list who is here"),
    Spec(Kind.NICK, ("/nick NAME",), "change your username"),
    Spec(Kind.HISTORY, ("/history [COUNT]",), "show the last COUNT public messages (20 if left out, at most 500)"),
    Spec(Kind.SEARCH, ("/search TEXT",), "show the last 20 public messages that contain every word of TEXT (up "
         'to 8), as a part of the text and whatever its case: "lunch" finds "Lunchtime"'),
    Spec(Kind.SEND, ("/send PATH [NAME]",), "share a file with everybody, or offer it to NAME alone"),
    Spec(Kind.GET, ("/get ID",), "download shared file ID"),
    Spec(Kind.FILES, ("/files",), "list the files shared with you and still kept"),
    Spec(Kind.CANCEL, ("/cancel ID",), "stop sending or fetching file ID (or stop sharing it)"),
    Spec(Kind.DECLINE, ("/decline ID",), "refuse file ID offered to you (its sender is told)"),
    Spec(Kind.HELP, ("*help", "/help", "/?"), "show this help"),
    Spec(Kind.QUIT, ("/quit", "/exit"), "leave the chat"),
    Spec(Kind.PONG, ("/pong",), "answer the server's ping (the console client does it for you)", rated=False,
         listed=False),
)


@dataclass(frozen=True)
class Command:
    kind: Kind
    target: str = ""
    text: str = ""
    line: str = field(default="", compare=False)  # the typed line of `TEXT > NAME`: it may have meant text

    @property
    def spec(self) -> Spec:
        return SPECS[self.kind]


@dataclass(frozen=True)
class CommandError:
    code: str
    message: str


@dataclass(frozen=True)
class _WordForm:
    spec: Spec
    usage: str
    params: tuple[str, ...]


_WORD_STARTS = "/*?"  # how a command word begins


def _word_forms() -> dict[str, _WordForm]:
    words = {}
    for spec in TABLE:
        for form in spec.forms:
            word, *params = form.split()
            if word[0] in _WORD_STARTS:
                words[word.lower()] = _WordForm(spec, form, tuple(params))
    return words


SPECS = {spec.kind: spec for spec in TABLE}
_WORDS = _word_forms()
_AT_SPEC = next(spec for spec in TABLE if "@NAME TEXT" in spec.forms)
_SUFFIX_SPEC = next(spec for spec in TABLE if "TEXT > NAME" in spec.forms)
_DEFAULT_SPEC = next(spec for spec in TABLE if "TEXT" in spec.forms)
COMMAND_WORDS = tuple(word for word, form in _WORDS.items() if form.spec.listed)  # for completion
_FORM_STARTS = _WORD_STARTS + "@"  # a line that starts otherwise, without " > ", is plain text


def _unquote(text: str) -> str:
    """The text inside quotes, where \\" stands for a quote and \\\\ for a backslash."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace("\\\\", "\0").replace('\\"', '"').replace("\0", "\\")
    return text


def _parse_word_form(form: _WordForm, rest: str) -> Command | CommandError:
    values: dict[str, str] = {}
    for index, param in enumerate(form.params):
        name = param.strip('[]"')
        if index == len(form.params) - 1:
            value, rest = (_unquote(rest) if param.strip("[]") != name else rest), ""
        else:
            value, _, rest = rest.partition(" ")
            rest = rest.strip()
        if not value.strip():  # also a quoted argument with nothing inside: /bc "" sends nothing
            if param.startswith("["):
                continue
            return CommandError("missing_argument", f"{name} is missing: usage is {form.usage}")
        if name in ("COUNT", "ID"):
            # isdecimal, not isdigit: "²" is a digit that int() refuses
            if not value.isdecimal():
                return CommandError("bad_arguments", f"{value!r} is not a number: usage is {form.usage}")
            if name == "COUNT" and not int(value):
                return CommandError("bad_arguments", f"COUNT is a number from 1: usage is {form.usage}")
        values[name] = value
    if not form.params and rest:
        return CommandError("bad_arguments", f"{form.usage} takes no arguments")
    return Command(form.spec.kind, values.get("NAME", ""),
                   values.get("TEXT") or values.get("COUNT") or values.get("ID") or values.get("PATH", ""))


def parse(line: str) -> Command | CommandError | None:
    """What a typed line asks for; None for a blank line."""
    line = line.strip()
    if not line:
        return None
    if line[0] not in _FORM_STARTS and " > " not in line:
        return Command(_DEFAULT_SPEC.kind, text=line)  # what most lines are, without looking for a form
    word, _, rest = line.partition(" ")
    rest = rest.strip()
    form = _WORDS.get(word.lower())
    if form is not None:
        return _parse_word_form(form, rest)
    if word.startswith("/"):
        return CommandError("unknown_command", f"unknown command {word}: type /help for the list")
    if word.startswith("@") and len(word) > 1:
        if not rest:
            return CommandError("missing_argument", "the message is missing: usage is @NAME TEXT")
        return Command(_AT_SPEC.kind, word[1:], rest)
    head, arrow, tail = line.rpartition(" > ")
    if arrow and head.strip() and tail.strip() and len(tail.split()) == 1:
        return Command(_SUFFIX_SPEC.kind, tail.strip(), head.strip(), line=line)
    return Command(_DEFAULT_SPEC.kind, text=line)


def help_lines() -> list[str]:
    lines = ["Commands:"]
    for spec in (spec for spec in TABLE if spec.listed):
        lines += [f"  {'  |  '.join(spec.forms)}", f"      {spec.summary}"]
    return lines
