"""Token buckets: how many messages a connection may send now. Pure; the caller passes the clock."""

from __future__ import annotations


class TokenBucket:
    """`burst` messages at once, refilled at `rate` per second; a rate of 0 means no limit."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        if not self.rate:
            return True
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until `take` will succeed."""
        if not self.rate:
            return 0.0
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)


class FailureCounter:
    """Failed attempts per key (an address) within a sliding window, to refuse guessers for a while."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        recent = [stamp for stamp in self._failures.get(key, []) if now - stamp < self.window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def blocked(self, key: str, now: float) -> bool:
        return len(self._recent(key, now)) >= self.limit

    def fail(self, key: str, now: float) -> None:
        self._failures[key] = [*self._recent(key, now), now]
