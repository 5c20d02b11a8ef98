"""Who may connect and log in: connections per address, and logins per address and into the room.

Memory only, under its own lock; addresses that went quiet are forgotten, so it stays small.
"""

from __future__ import annotations

import threading
from collections import Counter

from ..ratelimit import TokenBucket
from .config import Config

TRACKED_ADDRESSES = 4096  # past this many, addresses whose login allowance is full again are forgotten


class Admission:
    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._connections: Counter[str] = Counter()
        self._logins: dict[str, tuple[TokenBucket, float]] = {}  # address -> (allowance, last login)
        self._room = TokenBucket(config.room_joins, config.room_join_burst, now)

    def connect(self, address: str) -> bool:
        """Count a new connection; False if its address has too many already (it is counted anyway)."""
        with self._lock:
            self._connections[address] += 1
            return self._connections[address] <= self.config.max_per_address

    def disconnect(self, address: str) -> None:
        with self._lock:
            self._connections[address] -= 1
            if not self._connections[address]:
                del self._connections[address]

    def _bucket(self, address: str, now: float) -> TokenBucket:
        return self._logins.get(address, (None, 0.0))[0] or TokenBucket(
            self.config.joins_per_address, self.config.join_burst, now)

    def login_wait(self, address: str, now: float) -> float:
        """0, or the seconds to wait before this address may log in again (a refused name costs nothing).

        A loop of connect, login, quit would otherwise put a join and a leave on every screen."""
        with self._lock:
            return max(self._bucket(address, now).wait(now), self._room.wait(now))

    def logged_in(self, address: str, now: float) -> None:
        """Count a login that happened."""
        with self._lock:
            bucket = self._bucket(address, now)
            bucket.take(now)
            self._room.take(now)
            self._logins[address] = (bucket, now)
            if len(self._logins) > TRACKED_ADDRESSES:
                refill = self.config.join_burst / (self.config.joins_per_address or 1)
                self._logins = {key: value for key, value in self._logins.items() if now - value[1] < refill}
