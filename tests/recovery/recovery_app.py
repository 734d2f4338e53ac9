"""The server of tests/recovery: connection state recovery on, a ticker per client.

Events: ``start(count, interval_ms)`` emits ``tick n`` (n = 0..count-1) to the
client's room ``ticks`` from a background task; ``whoami()`` acks the client's
sid, whether it was recovered, its session and its rooms; ``drop_transport()``
makes the server cut the client's transport (no close packet). ``GET /health``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import sio_wsgi

logging.basicConfig(level=os.environ.get("RECOVERY_LOG", "WARNING"))

sio = sio_wsgi.Server(
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


@sio.event
def start(sid: str, count: int, interval_ms: float) -> None:
    def ticker() -> None:
        for n in range(int(count)):
            sio.emit("tick", n, to="ticks")
            sio.sleep(interval_ms / 1000)

    sio.start_background_task(ticker)


@sio.event
def whoami(sid: str) -> dict[str, Any]:
    return {
        "sid": sid,
        "recovered": sio.is_recovered(sid),
        "session": sio.get_session(sid),
        "rooms": sorted(sio.rooms(sid)),
    }


def _health(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = sio_wsgi.WSGIApp(sio, _health)
