"""One JSON line read with its nesting bounded, as the server reads a hello and the client an event. Pure.

The bound is ours, not the interpreter's: a recursion limit differs between Python versions (3.13 parses
2,000 levels that 3.11 refuses), and a peer must not be able to choose what it costs or whether it crashes.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # the protocol's deepest line (a search's found messages) has 3 levels
# A string (its brackets are text), finished or not, or a bracket: read left to right in one pass.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def parse_json(line: str) -> Any:
    """The value of one JSON line; ValueError if it is no JSON, nests deeper than MAX_DEPTH, or holds an
    integer past the interpreter's digit limit."""
    if line.count("[") + line.count("{") > MAX_DEPTH:  # else it cannot nest too deep: skip the scan
        depth = 0
        for token in _STRING_OR_BRACKET.finditer(line):
            bracket = token.group()
            if bracket in ("[", "{"):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            elif bracket in ("]", "}"):
                depth -= 1
    return json.loads(line)
