"""Metrics of a :class:`~sio_wsgi.server.Server`: Prometheus text or JSON, over WSGI.

::

    sio = sio_wsgi.Server(metrics=True)
    app = sio_wsgi.WSGIApp(sio, flask_app, metrics_path="/metrics")

``GET /metrics`` answers in the Prometheus text format when ``prometheus-client``
is installed (``pip install sio_wsgi[metrics]``), else in JSON; ``?format=json``
(or ``Accept: application/json``) always gets JSON, ``?format=prometheus`` the
text format. :class:`MetricsApp` is the same endpoint as a WSGI app of its own.

The hot path only increments the plain counters of :class:`~sio_wsgi.stats.Stats`;
everything else (connected clients per namespace and transport, bytes queued to
the clients, the bus's health) is read from the server when it is scraped, by
:func:`collect`, which :class:`SioCollector` hands to ``prometheus_client``.

Who may read it: by default only requests from a loopback address (``REMOTE_ADDR``
127.0.0.1 or ::1); ``auth=callable(environ) -> bool`` decides instead (behind a
proxy on the same host, every request comes from loopback: give an ``auth``).

Each process counts its own: with ``gunicorn -w N`` a scrape reaches one worker.
``per_process=True`` adds a ``pid`` label to every series, so that the series of
different workers never mix (docs/guide/metrics.md says how to scrape them).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import parse_qs

from .engine.ports import Environ, StartResponse
from .stats import Histogram, Stats

_prom: Any
_core: Any
try:  # the optional extra "metrics"
    import prometheus_client as _prom
    from prometheus_client import core as _core
except ImportError:  # pragma: no cover - exercised without the extra only
    _prom = _core = None

__all__ = ["Family", "collect", "to_json", "SioCollector", "MetricsApp", "HAS_PROMETHEUS"]

HAS_PROMETHEUS = _prom is not None
"""Whether ``prometheus-client`` is installed (the Prometheus text format is served)."""

logger = logging.getLogger(__name__)

JSON = "application/json"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})

Auth = Callable[[Environ], bool]
"""``auth(environ) -> bool``: may this request read the metrics?"""


class _Monitored(Protocol):
    """What the metrics read of a :class:`~sio_wsgi.server.Server`."""

    metrics: Stats | None
    eio: Any
    manager: Any
    _clients: dict[str, Any]

    def enable_metrics(self) -> Stats: ...


@dataclasses.dataclass
class Family:
    """One metric: its name (``_total`` for counters), kind, help and samples.

    A sample is ``(label values, value)``; a histogram's value is a :class:`Histogram`.
    """

    name: str
    kind: str  # 'counter' | 'gauge' | 'histogram'
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float | Histogram]] = dataclasses.field(
        default_factory=list
    )

    def add(self, value: float | Histogram, *labels: str) -> Family:
        """Add a sample; returns the family."""
        self.samples.append((labels, value))
        return self


def _str(value: Any) -> str:
    """A label value: an enum member's value, else the string itself."""
    return str(getattr(value, "value", value))


def _live(server: _Monitored) -> list[Family]:
    """What is read from the server itself: clients, sessions, queued bytes."""
    clients = Family(
        "sio_connected_clients",
        "gauge",
        "Clients connected to each namespace, by transport",
        ("namespace", "transport"),
    )
    sessions = Family(
        "sio_engine_sessions", "gauge", "Open Engine.IO sessions, by transport", ("transport",)
    )
    eio = server.eio
    engine_sessions = list(getattr(eio, "sessions", {}).values())
    by_transport: dict[str, int] = {}
    queued_max = queued = 0
    for session in engine_sessions:
        by_transport[session.transport] = by_transport.get(session.transport, 0) + 1
        pending = session.pending_bytes
        queued += pending
        queued_max = max(queued_max, pending)
    for transport, n in sorted(by_transport.items()):
        sessions.add(n, transport)
    per_ns: dict[tuple[str, str], int] = {}
    for eio_sid, client in list(server._clients.items()):
        transport = eio.transport(eio_sid) or "closed"
        for ns in list(client.namespaces):
            key = (ns, transport)
            per_ns[key] = per_ns.get(key, 0) + 1
    for (ns, transport), n in sorted(per_ns.items()):
        clients.add(n, ns, transport)
    return [
        clients,
        sessions,
        Family(
            "sio_queued_bytes_max",
            "gauge",
            "Largest number of bytes queued to one client, not yet written",
        ).add(queued_max),
        Family("sio_queued_bytes", "gauge", "Bytes queued to all clients, not yet written").add(
            queued
        ),
    ]


def _counted(stats: Stats) -> list[Family]:
    """The counters of :class:`Stats`."""
    opened = Family(
        "sio_engine_sessions_opened_total",
        "counter",
        "Engine.IO sessions opened, by first transport",
        ("transport",),
    )
    for transport, n in sorted(stats.sessions_opened.items()):
        opened.add(n, transport)
    closed = Family(
        "sio_engine_sessions_closed_total",
        "counter",
        "Engine.IO sessions closed, by reason",
        ("reason",),
    )
    for reason, n in sorted((_str(r), n) for r, n in stats.sessions_closed.items()):
        closed.add(n, reason)
    ns = ("namespace",)
    events_in = Family("sio_events_received_total", "counter", "Events received", ns)
    for name, count in sorted(stats.events_in.items()):
        events_in.add(count.n, name)
    events_out = Family(
        "sio_events_sent_total", "counter", "Events handed to this process's clients", ns
    )
    for name, count in sorted(stats.events_out.items()):
        events_out.add(count.n, name)
    disconnects = Family(
        "sio_disconnects_total",
        "counter",
        "Clients that left a namespace, by reason",
        ("namespace", "reason"),
    )
    for name, reasons in sorted(stats.disconnects.items()):
        for reason, n in sorted((_str(r), n) for r, n in reasons.items()):
            disconnects.add(n, name, reason)
    durations = Family(
        "sio_handler_duration_seconds", "histogram", "Time spent in event handlers", ns
    )
    for name, histogram in sorted(stats.handler_seconds.items()):
        durations.add(histogram, name)
    errors = Family(
        "sio_handler_errors_total", "counter", "Event handlers that raised an exception", ns
    )
    for name, count in sorted(stats.handler_errors.items()):
        errors.add(count.n, name)
    return [
        opened,
        closed,
        Family(
            "sio_engine_messages_received_total",
            "counter",
            "Engine.IO messages received from clients",
        ).add(stats.messages_in),
        Family(
            "sio_engine_received_bytes_total",
            "counter",
            "Size of the messages received (bytes; characters of text messages)",
        ).add(stats.bytes_in),
        Family(
            "sio_engine_packets_sent_total", "counter", "Engine.IO packets handed to clients"
        ).add(stats.packets_out),
        Family(
            "sio_engine_sent_bytes_total",
            "counter",
            "Size of the packets handed to clients (bytes; characters of text packets)",
        ).add(stats.bytes_out),
        events_in,
        events_out,
        disconnects,
        durations,
        errors,
        Family(
            "sio_ack_roundtrip_seconds",
            "histogram",
            "From an emit with a callback (or call()) to the client's acknowledgement",
        ).add(stats.ack_seconds),
    ]


def _broker(manager: Any) -> list[Family]:
    """The bus's health, for a pub/sub manager (``manager.health()``)."""
    health = getattr(manager, "health", None)
    if health is None:
        return []
    h = health()
    return [
        Family("sio_broker_connected", "gauge", "1 while the bus connection works").add(
            int(h.connected)
        ),
        Family(
            "sio_broker_state_seconds", "gauge", "Seconds since the bus connection changed state"
        ).add(h.since),
        Family("sio_broker_nodes", "gauge", "Other live nodes heard from on the bus").add(
            len(h.nodes)
        ),
        Family("sio_broker_reconnects_total", "counter", "Bus subscriptions re-established").add(
            h.reconnects
        ),
        Family("sio_broker_published_total", "counter", "Messages published on the bus").add(
            h.published
        ),
        Family("sio_broker_received_total", "counter", "Messages received from the bus").add(
            h.received
        ),
        Family("sio_broker_dropped_total", "counter", "Bus messages that did not parse").add(
            h.dropped
        ),
    ]


def collect(server: _Monitored, per_process: bool = False) -> list[Family]:
    """Every metric of ``server`` now (enables its counters if they were off).

    :param per_process: add a ``pid`` label to every series.
    """
    stats = server.enable_metrics()
    families = [*_live(server), *_counted(stats), *_broker(server.manager)]
    families.append(
        Family("sio_start_time_seconds", "gauge", "When the counters started (Unix time)").add(
            stats.started
        )
    )
    if per_process:
        pid = str(os.getpid())
        for family in families:
            family.labels = (*family.labels, "pid")
            family.samples = [((*labels, pid), value) for labels, value in family.samples]
    return families


def to_json(families: Iterable[Family]) -> dict[str, Any]:
    """A JSON-ready dict: ``{"pid", "time", "metrics": {name: {type, help, samples}}}``;
    a histogram sample has ``buckets`` (cumulative, by upper bound), ``count`` and ``sum``."""
    metrics: dict[str, Any] = {}
    for family in families:
        samples = []
        for labels, value in family.samples:
            sample: dict[str, Any] = {"labels": dict(zip(family.labels, labels, strict=True))}
            if isinstance(value, Histogram):
                buckets = value.cumulative()
                sample.update(buckets=dict(buckets), count=buckets[-1][1], sum=value.sum)
            else:
                sample["value"] = value
            samples.append(sample)
        metrics[family.name] = {"type": family.kind, "help": family.help, "samples": samples}
    return {"pid": os.getpid(), "time": time.time(), "metrics": metrics}


class SioCollector:
    """A ``prometheus_client`` collector reading a server at scrape time.

    ``REGISTRY.register(SioCollector(sio))`` adds sio_wsgi's metrics to an
    application's own registry (then serve that one, e.g. with
    ``prometheus_client.make_wsgi_app()``).

    :param server: the server (its metrics are enabled).
    :param per_process: add a ``pid`` label to every series.
    """

    def __init__(self, server: _Monitored, per_process: bool = False) -> None:
        self.server = server
        self.per_process = per_process
        server.enable_metrics()

    def describe(self) -> list[Any]:
        """Nothing up front: the registry does not call :meth:`collect` at registration."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families, in prometheus_client's types."""
        if _prom is None:  # pragma: no cover
            raise RuntimeError("prometheus-client is not installed (pip install sio_wsgi[metrics])")
        for family in collect(self.server, self.per_process):
            name, labels = family.name, list(family.labels)
            if family.kind == "counter":
                out: Any = _core.CounterMetricFamily(name, family.help, labels=labels)
            elif family.kind == "gauge":
                out = _core.GaugeMetricFamily(name, family.help, labels=labels)
            else:
                out = _core.HistogramMetricFamily(name, family.help, labels=labels)
            for values, value in family.samples:
                if isinstance(value, Histogram):
                    out.add_metric(list(values), value.cumulative(), value.sum)
                else:
                    out.add_metric(list(values), value)
            yield out


def _error(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    code = int(status.split(maxsplit=1)[0])
    body = json.dumps({"code": code, "message": message}).encode()
    start_response(status, [("Content-Type", JSON), ("Content-Length", str(len(body)))])
    return [body]


def _loopback(environ: Environ) -> bool:
    return environ.get("REMOTE_ADDR") in _LOOPBACK


class MetricsApp:
    """A WSGI app serving a server's metrics (``WSGIApp(..., metrics_path=...)`` mounts one).

    :param server: the :class:`~sio_wsgi.server.Server` (its metrics are enabled).
    :param auth: ``auth(environ) -> bool``; by default only loopback clients may read.
    :param per_process: add a ``pid`` label to every series (several workers).
    """

    def __init__(
        self, server: _Monitored, *, auth: Auth | None = None, per_process: bool = False
    ) -> None:
        if not callable(getattr(server, "enable_metrics", None)):
            raise TypeError(f"metrics need a sio_wsgi.Server, not {type(server).__name__}")
        self.server = server
        self.auth: Auth = auth or _loopback
        self.per_process = per_process
        server.enable_metrics()
        self._registry: Any = None
        if _prom is not None:
            self._registry = _prom.CollectorRegistry(auto_describe=False)
            self._registry.register(SioCollector(server, per_process))

    def _format(self, environ: Environ) -> str | None:
        """``'json'`` or ``'prometheus'``; None for an unknown ``format``."""
        asked = parse_qs(environ.get("QUERY_STRING", "")).get("format")
        if asked:
            return asked[0] if asked[0] in ("json", "prometheus") else None
        if JSON in environ.get("HTTP_ACCEPT", "") or self._registry is None:
            return "json"
        return "prometheus"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _error(start_response, "405 Method Not Allowed", "use GET")
        try:
            allowed = self.auth(environ)
        except Exception:
            logger.exception("the metrics auth callable failed: access refused")
            allowed = False
        if not allowed:
            return _error(start_response, "403 Forbidden", "metrics are not public")
        fmt = self._format(environ)
        if fmt is None:
            return _error(start_response, "400 Bad Request", "format is json or prometheus")
        if fmt == "prometheus":
            if self._registry is None:
                return _error(
                    start_response,
                    "501 Not Implemented",
                    "the Prometheus format needs prometheus-client (sio_wsgi[metrics])",
                )
            body = _prom.generate_latest(self._registry)
            content_type = _prom.CONTENT_TYPE_LATEST
        else:
            body = json.dumps(to_json(collect(self.server, self.per_process))).encode()
            content_type = JSON
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b"" if method == "HEAD" else body]
