"""A small sio_wsgi + Flask app for the deployment tests.

``async_mode`` is left to auto-detection, so each server also checks that the
right driver is picked (eventlet / gevent when the process is patched).

- Socket.IO on ``/``: ``echo(*args)`` acks its arguments; ``whoami()`` acks the
  driver name; on connect the server emits ``welcome``.
- Flask: ``GET /emit/<sid>`` emits ``server_event`` ``{"from": "flask"}`` to that
  client from a plain view; ``GET /health`` answers ``ok``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

import sio_wsgi

__all__ = ["app", "flask_app", "sio"]

logging.basicConfig(level=os.environ.get("SIO_DEPLOY_LOG", "WARNING"))

#: a short body deadline, so that test_slow_bodies_are_cut runs in seconds
BODY_TIMEOUT = 1.5
sio = sio_wsgi.Server(
    cors_allowed_origins="*",
    ping_interval=5,
    ping_timeout=5,
    http_body_timeout=BODY_TIMEOUT,
    # unset: detected; the fail-fast test sets a green mode under a gthread worker
    async_mode=os.environ.get("SIO_DEPLOY_ASYNC_MODE") or None,
)
flask_app = Flask(__name__)


@sio.event
def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    """Greet every client.

    :param sid: the client's Socket.IO sid.
    :param environ: the WSGI environ of the handshake.
    :param auth: the client's auth payload.
    """
    sio.emit("welcome", {"sid": sid}, to=sid)


@sio.event
def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    """Ack the arguments back.

    :param sid: the client's sid.
    :param args: anything.
    :returns: the same arguments.
    """
    return args


@sio.event
def whoami(sid: str) -> str:
    """Ack the name of the driver the server picked.

    :param sid: the client's sid.
    :returns: 'threading', 'eventlet' or 'gevent'.
    """
    return str(getattr(sio, "async_mode", None) or sio.driver.name)


@flask_app.route("/emit/<sid>")
def emit(sid: str) -> str:
    """Emit ``server_event`` to ``sid`` from a Flask view.

    :param sid: the target client.
    :returns: ``ok``.
    """
    sio.emit("server_event", {"from": "flask"}, to=sid)
    return "ok"


@flask_app.route("/health")
def health() -> str:
    """Liveness check.

    :returns: ``ok``.
    """
    return "ok"


app = sio_wsgi.WSGIApp(sio, flask_app)
