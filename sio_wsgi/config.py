"""Every default of sio_wsgi, in one place.

:class:`ServerOptions` is a frozen dataclass holding every tunable of the
Engine.IO and Socket.IO layers. :data:`DEFAULTS` is the instance with the
documented defaults; ``Server.__init__`` and ``engineio.Server.__init__`` use
its fields as their parameter defaults, so the numbers live only here.

=========================  ==================  ================================================
option                     default             meaning
=========================  ==================  ================================================
async_mode                 None                'threading', 'eventlet', 'gevent' or None (auto)
ping_interval              25.0                seconds between server pings
ping_timeout               20.0                seconds to wait for the pong
max_http_buffer_size       1_000_000           max bytes of a POST body / WebSocket message
allow_upgrades             True                offer the polling -> websocket upgrade
transports                 ('polling','websocket')  transports accepted
cors_allowed_origins       None                None: same origin; '*'; str; list; callable
cors_credentials           True                send Access-Control-Allow-Credentials
cookie                     None                sticky-session cookie name (or dict of attributes)
http_compression           True                gzip/deflate polling responses
compression_threshold      1024                bytes before compression kicks in
upgrade_timeout            10.0                seconds to finish a started upgrade
connect_timeout            45.0                seconds for a client to send Socket.IO CONNECT
always_connect             False               send the CONNECT reply before the connect handler
serializer                 'default'           'default' (JSON) or 'msgpack' (or a Serializer)
max_attachments            10                  binary attachments per Socket.IO packet
max_json_depth             64                  nesting depth accepted in JSON payloads
max_pending_bytes          16_000_000          bytes queued to or from a client before dropping it
async_handlers             True                run handlers off the reader, started in arrival order
serial_handlers            False               a client's handlers one at a time (no overlap)
namespaces                 None                None: '/' and registered ones; '*': any; list
http_body_timeout          10.0                seconds between body bytes of a POST (slowloris)
shutdown_timeout           5.0                 seconds shutdown() waits for disconnect handlers
per_message_deflate        False               negotiate WebSocket compression (RFC 7692)
deflate_threshold          1024                bytes before a WebSocket message is compressed
connection_state_recovery  None                None/False: off; True or a dict: RecoveryOptions
polling_keepalive          True                gunicorn's keep-alive workers: serve a
                                               connection's next polling requests here
=========================  ==================  ================================================

:class:`RecoveryOptions` (``connection_state_recovery={...}``, Node's names also
accepted: ``maxDisconnectionDuration`` in milliseconds as there, ``skipMiddlewares``):

=========================  ==================  ================================================
max_disconnection_duration 120.0               seconds a dropped client may take to come back
skip_middlewares           True                connect middlewares skip a recovered connection
max_buffered_bytes         16_000_000          bytes of recoverable packets kept, all clients
max_replay_bytes           1_000_000           bytes one client may miss and still recover
=========================  ==================  ================================================

:class:`RateLimitOptions` (:class:`sio_wsgi.RateLimit`, ``Server.rate_limit``):

=========================  ==================  ================================================
rate                       10.0                events per second a client may send, sustained
burst                      20                  events a client may send at once (bucket size)
per_event                  False               one bucket per event name instead of per client
on_exceed                  'drop'              'drop' (an ``error`` event) or 'disconnect'
max_event_buckets          32                  per_event: buckets per client; more names share one
=========================  ==================  ================================================

Dynamic namespaces (``namespace=re.compile(...)`` or a function): at most
:data:`MAX_CHILD_NAMESPACES` concrete child namespaces are remembered; past it, the
children without clients are forgotten, and when none can be, a new child is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "DEFAULTS",
    "ServerOptions",
    "RecoveryOptions",
    "RateLimitOptions",
    "RATE_LIMIT_DEFAULTS",
    "MAX_CHILD_NAMESPACES",
    "TRANSPORTS",
    "ASYNC_MODES",
    "Origins",
    "Cookie",
    "ADMIN_NAMESPACE",
    "ADMIN_STATS_INTERVAL",
    "ADMIN_MODES",
]

TRANSPORTS = ("polling", "websocket")
ASYNC_MODES = ("threading", "eventlet", "gevent")

# ``sio_wsgi.run`` / ``python -m sio_wsgi`` (the runner, see sio_wsgi/runner.py)
#: address and port served by default
RUN_HOST = "127.0.0.1"
RUN_PORT = 5000
#: seconds the runner gives in-flight requests after ``Server.shutdown()``
RUN_GRACE = 5.0
#: how often (seconds) the runner's main loop looks for a stop signal
RUN_POLL = 0.1
#: seconds between the development reloader's scans for changed files
RUN_RELOAD_INTERVAL = 1.0
#: gunicorn worker class per async mode (``--workers N``)
GUNICORN_WORKER_CLASS = {
    "gevent": "gevent",
    "eventlet": "sio_wsgi.gunicorn.EventletWorker",
    "threading": "gthread",
}
#: threads per gunicorn ``gthread`` worker (each WebSocket holds one)
GUNICORN_THREADS = 100

Origins = None | str | Sequence[str] | Callable[[str], bool]
"""``cors_allowed_origins``: None (same origin only), ``'*'``, one origin, a list,
or a callable taking the request's origin."""

Cookie = None | str | Mapping[str, object]
"""``cookie``: None (no cookie), a cookie name, or a dict with ``name`` and attributes."""

MAX_CHILD_NAMESPACES = 10_000
"""Concrete namespaces of dynamic families remembered at once (see the module docstring)."""

RATE_LIMIT_ON_EXCEED = ("drop", "disconnect")


@dataclasses.dataclass(frozen=True)
class RateLimitOptions:
    """The rate limiter's settings (see the module docstring for each field)."""

    rate: float = 10.0
    burst: int = 20
    per_event: bool = False
    on_exceed: str = "drop"
    max_event_buckets: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.rate, (int, float)) or isinstance(self.rate, bool) or self.rate <= 0:
            raise ValueError("rate must be a positive number of events per second")
        for name in ("burst", "max_event_buckets"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.on_exceed not in RATE_LIMIT_ON_EXCEED:
            raise ValueError(f"on_exceed must be one of {RATE_LIMIT_ON_EXCEED}")
        object.__setattr__(self, "rate", float(self.rate))


RATE_LIMIT_DEFAULTS = RateLimitOptions()


@dataclasses.dataclass(frozen=True)
class RecoveryOptions:
    """Connection state recovery (see :mod:`sio_wsgi.recovery`); the module
    docstring lists each field."""

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True
    max_buffered_bytes: int = 16_000_000
    max_replay_bytes: int = 1_000_000

    #: the Node server's option names, accepted too
    NODE_NAMES: ClassVar[dict[str, str]] = {
        "maxDisconnectionDuration": "max_disconnection_duration",
        "skipMiddlewares": "skip_middlewares",
    }

    def __post_init__(self) -> None:
        duration = self.max_disconnection_duration
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration <= 0:
            raise ValueError("max_disconnection_duration must be a positive number of seconds")
        object.__setattr__(self, "max_disconnection_duration", float(duration))
        for name in ("max_buffered_bytes", "max_replay_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")

    @classmethod
    def from_option(cls, value: object) -> RecoveryOptions | None:
        """The ``connection_state_recovery`` option as given: None/False (off), True
        (defaults), a mapping of fields (Node's names too) or a RecoveryOptions."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValueError("connection_state_recovery must be a bool or a dict of options")
        known = {f.name for f in dataclasses.fields(cls)}
        fields: dict[str, Any] = {}
        for key, item in value.items():
            name = cls.NODE_NAMES.get(str(key), str(key))
            if name not in known:
                raise ValueError(f"unknown connection_state_recovery option {key!r}")
            if key == "maxDisconnectionDuration" and isinstance(item, (int, float)):
                fields[name] = item / 1000  # milliseconds, as in the Node server
            else:
                fields[name] = item
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """All server options; see the module docstring for each field."""

    async_mode: str | None = None
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    max_http_buffer_size: int = 1_000_000
    allow_upgrades: bool = True
    transports: tuple[str, ...] = TRANSPORTS
    cors_allowed_origins: Origins = None
    cors_credentials: bool = True
    cookie: Cookie = None
    http_compression: bool = True
    compression_threshold: int = 1024
    upgrade_timeout: float = 10.0
    connect_timeout: float = 45.0
    always_connect: bool = False
    #: a name or a ``protocol.serializers.Serializer`` (a layer above: not named here)
    serializer: Any = "default"
    max_attachments: int = 10
    max_json_depth: int = 64
    max_pending_bytes: int = 16_000_000
    async_handlers: bool = True
    serial_handlers: bool = False
    namespaces: str | Sequence[str] | None = None
    http_body_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    per_message_deflate: bool = False
    deflate_threshold: int = 1024
    #: None (off), or True / a dict, made a :class:`RecoveryOptions` here
    connection_state_recovery: RecoveryOptions | Mapping[str, Any] | bool | None = None
    #: see :mod:`sio_wsgi.transports.keepalive`
    polling_keepalive: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "connection_state_recovery",
            RecoveryOptions.from_option(self.connection_state_recovery),
        )
        if self.async_mode is not None and self.async_mode not in ASYNC_MODES:
            raise ValueError(
                f"async_mode must be one of {ASYNC_MODES} or None, not {self.async_mode!r}"
            )
        transports = (
            (self.transports,) if isinstance(self.transports, str) else tuple(self.transports)
        )
        if not transports or any(t not in TRANSPORTS for t in transports):
            raise ValueError(f"transports must be a non-empty subset of {TRANSPORTS}")
        object.__setattr__(self, "transports", transports)
        for name in (
            "ping_interval",
            "ping_timeout",
            "upgrade_timeout",
            "connect_timeout",
            "http_body_timeout",
            "shutdown_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")
            object.__setattr__(self, name, float(value))
        for name in (
            "max_http_buffer_size",
            "compression_threshold",
            "max_attachments",
            "max_json_depth",
            "max_pending_bytes",
            "deflate_threshold",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")

    def replace(self, **changes: Any) -> ServerOptions:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


DEFAULTS = ServerOptions()

ADMIN_NAMESPACE = "/admin"
"""The namespace :meth:`Server.instrument` serves the Admin UI on (Node's ``namespaceName``)."""

ADMIN_STATS_INTERVAL = 2.0
"""Seconds between two ``server_stats`` messages of :meth:`Server.instrument`."""

ADMIN_MODES = ("development", "production")
"""``mode`` of :meth:`Server.instrument`: development sends every socket and event."""
# ------------------------------------------------------------------ metrics (sio_wsgi.metrics)

METRICS_HANDLER_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the handler duration histogram's buckets."""

METRICS_ACK_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds (seconds) of the ack round-trip histogram's buckets."""

METRICS_MAX_LABEL_VALUES = 100
"""Distinct namespaces the metrics keep apart; the others are counted as ``other``."""

METRICS_OTHER_LABEL = "other"
"""The namespace label of everything past :data:`METRICS_MAX_LABEL_VALUES`."""

METRICS_PATH = "/metrics"
"""Where ``WSGIApp(sio, metrics_path=True)`` serves the metrics."""
