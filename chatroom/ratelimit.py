"""Token buckets (how many messages a connection may send now) and wrong-password delays per address.

The caller passes the clock, so both are tested without waiting.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


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


@dataclass
class _Guesses:
    count: int
    last: float


class GuessDelay:
    """How long to hold the reply to a wrong password, per address, so that guessing is slow while
    the right password is never held or refused (on a NAT, a guesser cannot lock out the others).

    The first wrong answer is free; then `base`, doubling up to `cap` seconds. An address forgets
    its failures after `quiet` seconds without one. At most `max_addresses` are remembered, the one
    that failed least recently forgotten first. Thread-safe; the lock guards only the dict work.
    """

    def __init__(self, base: float = 1.0, cap: float = 30.0, quiet: float = 300.0,
                 max_addresses: int = 10_000) -> None:
        if base < 0 or cap < 0 or quiet <= 0 or max_addresses < 1:
            raise ValueError("base and cap must be >= 0, quiet > 0 and max_addresses >= 1")
        self.base, self.cap, self.quiet, self.max_addresses = base, cap, quiet, max_addresses
        self._lock = threading.Lock()
        self._guesses: OrderedDict[str, _Guesses] = OrderedDict()  # least recent failure first

    def __len__(self) -> int:
        with self._lock:
            return len(self._guesses)

    def _hold(self, count: int) -> float:
        """The hold for an address's wrong answer number `count + 1`."""
        return 0.0 if count == 0 else min(self.cap, self.base * 2.0 ** min(count - 1, 64))

    def _count(self, address: str, now: float) -> int:
        """Failures still remembered for `address`; drops every entry gone quiet (lock held)."""
        while self._guesses:
            oldest = next(iter(self._guesses.values()))
            if now - oldest.last < self.quiet:
                break
            self._guesses.popitem(last=False)
        entry = self._guesses.get(address)
        return entry.count if entry else 0

    def failures(self, address: str, now: float) -> int:
        """Wrong answers from `address` not yet forgotten."""
        with self._lock:
            return self._count(address, now)

    def penalty(self, address: str, now: float) -> float:
        """Seconds the reply to the next wrong answer from `address` would be held."""
        with self._lock:
            return self._hold(self._count(address, now))

    def fail(self, address: str, now: float) -> float:
        """Count a wrong answer from `address`; the seconds to hold its reply."""
        with self._lock:
            count = self._count(address, now)
            self._guesses[address] = _Guesses(count + 1, now)
            self._guesses.move_to_end(address)
            if len(self._guesses) > self.max_addresses:
                self._guesses.popitem(last=False)
            return self._hold(count)
