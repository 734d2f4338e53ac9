"""The benchmark application, the same on sio_wsgi and on python-socketio.

Loaded by gunicorn as ``bench.app:app``; the environment picks the implementation::

    BENCH_IMPL=sio_wsgi BENCH_ASYNC=gevent gunicorn -k gevent -w 1 bench.app:app
    BENCH_IMPL=socketio BENCH_ASYNC=threading gunicorn -k gthread --threads 600 bench.app:app

Handlers on namespace ``/``:

- ``echo(data)``: acks ``data`` back (text or binary).
- ``bcast(data)``: emits ``fan`` with ``data`` to every connected client.

sio_wsgi runs with ``per_message_deflate=True`` (threshold 1024 bytes): a client offering
permessage-deflate gets it, the others are unaffected.

Everything else (HTTP paths outside ``/socket.io/``) answers ``200 ok``.

Diagnosis only (``python -m bench.memory``): with ``BENCH_TRACEMALLOC=1`` the worker traces
Python allocations, ``GET /_bench/memory?mark`` remembers a snapshot and ``GET /_bench/memory``
answers the growth since then by source file, as JSON. ``BENCH_GC=off`` disables the cyclic
garbage collector in the worker, to measure what it costs a scenario.

With ``BENCH_REDIS_CHANNEL`` set, the server gets a Redis client manager on that channel
(``BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``), so every node started with the same
channel shares its broadcasts (the cross-node fanout scenario). Unset: no manager, one node.
With a channel, ``GET /_bench/relay`` answers, as JSON, the answering process's ``pid``, its
bus ``host_id``, ``requests`` (the Socket.IO HTTP requests its clients sent it, WebSocket
upgrades included; requests relayed to it from other processes not counted) and ``relay`` (the
session relay's counters, ``Relay.stats``; None for python-socketio): the relay scenarios read
them from every worker to report the fraction of requests that were relayed (sio_wsgi then
runs with ``polling_keepalive=False``, so that every request passes the counter).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["build_app", "app"]

logger = logging.getLogger(__name__)

PING_INTERVAL = 25
PING_TIMEOUT = 20
MAX_BUFFER = 10_000_000
REDIS_URL = "redis://127.0.0.1:6379/0"


if os.environ.get("BENCH_GC") == "off":
    gc.disable()
if os.environ.get("BENCH_TRACEMALLOC") == "1":
    tracemalloc.start()

_marked: list[tracemalloc.Snapshot] = []


def _memory(query: str) -> bytes:
    """``mark``: remember a snapshot; otherwise the growth since the mark, by file (JSON),
    or by source line with ``lines``."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    if query == "mark" or not _marked:
        _marked[:] = [snapshot]
        return b"{}"
    by_line = query == "lines"
    diffs = snapshot.compare_to(_marked[0], "lineno" if by_line else "filename")
    return json.dumps(
        {
            "traced_growth": sum(d.size_diff for d in diffs),
            "by_file": [
                [
                    f"{d.traceback[0].filename}:{d.traceback[0].lineno}"
                    if by_line
                    else d.traceback[0].filename,
                    d.size_diff,
                    d.count_diff,
                ]
                for d in diffs[:40]
                if d.size_diff
            ],
        }
    ).encode()


def _plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer any non-Socket.IO request with ``200 ok`` (and ``/_bench/memory``, see above).

    :param environ: the WSGI environ.
    :param start_response: the WSGI start_response.
    :returns: the body.
    """
    if environ.get("PATH_INFO") == "/_bench/memory" and tracemalloc.is_tracing():
        body = _memory(environ.get("QUERY_STRING", ""))
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _server_module(impl: str) -> Any:
    """Import the Socket.IO implementation.

    :param impl: ``'sio_wsgi'`` or ``'socketio'``.
    :returns: the module.
    """
    if impl == "socketio":
        import socketio

        return socketio
    import sio_wsgi

    return sio_wsgi


def build_app(
    impl: str, async_mode: str, redis_channel: str | None = None, redis_url: str = REDIS_URL
) -> Any:
    """Build the WSGI app.

    :param impl: ``'sio_wsgi'`` or ``'socketio'`` (python-socketio, the baseline).
    :param async_mode: ``'threading'``, ``'eventlet'`` or ``'gevent'``.
    :param redis_channel: when given, a ``RedisManager`` on this channel is the client manager
        (both implementations take the same arguments); when None, the default in-process one.
    :param redis_url: the Redis server for ``redis_channel``.
    :returns: the WSGI application.
    """
    mod = _server_module(impl)
    extra: dict[str, Any] = {}
    if redis_channel:
        extra["client_manager"] = mod.RedisManager(redis_url, channel=redis_channel)
    if impl == "sio_wsgi" and os.environ.get("BENCH_RECOVERY") == "1":
        extra["connection_state_recovery"] = True  # the +csr servers (bench/run.py)
    metrics = impl == "sio_wsgi" and os.environ.get("BENCH_METRICS") == "1"
    if metrics:
        extra["metrics"] = True  # the +metrics servers (bench/run.py)
    if impl == "sio_wsgi" and redis_channel:
        # the relay scenarios count each node's Socket.IO requests in _Counted, which the
        # requests of a polling keep-alive turn never reach
        extra["polling_keepalive"] = False
    if impl == "sio_wsgi":
        # negotiated only with clients that offer it (echo50_4k_deflate): nothing changes for
        # the others; python-socketio has no such option (its WebSocket layer decides)
        extra["per_message_deflate"] = True
    sio = mod.Server(
        async_mode=async_mode,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        max_http_buffer_size=MAX_BUFFER,
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
        **extra,
    )

    @sio.on("echo")  # type: ignore[untyped-decorator]
    def echo(sid: str, data: Any = None) -> Any:
        return data

    @sio.on("bcast")  # type: ignore[untyped-decorator]
    def bcast(sid: str, data: Any = None) -> None:
        sio.emit("fan", data)

    logger.info("bench app: %s in %s mode, Redis channel %s", impl, async_mode, redis_channel)
    wsgi = (
        mod.WSGIApp(sio, _plain, metrics_path="/metrics") if metrics else mod.WSGIApp(sio, _plain)
    )
    if not redis_channel:
        return wsgi
    return _Counted(wsgi, sio, extra["client_manager"])


class _Counted:
    """The app with a Redis manager: counts its Socket.IO requests, answers ``/_bench/relay``.

    :param app: the Socket.IO WSGI app.
    :param sio: its server.
    :param manager: its client manager.
    """

    def __init__(self, app: Any, sio: Any, manager: Any) -> None:
        self.app = app
        self.sio = sio
        self.manager = manager
        self.requests = 0

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/socket.io/"):
            self.requests += 1
        elif path == "/_bench/relay":
            relay = getattr(getattr(self.sio, "eio", None), "relay", None)
            body = json.dumps(
                {
                    "pid": os.getpid(),
                    "host_id": getattr(self.manager, "host_id", None),
                    "requests": self.requests,
                    "relay": dict(relay.stats) if relay is not None else None,
                }
            ).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return self.app(environ, start_response)  # type: ignore[no-any-return]


app = build_app(
    os.environ.get("BENCH_IMPL", "sio_wsgi"),
    os.environ.get("BENCH_ASYNC", "threading"),
    os.environ.get("BENCH_REDIS_CHANNEL") or None,
    os.environ.get("BENCH_REDIS_URL", REDIS_URL),
)
