"""A token-bucket rate limiter for incoming events: the answer to event floods.

Install it as an event middleware::

    sio.use_event(sio_wsgi.RateLimit(rate=5, burst=10), namespace="*")
    # or: sio.rate_limit(rate=5, burst=10, namespace="*")

Each client (each sid, so each namespace it joined) has a bucket of ``burst``
tokens, refilled at ``rate`` tokens per second; an event takes one. An event that
finds the bucket empty is dropped: the client gets an ``error`` event
``{"message": "rate limit exceeded", "data": {"event": <name>, "retry_after": <s>}}``
(its acknowledgement, if it asked for one, is never sent), or, with
``on_exceed="disconnect"``, it also is disconnected from the namespace.

Memory is constant per client: one bucket (two floats), or with ``per_event`` at
most ``max_event_buckets`` (event names past that share one bucket). The dispatcher
calls :meth:`RateLimit.forget` when the client leaves the namespace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sio_wsgi.config import RATE_LIMIT_DEFAULTS, RateLimitOptions
from sio_wsgi.exceptions import EventRejected

__all__ = ["RateLimit", "EXCEEDED"]

EXCEEDED = "rate limit exceeded"
"""The ``message`` of the ``error`` event a dropped event gets."""

_OTHER_EVENTS = "\x00other"
"""The bucket shared by the event names past ``max_event_buckets`` (per_event)."""


class RateLimit:
    """Events per second per client, with a burst (token bucket).

    :param rate: tokens added per second (the sustained events per second).
    :param burst: the bucket's size (events accepted at once after a quiet spell).
    :param per_event: one bucket per event name (else one per client).
    :param on_exceed: ``"drop"`` (an ``error`` event to the client) or
        ``"disconnect"`` (the same, then the client is disconnected from the namespace).
    :param events: only these event names are limited (None: every event).
    :param max_event_buckets: with ``per_event``, the buckets one client may have;
        further event names share one more.
    :param clock: seconds from a monotonic clock (for tests).
    :raises ValueError: for a bad setting.
    """

    def __init__(
        self,
        rate: float = RATE_LIMIT_DEFAULTS.rate,
        burst: int = RATE_LIMIT_DEFAULTS.burst,
        per_event: bool = RATE_LIMIT_DEFAULTS.per_event,
        on_exceed: str = RATE_LIMIT_DEFAULTS.on_exceed,
        events: Iterable[str] | None = None,
        *,
        max_event_buckets: int = RATE_LIMIT_DEFAULTS.max_event_buckets,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = RateLimitOptions(rate, burst, per_event, on_exceed, max_event_buckets)
        self.events: frozenset[str] | None = None if events is None else frozenset(events)
        self._clock = clock
        # an OS lock (green under monkey-patching); nothing blocks while it is held
        self._lock = threading.Lock()
        #: sid -> bucket key -> [tokens, time of the last refill]
        self._buckets: dict[str, dict[str, list[float]]] = {}

    def __call__(self, sid: str, event: str, args: list[Any]) -> None:
        """The event middleware: take a token or raise :class:`EventRejected`."""
        if self.events is not None and event not in self.events:
            return
        options = self.options
        key = event if options.per_event else ""
        now = self._clock()
        with self._lock:
            buckets = self._buckets.get(sid)
            if buckets is None:
                buckets = self._buckets[sid] = {}
            bucket = buckets.get(key)
            if bucket is None:
                if len(buckets) >= options.max_event_buckets:
                    key = _OTHER_EVENTS
                    bucket = buckets.get(key)
                if bucket is None:
                    bucket = buckets[key] = [float(options.burst), now]
            tokens = min(float(options.burst), bucket[0] + (now - bucket[1]) * options.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return
            bucket[0] = tokens
            retry_after = (1.0 - tokens) / options.rate
        raise EventRejected(
            EXCEEDED,
            {"event": event, "retry_after": round(retry_after, 3)},
            disconnect=options.on_exceed == "disconnect",
        )

    def forget(self, sid: str) -> None:
        """Drop the buckets of ``sid`` (it left the namespace)."""
        with self._lock:
            self._buckets.pop(sid, None)

    def tracked(self) -> int:
        """How many clients have buckets (for tests and diagnostics)."""
        with self._lock:
            return len(self._buckets)
