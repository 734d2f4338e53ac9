"""The official Socket.IO Admin UI on a sio_wsgi server.

``sio.instrument()`` serves the UI's protocol on ``/admin``; the UI itself is the
static ``ui/dist`` of the npm package ``@socket.io/admin-ui`` (``npm install``
here), served at ``/admin-ui/`` by ``WSGIApp(static_files=...)``. A demo page at
``/`` connects a client and joins the room named in its URL (``/?room=red``).

Run ``./run.sh`` (or ``npm install && python app.py``), open
http://127.0.0.1:5000/?room=red in a tab or two, then http://127.0.0.1:5000/admin-ui/
and log in with server URL http://127.0.0.1:5000, user ``admin``, password
``changeit`` (``ADMIN_USERNAME`` / ``ADMIN_PASSWORD`` change them;
``ADMIN_PASSWORD_HASH`` takes a bcrypt hash instead, as the Node server does).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sio_wsgi

HERE = Path(__file__).resolve().parent
DIST = HERE / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"

sio = sio_wsgi.Server()
admin = sio.instrument(
    auth={
        "username": os.environ.get("ADMIN_USERNAME", "admin"),
        "password": os.environ.get("ADMIN_PASSWORD_HASH")
        or os.environ.get("ADMIN_PASSWORD", "changeit"),
    },
    mode=os.environ.get("ADMIN_MODE", "development"),
)


@sio.event
def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    """Put the client in the room it asked for (``auth = {"room": ...}``)."""
    room = auth.get("room") if isinstance(auth, dict) else None
    if isinstance(room, str) and room:
        sio.enter_room(sid, room)


@sio.event
def chat(sid: str, text: str) -> str:
    """Echo a message to the sender's rooms (shown live in the UI's events)."""
    for room in sio.rooms(sid):
        if room != sid:
            sio.emit("chat", {"from": sid, "text": text}, to=room)
    return "ok"


def api(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``/health`` (readiness) and ``/sockets`` (the sids connected to ``/``)."""
    path = environ.get("PATH_INFO", "")
    if path == "/health":
        body: Any = {"ok": True, "async_mode": sio.async_mode}
    elif path == "/sockets":
        body = {"sids": sorted(sio.fetch_sids(namespace="/"))}
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


app = sio_wsgi.WSGIApp(
    sio,
    api,
    static_files={
        "/": str(HERE / "static" / "index.html"),
        "/admin-ui": str(DIST),
    },
)


def main() -> None:
    """Run the app on werkzeug's threaded development server."""
    parser = argparse.ArgumentParser(description="sio_wsgi Admin UI example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not DIST.is_dir():
        raise SystemExit(f"{DIST} is missing: run npm install in {HERE}")
    from werkzeug.serving import run_simple

    print(f"Admin UI on http://{args.host}:{args.port}/admin-ui/ (Ctrl-C to stop)", flush=True)
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
