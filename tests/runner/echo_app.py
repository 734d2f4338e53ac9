"""The application the runner tests serve: ``python -m sio_wsgi tests.runner.echo_app:app``.

- ``app``: a :class:`sio_wsgi.WSGIApp` whose Server echoes ``echo`` events back;
  ``GET /health`` answers ``{"ok": true, "async_mode": ...}``;
- ``sio``: that Server alone; ``plain``: the WSGI application without Socket.IO
  (``--server tests.runner.echo_app:sio`` wraps it);
- ``RUNNER_MANAGER_URL`` set: the Server has a ``RedisManager`` on that URL;
- every disconnect handler writes ``disconnect <reason>`` to stdout (the shutdown test reads it);
- ``RUNNER_VERSION`` is echoed in ``/health`` (the reloader test edits a copy of this file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import sio_wsgi

RUNNER_VERSION = "1"

_manager_url = os.environ.get("RUNNER_MANAGER_URL")
sio = sio_wsgi.Server(
    client_manager=sio_wsgi.RedisManager(_manager_url) if _manager_url else None,
    shutdown_timeout=3,
)


@sio.on("echo")
def echo(sid: str, data: Any) -> Any:
    """Send the data back, and return it as the ack."""
    sio.emit("echo", data, to=sid)
    return data


@sio.on("disconnect")
def disconnect(sid: str, reason: str) -> None:
    """Say so on stdout (a test reads the server's output)."""
    print(f"disconnect {reason}", flush=True)


def plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/health`` and a 404 for the rest."""
    if environ.get("PATH_INFO") != "/health":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    body = json.dumps(
        {"ok": True, "async_mode": sio.async_mode, "version": RUNNER_VERSION, "pid": os.getpid()}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


app = sio_wsgi.WSGIApp(sio, plain)
