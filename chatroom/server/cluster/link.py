"""The cluster's connection to Redis: its pools, its scripts, the timeouts that bound every call, and the log that
says once that Redis is gone and once that it is back.

Every failure to reach Redis becomes `ClusterUnavailable`, and means nothing was written: no call is retried
(a retry could append an event twice), and a script that Redis runs after its caller gave up (a paused Redis
reads what waited in its socket when it resumes) refuses to write, by the deadline each call carries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import redis_address
from . import lua
from .records import ClusterError, ClusterUnavailable, Entry, Reading

log = logging.getLogger("chatroom.server")

POOL_SIZE = 16  # connections for the server's calls; more callers wait for one (within their timeout)
BLOCK = 0.5  # seconds a reader waits in XREAD for new entries, so that it sees a stop that soon
OLDEST_REDIS = (5, 0)  # streams, and scripts replicated by their effects (TIME inside a script)
# What Redis being away looks like to its client (not a script's error, which is ours); InvalidResponse: something
# that is not Redis answered.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.exceptions.InvalidResponse)


class Availability:
    """Whether Redis answers, as the calls found it; a change is logged once (never under a lock)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.down = False
        self._failed_at = 0.0  # time.monotonic() of the last failure
        self._lock = threading.Lock()

    def failed(self, exc: Exception) -> ClusterUnavailable:
        with self._lock:
            first, self.down = not self.down, True
            self._failed_at = time.monotonic()
        if first:
            log.warning("the cluster's Redis at %s is unreachable (%s): messages are refused until it is back",
                        self.where, exc)
        return ClusterUnavailable(f"the cluster's Redis at {self.where} is unreachable ({exc})")

    def ok(self, asked: float) -> None:
        """A call made at `asked` (time.monotonic()) was answered. Only one made after the last failure says
        Redis is back: an answer to an older call (a read that waited in XREAD while Redis went) says nothing
        of now, and taken for a return it logged "reachable again" while Redis was still gone."""
        if self.down:
            with self._lock:
                back = self.down and asked > self._failed_at
                self.down = self.down and not back
            if back:
                log.warning("the cluster's Redis at %s is reachable again", self.where)


class Link:
    """Redis for one server: scripts for the room's changes, and a connection of its own for each reader."""

    def __init__(self, url: str, room: str, origin: str, *, timeout: float, trim: int, grace: float) -> None:
        self.url = url
        self.where = redis_address(url)
        self.prefix = f"chatroom:{{{room}}}"  # one hash tag: every key of the room in one slot
        self.origin = origin
        self.timeout = timeout
        self.trim = trim
        self.grace_ms = int(grace * 1000)
        self.availability = Availability(self.where)
        self.offset = 0.0  # Redis's clock minus ours, in seconds (measured by `clock`)
        self._floor = 0
        self._floor_lock = threading.Lock()
        try:
            pool = redis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=timeout,
                                                         **self._connection(timeout))
        except ValueError as exc:
            raise ClusterError(f"--cluster {url}: {exc}") from None
        self.redis = redis.Redis(connection_pool=pool)
        self._scripts = {name: self.redis.register_script(lua.PRELUDE + body) for name, body in lua.SCRIPTS.items()}
        self._readers: list[redis.Redis] = []

    @staticmethod
    def _connection(timeout: float) -> dict[str, Any]:
        # No retries: a retried script could append its event twice, and a retry would stretch the bound.
        # RESP2: the same shapes of replies from every version of the client (8 speaks RESP3 by default).
        return {"protocol": 2, "decode_responses": True, "socket_timeout": timeout, "socket_connect_timeout": timeout,
                "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}

    def reader(self) -> redis.Redis:
        """A connection of its own for a reader that blocks in XREAD (closed by `close`)."""
        client = redis.Redis.from_url(self.url, **self._connection(BLOCK + self.timeout))
        self._readers.append(client)
        return client

    def close(self) -> None:
        for client in [self.redis, *self._readers]:
            client.close()
        self.redis.connection_pool.disconnect()

    # --- what every call shares ----------------------------------------------------------------------------

    def saw(self, seq: int) -> None:
        """An id this server knows: a lost counter starts again above the highest such."""
        with self._floor_lock:
            self._floor = max(self._floor, seq)

    @property
    def floor(self) -> int:
        return self._floor

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def entries(self, client: redis.Redis, after: str, count: int, block: float | None = None) -> list[Entry]:
        """The stream's entries after the id `after` (waiting up to `block` seconds for the first)."""
        if block is None:
            seq, _, sub = after.partition("-")  # the next id possible: XRANGE's "(" is newer than Redis 5
            return cast(list[Entry], client.xrange(self.key("log"), f"{seq}-{int(sub) + 1}", "+", count=count))
        answer = cast(list[Any], client.xread({self.key("log"): after}, count=count, block=int(block * 1000)))
        return cast(list[Entry], answer[0][1]) if answer else []

    def texts(self, client: redis.Redis, entries: list[Entry]) -> dict[int, str | None]:
        """The texts of the private messages among `entries` (kept apart from the stream, for a while)."""
        seqs = Reading.privates(entries)
        if not seqs:
            return {}
        return dict(zip(seqs, cast(list[str | None], client.mget([self.key(f"pm:{seq}") for seq in seqs]))))

    def call(self, name: str, args: Sequence[str | int], deadline: bool = True, ref: str = "") -> Any:
        """Run a script; its answer, or ClusterUnavailable (and then it wrote nothing). With `deadline`, Redis
        refuses to run it once this call has given up (a quarter of the timeout is left for the answer's way
        back and for the error of the measured clock)."""
        until = int((time.time() + self.offset + 0.75 * self.timeout) * 1000) if deadline else 0
        asked = time.monotonic()
        common: list[str | int] = [self._floor, until, self.origin, self.trim, self.grace_ms, ref]
        try:
            answer = self._scripts[name](keys=[self.prefix], args=[*common, *args])
        except UNREACHABLE as exc:
            raise self.availability.failed(exc) from None
        except redis.ResponseError as exc:
            raise ClusterError(f"the cluster's Redis at {self.where} refused a script: {exc}") from None
        self.availability.ok(asked)
        if isinstance(answer, list) and answer and answer[0] == "late":
            raise ClusterUnavailable(f"the cluster's Redis at {self.where} answered too late")
        return answer

    def timed(self, name: str, args: Sequence[str | int]) -> Any:
        """Run a script that answers with Redis's clock (ms) second, and measure that clock against ours."""
        before = time.time()
        answer = self.call(name, args, deadline=False)
        self.offset = int(answer[1]) / 1000 - (before + time.time()) / 2
        return answer

    def check(self, persistence: bool) -> None:
        """Refuse a Redis too old for the scripts, or one that writes to disk (private messages must not reach it)."""
        try:
            version = str(self.redis.info("server")["redis_version"])
            config = {} if not persistence else {**self.redis.config_get("save"),
                                                 **self.redis.config_get("appendonly")}
        except UNREACHABLE as exc:
            raise ClusterUnavailable(f"cannot reach the cluster's Redis at {self.where} ({exc})") from None
        except redis.ResponseError as exc:
            raise ClusterError(f"cannot check the cluster's Redis at {self.where} ({exc}): chatroom needs CONFIG "
                               "GET to make sure Redis keeps nothing on disk") from None
        if tuple(int(part) for part in version.split(".")[:2]) < OLDEST_REDIS:
            raise ClusterError(f"the cluster's Redis at {self.where} is version {version}; chatroom needs "
                               f"{'.'.join(map(str, OLDEST_REDIS))} or newer")
        if config.get("save") or config.get("appendonly") == "yes":
            raise ClusterError(f"the cluster's Redis at {self.where} writes its data to disk (save "
                               f"\"{config.get('save')}\", appendonly {config.get('appendonly')}); private messages "
                               "must never reach a disk: run it with --save '' --appendonly no (docs/security.md)")
