"""One room across several servers, on Redis (`--cluster`): the engine the room calls, and what it hands back.

Imported only with --cluster: it needs the `redis` package (pip install chatroom[cluster]).
"""

from .engine import Engine
from .records import (
    Bounced, Claimed, ClusterError, ClusterUnavailable, Gap, NameRefused, NotMember, Published, Record, Seat,
    Snapshot, Undeliverable, Whispered,
)

__all__ = ["Bounced", "Claimed", "ClusterError", "ClusterUnavailable", "Engine", "Gap", "NameRefused", "NotMember",
           "Published", "Record", "Seat", "Snapshot", "Undeliverable", "Whispered"]
