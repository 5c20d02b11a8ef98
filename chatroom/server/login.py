"""The login's decision, pure: what an attempt comes to, given the room password, the admission's answer and
then the room's. The handler gathers those, performs the decision (waits, logs, joins) and tells the session.

The password comes first, so only people who know it learn who is here or hear that the room is full.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

from ..names import NameProblem
from .session import Ask, Login

# What the room can answer that asking for another name would not change: the connection ends.
FINAL_PROBLEMS = ("room_full", "shutting_down", "too_much_history", "address_full", "cluster_unavailable")


@dataclass(frozen=True)
class Refuse:
    """Say why, then ask again (`ask`), or end the connection (`ask` None); `counts` against the tries.
    `logged`: what the server's log says of it, if anything."""
    code: str
    message: str
    ask: Ask | None
    counts: bool = True
    logged: str = ""


@dataclass(frozen=True)
class WrongPassword:
    """A guess: count it against the address, hold the answer as long as that says, then `wrong_password`."""


@dataclass(frozen=True)
class Join:
    """Ask the room to take this name (`name_refused` if it will not)."""


Decision = Refuse | WrongPassword | Join


def password_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def decide(attempt: Login, password: str | None, login_wait: float) -> Decision:
    """Before the room: the password (if the room has one), then the logins allowed from the address
    (`login_wait`: 0, or the seconds until the next is)."""
    if password is not None:
        if attempt.password is None:
            return Refuse("password_required", "this room needs a password", Ask.PASSWORD, counts=False)
        if not password_matches(attempt.password, password):
            return WrongPassword()
    if login_wait:
        return Refuse("login_limited", f"too many logins from your address: try again in {math.ceil(login_wait)} "
                      "seconds", None, logged="refused, too many logins from that address")
    return Join()


def wrong_password(hold: float) -> Refuse:
    """The answer to a wrong password, given after `hold` seconds."""
    message = "wrong password"
    if hold:
        message += f" (answered after {hold:g} s: each wrong password from your address waits longer, up to 30 s)"
    return Refuse("wrong_password", message, Ask.PASSWORD)


def name_refused(problem: NameProblem) -> Refuse:
    """The room's no: another name is asked for, unless no name would do now."""
    return Refuse(problem.code, problem.message, None if problem.code in FINAL_PROBLEMS else Ask.NAME)
