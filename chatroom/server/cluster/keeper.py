"""The thread that keeps a server in the cluster: its heartbeat every `every` seconds, then a sweep that moves a
dead server's members to reconnecting and ends the graces that are over (whichever server sweeps, once).

A server that finds it was swept (its heartbeat lapsed, or Redis lost its data) says so through `on_swept` and
joins again. Redis unreachable is waited out (the link logs it once); anything else is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .records import ClusterUnavailable
from .worker import Worker

log = logging.getLogger("chatroom.server")


class Keeper(Worker):
    failure = "the cluster's keeper failed: this server's heartbeat has stopped"

    def __init__(self, every: float, beat: Callable[[bool], bool], sweep: Callable[[], int],
                 on_swept: Callable[[], None], on_failure: Callable[[BaseException], None]) -> None:
        super().__init__("cluster keeper", on_failure)
        self.every = every
        self.beat = beat
        self.sweep = sweep
        self.on_swept = on_swept

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self._turn()

    def _turn(self) -> None:
        try:
            if not self.beat(False):
                log.warning("this server was taken for dead by the cluster (no heartbeat reached Redis in time, "
                            "or Redis lost its data): its members must log in again")
                self.on_swept()
                self.beat(True)
            self.sweep()
        except ClusterUnavailable:
            pass  # said once by the link; the next turn tries again
