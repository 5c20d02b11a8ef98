"""Is the server still there? The client's watch over a quiet connection. Pure: the caller gives the time.

The server answers no /pong, so the probe is a `/users` (whose answer the core keeps from the screen): after
PROBE_AFTER seconds without a byte from the server the client sends one, and a server that then sends nothing
for ANSWER_WITHIN seconds more is "not answering". Any byte from the server counts as an answer.
"""

from __future__ import annotations

CONNECTED = "connected"
NOT_ANSWERING = "server not answering"
RECONNECTING = "reconnecting"  # set by the core while it replaces a lost connection
PROBE = "/users"
PROBE_AFTER = 15.0  # seconds of silence from the server before the client asks
ANSWER_WITHIN = 5.0  # a live server answers /users in milliseconds; this leaves room for a slow network


class Liveness:
    def __init__(self, now: float) -> None:
        self.heard = now
        self.probed: float | None = None

    def heard_from(self, now: float) -> None:
        self.heard, self.probed = now, None

    def probe_due(self, now: float) -> bool:
        """Whether to send a probe now; the probe counts as sent."""
        if self.probed is None and now - self.heard >= PROBE_AFTER:
            self.probed = now
            return True
        return False

    def state(self, now: float) -> str:
        return NOT_ANSWERING if self.probed is not None and now - self.probed >= ANSWER_WITHIN else CONNECTED
