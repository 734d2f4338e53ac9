"""A small chat: a Flask app wrapped by sio_wsgi.WSGIApp.

Run it (from the repository root) with ``bash examples/demo/run.sh``, then open
http://127.0.0.1:5000 in two browser tabs.
"""

from __future__ import annotations

import argparse
import os

from flask import Flask, render_template, request

import sio_wsgi

sio = sio_wsgi.Server(async_mode=os.environ.get("SIO_ASYNC_MODE") or None)
flask_app = Flask(__name__)
app = sio_wsgi.WSGIApp(
    sio, flask_app, client_js_path=os.path.join(os.path.dirname(__file__), "node_modules",
                                                "socket.io-client", "dist")
)


@flask_app.route("/")
def index() -> str:
    return render_template("index.html")


@flask_app.post("/announce")
def announce() -> dict[str, bool]:
    """Plain HTTP route that reaches every connected browser."""
    sio.emit("chat", {"from": "server", "text": request.form.get("text", "(announcement)")})
    return {"ok": True}


@sio.event
def connect(sid: str, environ: dict[str, object], auth: dict[str, str] | None) -> None:
    name = (auth or {}).get("name") or f"guest-{sid[:4]}"
    sio.save_session(sid, {"name": name})
    sio.emit("chat", {"from": "server", "text": f"{name} joined"}, skip_sid=sid)


@sio.event
def chat(sid: str, text: str) -> str:
    name = sio.get_session(sid)["name"]
    sio.emit("chat", {"from": name, "text": str(text)[:500]}, skip_sid=sid)
    return "delivered"


@sio.event
def typing(sid: str) -> None:
    sio.emit("typing", sio.get_session(sid)["name"], skip_sid=sid, volatile=True)


@sio.event
def disconnect(sid: str, reason: str) -> None:
    sio.emit("chat", {"from": "server", "text": f"someone left ({reason})"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    from werkzeug.serving import run_simple

    print(f"chat demo on http://{args.host}:{args.port}  (Ctrl-C to stop)")
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
