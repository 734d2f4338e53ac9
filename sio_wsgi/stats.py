"""The counting points of the metrics: plain integers the hot path increments.

A :class:`Stats` object is what the engine, the dispatcher and the manager get
when metrics are on (``Server(metrics=True)``); when they are off their
``metrics`` attribute is ``None`` and each counting point is one ``is None``
test. Nothing here formats or serves anything: :mod:`sio_wsgi.metrics` reads
these counters, and the live state (connected clients, queued bytes, the bus),
when it is scraped.

The counters are plain ``int`` / ``float`` updates without a lock: under the
GIL an increment can very rarely be lost when two threads race on the same
counter (threading mode), which metrics tolerate; nothing ever decreases.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from .config import (
    METRICS_ACK_BUCKETS,
    METRICS_HANDLER_BUCKETS,
    METRICS_MAX_LABEL_VALUES,
    METRICS_OTHER_LABEL,
)

__all__ = ["Histogram", "Stats"]

_clock = time.perf_counter


class Histogram:
    """Observations counted in fixed buckets (upper bounds, in seconds).

    :param bounds: the bucket upper bounds, increasing; a last ``+Inf`` bucket is implied.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        #: per bucket (not cumulative), the last one for values above every bound
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, observations <= it)`` pairs, Prometheus style (``+Inf`` last)."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class _Labelled(dict[str, Any]):
    """Per-label values with a cap on distinct labels: namespaces can be made up by
    clients (``namespaces='*'``), so past the cap they all count as ``other``."""

    def __init__(self, make: Callable[[], Any]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: str) -> Any:
        if len(self) >= METRICS_MAX_LABEL_VALUES:
            key = METRICS_OTHER_LABEL
            if key in self:
                return self[key]
        value = self._make()
        self[key] = value
        return value


class _Count:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class Stats:
    """Every counter of one server process.

    :param handler_buckets: handler duration buckets (seconds).
    :param ack_buckets: ack round-trip buckets (seconds).
    """

    def __init__(
        self,
        handler_buckets: Sequence[float] = METRICS_HANDLER_BUCKETS,
        ack_buckets: Sequence[float] = METRICS_ACK_BUCKETS,
    ) -> None:
        #: Engine.IO messages received from clients, and their size (bytes; characters
        #: for text messages)
        self.messages_in = 0
        self.bytes_in = 0
        #: Engine.IO packets handed to the transports, and their size
        self.packets_out = 0
        self.bytes_out = 0
        #: Engine.IO sessions opened, by first transport
        self.sessions_opened: dict[str, int] = {"polling": 0, "websocket": 0}
        #: Engine.IO sessions closed, by reason
        self.sessions_closed: dict[str, int] = {}
        #: per namespace: events received, events handed to clients, namespace disconnects
        #: by reason, handler durations
        self.events_in: _Labelled = _Labelled(_Count)
        self.events_out: _Labelled = _Labelled(_Count)
        self.disconnects: _Labelled = _Labelled(dict)
        self.handler_seconds: _Labelled = _Labelled(lambda: Histogram(handler_buckets))
        self.handler_errors: _Labelled = _Labelled(_Count)
        #: from an emit with a callback to the client's ack (local clients)
        self.ack_seconds = Histogram(ack_buckets)
        self.started = time.time()

    # ------------------------------------------------------------- engine

    def received(self, data: str | bytes) -> None:
        """One message from a client (the dispatcher's ``on_message``)."""
        self.messages_in += 1
        self.bytes_in += len(data)

    def sent(self, items: int, size: int) -> None:
        """Packets handed to one session's transport (or its queue)."""
        self.packets_out += items
        self.bytes_out += size

    def opened(self, transport: str) -> None:
        """A session was accepted on ``transport``."""
        self.sessions_opened[transport] = self.sessions_opened.get(transport, 0) + 1

    def closed(self, reason: str) -> None:
        """A session closed with ``reason``."""
        self.sessions_closed[reason] = self.sessions_closed.get(reason, 0) + 1

    # ------------------------------------------------------------- Socket.IO

    def event_in(self, namespace: str) -> None:
        """An EVENT packet arrived for ``namespace``."""
        count = self.events_in.get(namespace)
        if count is None:
            count = self.events_in[namespace]
        count.n += 1

    def events_sent(self, namespace: str, n: int) -> None:
        """An emit was handed to ``n`` local clients of ``namespace``."""
        self.events_out[namespace].n += n

    def disconnected(self, namespace: str, reason: str) -> None:
        """A client left ``namespace`` (its disconnect handler ran)."""
        counts = self.disconnects[namespace]
        counts[reason] = counts.get(reason, 0) + 1

    def run_handler(self, namespace: str, handler: Callable[..., Any], *args: Any) -> Any:
        """Run an event handler, timing it (an exception is counted, then raised); the
        dispatcher times its handlers inline with :meth:`handler_took` instead."""
        start = _clock()
        try:
            return handler(*args)
        except BaseException:
            self.handler_failed(namespace)
            raise
        finally:
            self.handler_took(namespace, _clock() - start)

    def handler_failed(self, namespace: str) -> None:
        """An event handler of ``namespace`` raised an exception."""
        self.handler_errors[namespace].n += 1

    def handler_took(self, namespace: str, seconds: float) -> None:
        """An event handler of ``namespace`` ran for ``seconds``."""
        histogram = self.handler_seconds.get(namespace)
        if histogram is None:
            histogram = self.handler_seconds[namespace]
        histogram.counts[bisect_left(histogram.bounds, seconds)] += 1
        histogram.sum += seconds

    def timed_ack(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` that first records the time since this call (an ack's round trip)."""
        start = _clock()
        observe = self.ack_seconds.observe

        def acked(*args: Any) -> Any:
            observe(_clock() - start)
            return callback(*args)

        return acked
