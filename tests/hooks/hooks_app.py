"""The server of tests/hooks: every hook of issue 14 on one ``sio_wsgi.Server``.

- ``/``: a connect middleware refuses ``auth.token == "bad"`` (``unauthorized``, data
  ``{"code": 401}``) and puts ``auth.user`` in the session; an event middleware drops
  ``forbidden`` (an ``error`` event) and upper-cases the argument of ``shout``; ``on_any``
  and ``on_outgoing`` record per sid what they saw (``seen`` / ``outgoing`` ack it).
- ``/limited``: at most 3 events at once, 1 per second after (dropped with ``error``);
  ``/strict``: 2 at once, then the client is disconnected.
- ``/dyn-<n>`` (a regular expression family): the connect handler joins the room
  ``auth.room``; ``broadcast(text)`` emits ``said`` to room ``r`` of the same child.
HTTP: ``GET /health``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import sio_wsgi

logging.basicConfig(level=os.environ.get("HOOKS_LOG", "WARNING"))

sio = sio_wsgi.Server(cors_allowed_origins="*", namespaces=["/", "/limited", "/strict"])

_seen: dict[str, list[str]] = {}
_outgoing: dict[str, list[str]] = {}


@sio.use
def authenticate(sid: str, environ: dict[str, Any], auth: Any) -> None:
    auth = auth or {}
    if auth.get("token") == "bad":
        raise sio_wsgi.ConnectionRefusedError("unauthorized", {"code": 401})
    sio.save_session(sid, {"user": auth.get("user")})
    environ["hooks.user"] = auth.get("user")


@sio.use_event
def guard(sid: str, event: str, args: list[Any]) -> tuple[str, list[Any]] | None:
    if event == "forbidden":
        raise sio_wsgi.EventRejected("forbidden event", {"event": event})
    if event == "shout":
        return "echo", [str(a).upper() for a in args]
    return None


@sio.on_any
def record_any(event: str, namespace: str, sid: str, *args: Any) -> None:
    _seen.setdefault(sid, []).append(event)


@sio.on_outgoing
def record_outgoing(sid: str, namespace: str, event: str, args: list[Any]) -> None:
    _outgoing.setdefault(sid, []).append(event)


@sio.event
def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    sio.emit("welcome", {"user": environ.get("hooks.user")}, to=sid)


@sio.event
def disconnect(sid: str, reason: str) -> None:
    _seen.pop(sid, None)
    _outgoing.pop(sid, None)


@sio.event
def echo(sid: str, *args: Any) -> list[Any]:
    return list(args)


@sio.event
def forbidden(sid: str) -> str:
    return "never"


@sio.event
def whoami(sid: str) -> dict[str, Any]:
    return {"sid": sid, "session": sio.get_session(sid)}


@sio.event
def seen(sid: str) -> list[str]:
    return list(_seen.get(sid, []))


@sio.event
def outgoing(sid: str) -> list[str]:
    return list(_outgoing.get(sid, []))


sio.rate_limit(rate=1, burst=3, namespace="/limited")
sio.rate_limit(rate=1, burst=2, on_exceed="disconnect", namespace="/strict")


@sio.on("hit", namespace="/limited")
def hit_limited(sid: str, n: int) -> int:
    sio.emit("hit_ok", n, to=sid, namespace="/limited")
    return n


@sio.on("hit", namespace="/strict")
def hit_strict(sid: str, n: int) -> int:
    sio.emit("hit_ok", n, to=sid, namespace="/strict")
    return n


DYNAMIC = re.compile(r"^/dyn-\d+$")


@sio.on("connect", namespace=DYNAMIC)
def dyn_connect(namespace: str, sid: str, environ: dict[str, Any], auth: Any) -> None:
    sio.enter_room(sid, (auth or {}).get("room", "none"), namespace=namespace)


@sio.on("broadcast", namespace=DYNAMIC)
def dyn_broadcast(namespace: str, sid: str, text: str) -> str:
    sio.emit("said", {"ns": namespace, "text": text}, to="r", namespace=namespace)
    return namespace


def _health(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = sio_wsgi.WSGIApp(sio, _health)
