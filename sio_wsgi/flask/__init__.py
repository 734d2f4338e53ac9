"""Flask integration.

Two ways to use sio_wsgi with Flask:

- :class:`SocketIO`: a Flask extension with Flask-SocketIO's API, so migrating is
  an import change (``from sio_wsgi.flask import SocketIO, emit, join_room``);
  docs/guide/flask_socketio.md has the differences.
- :class:`FlaskContext`: a plain :class:`sio_wsgi.Server` whose handlers (called
  with a sid, python-socketio style) run inside Flask's contexts.
"""

from __future__ import annotations

from sio_wsgi.exceptions import ConnectionRefusedError
from sio_wsgi.flask.context import FlaskContext
from sio_wsgi.flask.extension import SocketIO
from sio_wsgi.flask.helpers import (
    call,
    close_room,
    disconnect,
    emit,
    join_room,
    leave_room,
    rooms,
    send,
)
from sio_wsgi.flask.namespace import Namespace
from sio_wsgi.flask.test_client import SocketIOTestClient

__all__ = [
    "SocketIO",
    "Namespace",
    "SocketIOTestClient",
    "ConnectionRefusedError",
    "FlaskContext",
    "emit",
    "send",
    "call",
    "join_room",
    "leave_room",
    "close_room",
    "rooms",
    "disconnect",
]
