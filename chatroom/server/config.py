"""The server's settings in one frozen object, passed to the room, the sessions and the sender.

docs/security.md gives each default and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..protocol import LINE_LIMIT

# The most bytes one chat line can become on the wire: JSON escapes every '\' and '"' as two bytes,
# plus the event's fields (type, seq, sender, timestamp).
EVENT_BYTES = 2 * LINE_LIMIT + 256


@dataclass(frozen=True)
class Config:
    max_members: int = 100  # users in the room at once
    newcomer_messages: int = 50  # public messages a newcomer is shown ...
    newcomer_bytes: int = 128 * 1024  # ... and at most this many bytes of them, so a join always fits
    catchup: int = 2000  # public events kept in memory for a reconnecting client to catch up ...
    catchup_bytes: int = 1024 * 1024  # ... and at most this many bytes of them
    history_keep: int = 100_000  # public events kept on disk
    grace: float = 60.0  # seconds a lost member's name waits for them (0: none)
    # A member is dropped as too slow only when what is queued for it stays above `sendq` for
    # `slow_after` seconds, or it accepts no byte at all for `stall_after` seconds while something waits.
    sendq: int = 256 * 1024
    slow_after: float = 10.0
    stall_after: float = 30.0
    rate: float = 2.0  # messages per second, refilled; 0 turns the limit off
    burst: int = 10  # messages at once
    login_timeout: float = 15.0  # seconds to answer the first question (a client program answers at once)
    answer_timeout: float = 60.0  # seconds a person gets for a question asked again, or the password
    login_total: float = 120.0  # the whole login, whatever is answered
    login_tries: int = 5  # refused answers (taken names, wrong passwords, bad hellos) before the end
    max_per_address: int = 10  # connections from one IP address
    joins_per_address: float = 0.5  # logins per second from one address, after a burst of ...
    join_burst: int = 10
    room_joins: float = 10.0  # logins per second into the room, after a burst of ...
    room_join_burst: int = 100
    ping_interval: float = 30.0  # JSON mode: silence before a ping, and then before a drop
    keepalive: float = 30.0  # plain mode: TCP keepalive idle time (probes every keepalive/3, 5 of them)

    @property
    def hard_cap(self) -> int:
        """Bytes queued for one member beyond which it is dropped at once.

        Above the largest burst the limits allow (every member's full burst of the longest lines), so a
        member that reads can never reach it; with no rate limit there is no such bound, so 4 x sendq.
        """
        bursts = self.max_members * self.burst * EVENT_BYTES if self.rate else 0
        return max(4 * self.sendq, bursts + self.catchup_bytes + self.sendq)


def redis_address(url: str) -> str:
    """The address of the cluster's Redis for messages (--cluster): the URL without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
