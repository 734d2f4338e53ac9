"""NodeTable: which processes on the bus were heard from lately.

Every listening node announces itself with a heartbeat
(:class:`~sio_wsgi.managers.messages.Hello`) every ``heartbeat_interval`` and
says goodbye (:class:`~sio_wsgi.managers.messages.Bye`) when it shuts down. A node
not heard from for :data:`MISSED_HEARTBEATS` intervals counts as gone. Right after
this node subscribed again (after a broker outage), the others have not had time
to speak yet, so hosts heard from before the loss stay known until they have.
For one heartbeat interval after any subscription (a start, or after an outage)
the table is *settling*: a host it does not know may be one whose reply to this
node's hello is still on the way, so the bus asks the broker about it instead of
taking it for gone.
"""

from __future__ import annotations

import threading
import time

__all__ = ["NodeTable", "MISSED_HEARTBEATS"]

#: heartbeat intervals without a word from a node after which it counts as gone
MISSED_HEARTBEATS = 3


class NodeTable:
    """Host id -> when it was last heard from, with expiry.

    :param heartbeat_interval: seconds between a node's heartbeats.
    """

    def __init__(self, heartbeat_interval: float) -> None:
        self.heartbeat_interval = heartbeat_interval
        #: host id -> :func:`time.monotonic` of its last message
        self.seen: dict[str, float] = {}
        #: when this node's subscription last went live
        self.subscribed_at = 0.0
        self._lock = threading.Lock()

    def _horizon(self, now: float) -> float:
        return now - MISSED_HEARTBEATS * self.heartbeat_interval

    def heard(self, host: str, hello: bool) -> None:
        """A message from ``host``: a heartbeat makes it known, any message keeps
        a known host alive (emitters that do not listen never become nodes)."""
        with self._lock:
            if hello or host in self.seen:
                self.seen[host] = time.monotonic()

    def subscribed(self) -> None:
        """This node's subscription is live (again)."""
        self.subscribed_at = time.monotonic()

    def remove(self, host: str) -> None:
        """``host`` said goodbye."""
        with self._lock:
            self.seen.pop(host, None)

    def nodes(self) -> list[str]:
        """Host ids heard from recently, sorted."""
        horizon = self._horizon(time.monotonic())
        with self._lock:
            return sorted(h for h, seen in self.seen.items() if seen >= horizon)

    def settling(self) -> bool:
        """Whether this node may not have heard every live node yet: it never
        subscribed, or it did less than one heartbeat interval ago."""
        if self.subscribed_at == 0.0:
            return True
        return time.monotonic() - self.subscribed_at < self.heartbeat_interval

    def knows(self, host: str) -> bool:
        """Whether ``host`` was heard from recently (right after this node subscribed
        again, any host heard from before the loss)."""
        horizon = self._horizon(time.monotonic())
        seen = self.seen.get(host)
        return seen is not None and (seen >= horizon or self.subscribed_at >= horizon)

    def expire(self, now: float) -> list[str]:
        """Forget the hosts gone silent (none while this node only lately listens again).

        :returns: the hosts forgotten.
        """
        gone = self._horizon(now)
        if self.subscribed_at > gone:
            return []  # listening again only lately: the others have not had time to speak
        with self._lock:
            hosts = [h for h, seen in self.seen.items() if seen < gone]
            for host in hosts:
                del self.seen[host]
        return hosts
