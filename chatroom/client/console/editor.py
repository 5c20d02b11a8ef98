"""The input line: buffer, cursor, history, completion, horizontal scrolling and a pasted block held until Enter
sends it; the list of its keys for the help. Pure.

Keys are the names keys.py gives them, the same on every platform, or a `Paste`.
The line is a list of grapheme clusters (user-perceived characters, Unicode UAX #29, as wcwidth segments
them), so the cursor never lands inside 👨‍👩‍👧, é written as e + U+0301, 👍🏽, 🇩🇪 or the conjunct क्षि; the
columns are wcwidth's too: an emoji takes two, a combining mark or a zero-width space none.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from readchar import key
from wcwidth import iter_graphemes, width

from ...commands import COMMAND_WORDS
from ...protocol import sanitize
from ..session import RECONNECT, too_long
from .keys import ALT_B, ALT_BACKSPACE, ALT_F, CTRL_LEFT, CTRL_RIGHT, Paste


@dataclass(frozen=True)
class Submit:
    """A line to send. `verbatim`: a pasted block, maybe of several lines, to send as one message as it is,
    never read as a command (the console sends it as a structured `say` line)."""
    line: str
    verbatim: bool = False


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Bell:
    pass


@dataclass(frozen=True)
class Candidates:
    """Tab found several completions and could not extend the word: show them."""
    options: tuple[str, ...]


Outcome = Submit | Quit | Bell | Candidates | None

ENTER_KEYS = {key.CR, key.LF}
BACKSPACE_KEYS = {key.BACKSPACE, key.CTRL_H, "\x7f"}
NAME_COMMANDS = {"/msg", "/dm"}
PATH_COMMANDS = {"/send"}  # Tab completes the local path after these
DISCARD_KEYS = {key.ESC, key.CTRL_U, key.CTRL_C}  # what lets a held paste go
COMPLETED_WORDS = (*COMMAND_WORDS, RECONNECT)


@dataclass(frozen=True)
class KeyHelp:
    """One line of the keys' help. `window`: the window has it too (its Ctrl+C copies, as everywhere)."""
    keys: str
    does: str
    window: bool = True


# The one list of the editing keys (and the client's own command): /help shows it after the server's commands,
# --help in its epilog.
KEYS = (
    KeyHelp("Enter", "send the line; on an empty line while reconnecting, try again now (so does /reconnect)"),
    KeyHelp("Esc", "let go of a pasted block of several lines (Enter sends it as one message)"),
    KeyHelp("Up, Down", "recall the lines sent before"),
    KeyHelp("Tab", "complete a name (at any word) or a command; after /send, a file's path"),
    KeyHelp("Ctrl+U", "clear the line"),
    KeyHelp("Ctrl+W", "delete the word before the cursor"),
    KeyHelp("Ctrl+Left, Ctrl+Right", "move by word"),
    KeyHelp("Home, End", "go to the start or the end of the line"),
    KeyHelp("Alt+Backspace, Alt+B, Alt+F, Ctrl+A, Ctrl+E", "as Ctrl+W, Ctrl+Left, Ctrl+Right, Home, End",
            window=False),
    KeyHelp("Ctrl+C", "clear the line; on an empty line, quit (as Ctrl+D and /quit do)", window=False),
)


def key_help(window: bool = False) -> list[str]:
    """The keys as /help lines, in the server's layout (the keys, then what they do)."""
    lines = ["Keys:"]
    for entry in KEYS:
        if entry.window or not window:
            lines += [f"  {entry.keys}", f"      {entry.does}"]
    return lines


def graphemes(text: str) -> list[str]:
    return list(iter_graphemes(text))


def text_width(text: str) -> int:
    """Columns in a terminal. Control characters take none: what is drawn has been sanitized, and the
    screen measures its own style codes apart."""
    return width(text, control_codes="ignore")


class LineEditor:
    def __init__(self, names: Callable[[], Sequence[str]] = list,
                 paths: Callable[[str], Sequence[str]] = lambda word: ()) -> None:
        self._names = names
        self._paths = paths  # what a partly typed path may become (folders end with a separator)
        self.chars: list[str] = []
        self.cursor = 0
        self.history: list[str] = []
        self._recall = 0  # index into history while browsing it; len(history) is the line being typed
        self._draft = ""
        self._scroll = 0
        self.block: str | None = None  # a pasted block of several lines, held until Enter sends it or Esc
        # Each editing action once, with the keys that do it (keys.py gives each key one name on every platform).
        bindings: dict[tuple[str, ...], Callable[[], Outcome]] = {
            (key.LEFT, key.CTRL_B): lambda: self._move(self.cursor - 1),
            (key.RIGHT, key.CTRL_F): lambda: self._move(self.cursor + 1),
            (key.HOME, key.CTRL_A): lambda: self._move(0),
            (key.END, key.CTRL_E): lambda: self._move(len(self.chars)),
            (CTRL_LEFT, ALT_B): lambda: self._move(self._word_start()),
            (CTRL_RIGHT, ALT_F): lambda: self._move(self._word_end()),
            (key.DELETE, key.CTRL_D): self._delete,
            (key.CTRL_W, ALT_BACKSPACE): self._delete_word,
            (key.CTRL_U,): self._clear,
            (key.UP,): lambda: self._browse(-1),
            (key.DOWN,): lambda: self._browse(1),
            (key.TAB,): self._complete,
        }
        self._actions = {pressed: action for keys, action in bindings.items() for pressed in keys}

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def _set(self, text: str) -> None:
        self.chars = graphemes(text)
        self.cursor = len(self.chars)

    def _replace(self, start: int, end: int, text: str) -> None:
        """Put text in place of clusters start..end and the cursor after it. What follows is split anew from
        the cluster before `start` on (a typed accent or joiner may join it); typing at the end stays cheap."""
        first = max(start - 1, 0)
        head = "".join(self.chars[first:start]) + text
        self.chars[first:] = graphemes(head + "".join(self.chars[end:]))
        self.cursor, length = first, 0
        while length < len(head):
            length += len(self.chars[self.cursor])
            self.cursor += 1

    @property
    def placeholder(self) -> str:
        """What the input shows while it holds a pasted block."""
        if self.block is None:
            return ""
        count = self.block.count("\n") + 1
        if (problem := too_long(self.block)) is not None:
            return f"[{count} lines pasted, too long to send ({problem}): Esc discards]"
        return f"[{count} lines pasted: Enter sends, Esc discards]"

    def feed(self, pressed: str) -> Outcome:
        if isinstance(pressed, Paste):
            return self._paste(pressed)
        if self.block is not None:
            return self._feed_block(pressed)
        if pressed in ENTER_KEYS:
            return self._enter()
        if pressed == key.CTRL_C and self.chars:
            return self._clear()
        if pressed == key.CTRL_C or (pressed == key.CTRL_D and not self.chars):
            return Quit()
        if pressed in BACKSPACE_KEYS:
            return self._backspace()
        if pressed in self._actions:
            return self._actions[pressed]()
        if len(pressed) == 1 and sanitize(pressed) == pressed:
            self._replace(self.cursor, self.cursor, pressed)
        return None  # other keys (F1, Esc, Alt+x...) do nothing

    def _paste(self, pasted: str) -> Outcome:
        """One line goes into the line being typed; a block, with what was typed around it, is held as it is
        until Enter sends it (or Esc lets it go): a look before it goes, and an oversized one says why."""
        text = pasted.rstrip("\n")  # a copied line often ends with its line break
        if "\n" not in text and self.block is None:
            self._replace(self.cursor, self.cursor, sanitize(text))
            return None
        if self.block is not None:  # a second paste follows the first
            self.block += "\n" + "\n".join(sanitize(line) for line in text.split("\n"))
            return None
        block = "".join(self.chars[:self.cursor]) + text + "".join(self.chars[self.cursor:])
        self._set("")
        self.block = "\n".join(sanitize(line) for line in block.split("\n"))
        return None

    def _feed_block(self, pressed: str) -> Outcome:
        """A key while a pasted block is held: Enter sends it, Esc (Ctrl+U, Ctrl+C) lets it go; typing rings."""
        if pressed in ENTER_KEYS:
            if self.block is None or too_long(self.block):
                return Bell()
            block, self.block = self.block, None
            return Submit(block, verbatim=True)
        if pressed in DISCARD_KEYS:
            self.block = None
            return None
        if pressed in BACKSPACE_KEYS or (len(pressed) == 1 and pressed.isprintable()):
            return Bell()
        return None

    def _enter(self) -> Outcome:
        """Submit the line; an empty one too (while reconnecting it means: try now), kept out of the history."""
        line = self.text
        self._set("")
        self._recall, self._draft = len(self.history), ""
        if not line.strip():
            return Submit("")
        if not self.history or self.history[-1] != line:
            self.history.append(line)
        self._recall = len(self.history)
        return Submit(line)

    def _clear(self) -> Outcome:
        self._set("")
        return None

    def _move(self, to: int) -> Outcome:
        self.cursor = max(0, min(len(self.chars), to))
        return None

    def _backspace(self) -> Outcome:
        if self.cursor == 0:
            return Bell()
        self._replace(self.cursor - 1, self.cursor, "")
        return None

    def _delete(self) -> Outcome:
        if self.cursor == len(self.chars):
            return Bell()
        self._replace(self.cursor, self.cursor + 1, "")
        return None

    def _word_start(self) -> int:
        """Where the word before the cursor starts (words are what spaces separate)."""
        at = self.cursor
        while at > 0 and self.chars[at - 1].isspace():
            at -= 1
        while at > 0 and not self.chars[at - 1].isspace():
            at -= 1
        return at

    def _word_end(self) -> int:
        at = self.cursor
        while at < len(self.chars) and self.chars[at].isspace():
            at += 1
        while at < len(self.chars) and not self.chars[at].isspace():
            at += 1
        return at

    def _delete_word(self) -> Outcome:
        if self.cursor == 0:
            return Bell()
        self._replace(self._word_start(), self.cursor, "")
        return None

    def _browse(self, step: int) -> Outcome:
        target = self._recall + step
        if not 0 <= target <= len(self.history):
            return Bell()
        if self._recall == len(self.history):
            self._draft = self.text
        self._recall = target
        self._set(self.history[target] if target < len(self.history) else self._draft)
        return None

    # --- completion -------------------------------------------------------

    def _candidates(self, before: str) -> tuple[str, list[str]]:
        """The word being completed and what it may become: a command as the first word, else a name (IRC's
        habit: at any word; "@" kept; an empty word only where a name must come)."""
        words = before.split(" ")
        word = words[-1]
        if len(words) == 1 and word[:1] in ("/", "*", "?"):
            return word, [command for command in COMPLETED_WORDS if command.startswith(word.lower())]
        if len(words) == 2 and words[0].lower() in PATH_COMMANDS:
            return word, list(self._paths(word))
        at = "@" if word.startswith("@") else ""
        named = (len(words) == 2 and words[0].lower() in NAME_COMMANDS) or (len(words) >= 2 and words[-2] == ">")
        if not word.removeprefix(at) and not named:
            return word, []
        start = word.removeprefix(at).lower()
        return word, [at + name for name in sorted(self._names(), key=str.lower) if name.lower().startswith(start)]

    def _complete(self) -> Outcome:
        before = "".join(self.chars[:self.cursor])
        word, options = self._candidates(before)
        if not options:
            return Bell()
        if len(options) == 1:
            addressed = before == word and not word.startswith(("@", "/", "*", "?"))
            folder = options[0].endswith(("/", os.sep)) and before.split(" ")[0].lower() in PATH_COMMANDS
            replacement = options[0] + ("" if folder else ": " if addressed else " ")  # "bob: " starts a line to bob
        else:
            replacement = os.path.commonprefix([option.lower() for option in options])
            replacement = options[0][:len(replacement)]
            if len(replacement) <= len(word):
                return Candidates(tuple(options))
        self._replace(self.cursor - len(graphemes(word)), self.cursor, replacement)
        return None

    # --- display ----------------------------------------------------------

    def view(self, columns: int) -> tuple[str, int, int]:
        """The part of the line that fits in `columns`, the cursor's column in it, and the columns after it.

        The window scrolls horizontally so the cursor is always visible, and back as far as the columns allow
        (after a widening, nothing stays hidden on the left that would fit). A held paste shows its placeholder.
        """
        columns = max(columns, 2)
        if self.block is not None:
            placeholder = "".join(graphemes(self.placeholder)[:columns - 1])
            return placeholder, text_width(placeholder), 0
        self._scroll = min(self._scroll, self.cursor)
        used = 1 if self.cursor == len(self.chars) else 0  # the blank cell for the cursor at the end
        for cluster in self.chars[self._scroll:]:  # what is shown from the scroll on, up to a full width
            used += text_width(cluster)
            if used > columns - 1:
                break
        while self._scroll > 0 and used + text_width(self.chars[self._scroll - 1]) <= columns - 1:
            self._scroll -= 1
            used += text_width(self.chars[self._scroll])
        # The cell under the cursor must show too; past the end of the text it is a blank one.
        cell = text_width(self.chars[self.cursor]) if self.cursor < len(self.chars) else 1
        before = text_width("".join(self.chars[self._scroll:self.cursor]))  # the cursor's column
        while before + cell > columns - 1:
            before -= text_width(self.chars[self._scroll])
            self._scroll += 1
        shown: list[str] = []
        used = 0
        for cluster in self.chars[self._scroll:]:
            width = text_width(cluster)
            if used + width > columns - 1:
                break
            shown.append(cluster)
            used += width
        return "".join(shown), before, used - before
