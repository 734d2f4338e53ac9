"""The server of tests/recovery: connection state recovery on, a ticker per client.

Events: ``start(count, interval_ms)`` emits ``tick n`` (n = 0..count-1) to the
client's room ``ticks`` from a background task; ``whoami()`` acks the client's
sid, whether it was recovered, its session, its rooms and the serving process.
HTTP: ``GET /health``; ``GET /ticks?count=N&interval_ms=M`` starts the same ticker
(to the room, whichever node its clients are on).

``RECOVERY_REDIS_URL`` and ``RECOVERY_CHANNEL`` set: a ``RedisManager`` joins the
nodes, and recovery state lives in Redis (any node recovers any client).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from typing import Any

import sio_wsgi

logging.basicConfig(level=os.environ.get("RECOVERY_LOG", "WARNING"))

_manager = None
if os.environ.get("RECOVERY_REDIS_URL"):
    from sio_wsgi.managers import RedisManager

    _manager = RedisManager(
        os.environ["RECOVERY_REDIS_URL"],
        channel=os.environ.get("RECOVERY_CHANNEL", "recovery"),
        heartbeat_interval=1.0,
    )

sio = sio_wsgi.Server(
    client_manager=_manager,
    cors_allowed_origins="*",
    connection_state_recovery={"max_disconnection_duration": 30},
    ping_interval=float(os.environ.get("RECOVERY_PING", "25")),
    ping_timeout=float(os.environ.get("RECOVERY_PING", "20")),
)


@sio.event
def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    if not sio.is_recovered(sid):
        sio.enter_room(sid, "ticks")
        sio.save_session(sid, {"name": (auth or {}).get("name")})


def _ticker(count: int, interval_ms: float) -> None:
    for n in range(int(count)):
        while True:
            try:
                sio.emit("tick", n, to="ticks")
                break
            except sio_wsgi.BusError:  # the broker restarts: the same tick again
                sio.sleep(0.2)
        sio.sleep(interval_ms / 1000)


@sio.event
def start(sid: str, count: int, interval_ms: float) -> None:
    sio.start_background_task(_ticker, count, interval_ms)


@sio.event
def whoami(sid: str) -> dict[str, Any]:
    return {
        "sid": sid,
        "recovered": sio.is_recovered(sid),
        "session": sio.get_session(sid),
        "rooms": sorted(sio.rooms(sid)),
        "pid": os.getpid(),
    }


def _health(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") == "/ticks":
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        count = int(query.get("count", ["100"])[0])
        interval = float(query.get("interval_ms", ["3"])[0])
        sio.start_background_task(_ticker, count, interval)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = sio_wsgi.WSGIApp(sio, _health)
