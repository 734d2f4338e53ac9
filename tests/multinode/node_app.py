"""One node of a test cluster: a sio_wsgi server on a pub/sub manager.

Configured by environment variables (the test harness sets them):

- ``MN_BROKER``: ``redis`` or ``kombu``; ``MN_URL``: the broker URL;
  ``MN_CHANNEL``: the bus channel (unique per test); ``MN_NAME``: the node's name;
  ``MN_RELAY=0``: the manager relays no sessions (sticky routing required);
  ``MN_ORIGINS``: comma-separated CORS origins (default ``*``);
  ``MN_BODY_TIMEOUT``: the server's ``http_body_timeout`` (default 10 s);
  ``MN_PING``: ``interval,timeout`` in seconds (default ``5,5``);
  ``MN_RELAY_ADDRESS``: the manager's ``relay_address`` (``none``: None);
  ``MN_ADMIN``: ``user:password``: ``sio.instrument()`` with these credentials.

Socket.IO events (each acks its result):

- ``node()`` -> the node's name; ``pid()`` -> the serving process; ``echo(data)``
  acks ``data`` back (binary too); ``join(room)``; ``say(room, text)`` emits
  ``said`` to a room (``room=None``: everyone) and acks ``"sent"`` or
  ``{"error": ...}`` when the broker is down.
- ``add(sid, room)`` / ``remove(sid, room)`` / ``kick(sid)``: act on any client.
- ``ask(sid, q)``: ``call("question", q)`` on any client, acks its answer;
  ``ask_cb(sid, q)``: the same with ``emit(callback=)``; the answer arrives as
  an ``answered`` event.
- ``members(room)`` / ``rooms_of(sid)``: cluster-wide queries.
- ``shout(payload)``: ``server_side_emit("shout")``; other nodes emit ``heard``
  to their own clients.

HTTP ``GET /health``: the manager's health as JSON (503 while disconnected).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import sio_wsgi
from sio_wsgi.managers.pubsub import BusError, PubSubManager

__all__ = ["app", "sio", "manager"]

logging.basicConfig(
    level=os.environ.get("MN_LOG", "INFO"),
    format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
)
NAME = os.environ.get("MN_NAME", "node")
BUS_OPTIONS: dict[str, Any] = {
    "channel": os.environ.get("MN_CHANNEL", "socketio"),
    "heartbeat_interval": 1.0,
    "reconnect_delay": (0.1, 1.0),
    "publish_timeout": 1.0,
    "poll_interval": 0.2,
    # MN_RELAY=0: no session relay (requests for other nodes' sessions get a 400)
    "relay": os.environ.get("MN_RELAY", "1") != "0",
}
# MN_RELAY_ADDRESS: the manager's relay_address ("none": relay through the broker only)
if "MN_RELAY_ADDRESS" in os.environ:
    _address = os.environ["MN_RELAY_ADDRESS"]
    BUS_OPTIONS["relay_address"] = None if _address == "none" else _address


def _manager() -> PubSubManager:
    url = os.environ["MN_URL"]
    if os.environ.get("MN_BROKER") == "kombu":
        from sio_wsgi.managers.kombu import KombuManager

        return KombuManager(url, **BUS_OPTIONS)
    from sio_wsgi.managers.redis import RedisManager

    return RedisManager(url, **BUS_OPTIONS)


manager = _manager()
sio = sio_wsgi.Server(
    client_manager=manager,
    cors_allowed_origins=os.environ["MN_ORIGINS"].split(",") if "MN_ORIGINS" in os.environ else "*",
    ping_interval=float(os.environ.get("MN_PING", "5,5").split(",")[0]),
    ping_timeout=float(os.environ.get("MN_PING", "5,5").split(",")[1]),
    http_body_timeout=float(os.environ.get("MN_BODY_TIMEOUT", "10")),
)


# MN_ADMIN=user:password: the Admin UI's protocol on /admin (tests/multinode/test_admin_cluster.py)
if os.environ.get("MN_ADMIN"):
    _user, _password = os.environ["MN_ADMIN"].split(":", 1)
    sio.instrument(
        auth={"username": _user, "password": _password},
        server_id=NAME,
        server_stats_interval=0.5,
    )


@sio.event
def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    """Tell the client which node it reached."""
    sio.emit("welcome", {"node": NAME, "sid": sid}, to=sid)


@sio.event
def node(sid: str) -> str:
    """The node's name."""
    return NAME


@sio.event
def pid(sid: str) -> int:
    """The serving process (with several workers: the one that owns the session)."""
    return os.getpid()


@sio.event
def echo(sid: str, data: Any) -> Any:
    """Ack the data back (binary included)."""
    return data


@sio.event
def join(sid: str, room: str) -> str:
    """Join a room."""
    sio.enter_room(sid, room)
    return NAME


@sio.event
def say(sid: str, room: str | None, text: Any) -> Any:
    """Emit ``said`` to a room (everyone when ``room`` is None)."""
    try:
        sio.emit("said", {"node": NAME, "from": sid, "text": text}, room=room)
    except BusError as exc:
        return {"error": str(exc)}
    return "sent"


@sio.event
def add(sid: str, target: str, room: str) -> str:
    """Put any client in a room."""
    sio.enter_room(target, room)
    return "ok"


@sio.event
def remove(sid: str, target: str, room: str) -> str:
    """Take any client out of a room."""
    sio.leave_room(target, room)
    return "ok"


@sio.event
def kick(sid: str, target: str) -> str:
    """Disconnect any client."""
    sio.disconnect(target)
    return "ok"


@sio.event
def ask(sid: str, target: str, question: Any) -> Any:
    """``call()`` any client and ack its answer."""
    return sio.call("question", question, to=target, timeout=5)


@sio.event
def ask_cb(sid: str, target: str, question: Any) -> str:
    """``emit(callback=)`` to any client; its answer comes back as ``answered``."""

    def answered(*args: Any) -> None:
        sio.emit("answered", {"node": NAME, "args": list(args)}, to=sid)

    sio.emit("question", question, to=target, callback=answered)
    return "asked"


@sio.event
def members(sid: str, room: str | None) -> list[str]:
    """Sids in a room, cluster-wide."""
    return sorted(sio.fetch_sids(room, timeout=2))


@sio.event
def rooms_of(sid: str, target: str) -> list[str]:
    """Rooms of any client, cluster-wide."""
    return sorted(sio.fetch_rooms(target, timeout=2))


@sio.event
def shout(sid: str, payload: Any) -> str:
    """A server-to-server event."""
    sio.server_side_emit("shout", payload)
    return NAME


@sio.on_server_event("shout")
def on_shout(payload: Any) -> None:
    """Relay a server-to-server event to this node's clients."""
    sio.emit("heard", {"node": NAME, "payload": payload}, ignore_queue=True)


def _health(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    health = dataclasses.asdict(manager.health())
    relay = getattr(sio.eio, "relay", None)
    health.update(
        node=NAME,
        mode=sio.driver.name,
        pid=os.getpid(),
        relay=(
            {**relay.stats, "direct_sent": health["direct_sent"]} if relay is not None else None
        ),
    )
    status = "200 OK" if health["connected"] else "503 Service Unavailable"
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(health).encode()]


def _blast(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``GET /blast?n=N``: emit ``bench`` N times to everyone (for bench/)."""
    from urllib.parse import parse_qs

    query = parse_qs(environ.get("QUERY_STRING", ""))
    count = int(query.get("n", ["1000"])[0])
    payload = "x" * int(query.get("size", ["64"])[0])
    started = time.perf_counter()
    for i in range(count):
        sio.emit("bench", {"i": i, "p": payload})
    body = {"sent": count, "seconds": time.perf_counter() - started}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def _fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") == "/health":
        return _health(environ, start_response)
    if environ.get("PATH_INFO") == "/blast":
        return _blast(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


app = sio_wsgi.WSGIApp(sio, _fallback)
