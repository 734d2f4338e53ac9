"""A Flask-SocketIO style app served by ``socketio.run(app, ...)``, as its users start one:
``python -m tests.flask_ext.run_app PORT [ASYNC_MODE]``.

``echo`` is answered in the handler's Flask contexts (``request.sid``) with an event and
the ack; ``GET /health`` says the async mode; the disconnect handler prints its reason.
"""

from __future__ import annotations

import sys
from typing import Any

if len(sys.argv) > 2 and sys.argv[2] == "gevent":  # patch first, as a gevent app does
    from gevent import monkey

    monkey.patch_all()

import flask

from sio_wsgi.flask import SocketIO, emit

app = flask.Flask(__name__)
socketio = SocketIO(app, shutdown_timeout=3)


@app.get("/health")
def health() -> dict[str, Any]:
    """Up, and in which async mode."""
    return {"ok": True, "async_mode": socketio.async_mode}


@socketio.on("echo")
def echo(data: Any) -> Any:
    """Send it back to the sender (the context's client) and ack it with its sid."""
    emit("echo", data)
    return {"data": data, "sid": flask.request.sid}  # type: ignore[attr-defined]


@socketio.on("disconnect")
def disconnect(reason: str) -> None:
    """Say so on stdout."""
    print(f"disconnect {reason}", flush=True)


if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_output=True)
