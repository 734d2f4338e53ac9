"""A Flask chat app wrapped by :class:`sio_wsgi.WSGIApp`.

Run it from this directory (see README.md)::

    npm install && python app.py                 # http://127.0.0.1:5000
    python -m sio_wsgi app:app --async-mode gevent   # the same, on gevent
    gunicorn -k gevent -w 1 -b 127.0.0.1:5000 app:app

What it shows:

- an ordinary Flask app (routes, Jinja templates, static files, a session
  cookie) with Socket.IO added by wrapping it: ``app = WSGIApp(sio, flask_app)``;
- the chat itself (Socket.IO events, page, ``chat.js``) comes from
  ``examples/chat_core/``, shared with the Django example; this file is the
  Flask glue: routes, the session-based nickname, templates and static files;
- handlers that run inside Flask's app and request contexts
  (:class:`sio_wsgi.flask.FlaskContext`), so the connect handler reads the
  nickname from ``flask.session`` like a view would;
- ``POST /announce``, a plain HTTP route whose view calls ``sio.emit`` to reach
  every connected browser.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

import flask
from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

import sio_wsgi
from sio_wsgi.flask import FlaskContext

__all__ = ["app", "flask_app", "sio", "state", "main"]

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_NAME = 24

# examples/chat_core, the chat shared with the Django example, sits next to this folder.
if os.path.dirname(HERE) not in sys.path:
    sys.path.append(os.path.dirname(HERE))

import chat_core  # noqa: E402

# chat_core's static files are the app's (/static/chat_core/chat.js); its templates
# (chat_core/chat.html, which templates/chat.html extends) are found through a blueprint.
flask_app = Flask(__name__, static_folder=chat_core.STATIC_DIR)
flask_app.register_blueprint(
    Blueprint("chat_core", __name__, template_folder=chat_core.TEMPLATES_DIR)
)
flask_app.config.update(
    # A fixed key keeps people logged in across restarts; set one in production.
    SECRET_KEY=os.environ.get("CHAT_SECRET_KEY") or secrets.token_hex(16),
    # When set, POST /announce needs the header "Authorization: Bearer <token>".
    ANNOUNCE_TOKEN=os.environ.get("CHAT_ANNOUNCE_TOKEN", ""),
    SESSION_COOKIE_SAMESITE="Lax",
)

# async_mode=None picks the right one: gevent or eventlet when gunicorn's worker
# monkey-patched the process, threads otherwise. SIO_ASYNC_MODE forces one.
sio = sio_wsgi.Server(async_mode=os.environ.get("SIO_ASYNC_MODE") or None)
app = sio_wsgi.WSGIApp(
    sio,
    flask_app,
    # The official client, installed by `npm install` next to this file.
    client_js_path=os.path.join(HERE, "node_modules", "socket.io-client", "dist"),
)


def identify(sid: str, environ: dict[str, Any], auth: Any) -> str:
    """Name a new connection: the Flask session's nickname, else ``auth['name']``.

    Runs inside :class:`FlaskContext`, so ``flask.session`` is the cookie session
    of the handshake request.

    :param sid: the connection's sid.
    :param environ: the handshake environ.
    :param auth: the auth object the client sent.
    :returns: the nickname.
    :raises sio_wsgi.ConnectionRefusedError: when there is none.
    """
    name = session.get("name")
    if not name and isinstance(auth, dict):
        name = auth.get("name")
    name = str(name or "").strip()[:MAX_NAME]
    if not name:
        raise sio_wsgi.ConnectionRefusedError("pick a nickname first", {"login": url_for("index")})
    flask.current_app.logger.debug("%s is %s (from %s)", sid, name, flask.request.remote_addr)
    return name


state = chat_core.register(sio, identify, wrap=FlaskContext(flask_app, sio).wrap)


@flask_app.context_processor
def chat_page() -> dict[str, str]:
    """The variables of chat_core's templates, in every template."""
    return chat_core.page_context(
        lambda path: url_for("static", filename=path), "examples/flask_chat/"
    )


@flask_app.get("/")
def index() -> str:
    """The chat page, or the nickname form."""
    name = session.get("name")
    if not name:
        return render_template("login.html")
    return render_template("chat.html", name=name)


@flask_app.post("/login")
def login() -> Response | str:
    """Store the nickname in the session cookie."""
    name = request.form.get("name", "").strip()[:MAX_NAME]
    if not name:
        return render_template("login.html", error="A nickname, please.")
    session["name"] = name
    transport = request.form.get("transport", "")
    target = url_for("index", transport=transport) if transport else url_for("index")
    return redirect(target)


@flask_app.post("/logout")
def logout() -> Response:
    """Forget the nickname."""
    session.clear()
    return redirect(url_for("index"))


@flask_app.post("/announce")
def announce_route() -> tuple[dict[str, Any], int] | dict[str, Any]:
    """Send an announcement to every connected browser.

    Accepts a form field or a JSON body ``text``; for example
    ``curl -d text=hello http://127.0.0.1:5000/announce``.
    """
    token = flask_app.config["ANNOUNCE_TOKEN"]
    if token and request.headers.get("Authorization") != f"Bearer {token}":
        return {"ok": False, "error": "bad token"}, 403
    body = request.get_json(silent=True) or {}
    text = str(request.form.get("text") or body.get("text") or "").strip()
    if not text:
        return {"ok": False, "error": "nothing to announce"}, 400
    return {"ok": True, "sent": chat_core.announce(sio, text)}


@flask_app.get("/health")
def health() -> dict[str, Any]:
    """Liveness probe (used by the tests)."""
    return {"ok": True, "async_mode": sio.driver.name, "online": len(state.names)}


def main() -> None:
    """Serve the app with :func:`sio_wsgi.run` (threads here; see the README for more)."""
    parser = argparse.ArgumentParser(description="sio_wsgi Flask chat example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--debug", action="store_true", help="log every Socket.IO event")
    args = parser.parse_args()
    print(
        f"Flask chat on http://{args.host}:{args.port}  (open it in two tabs; Ctrl-C to stop)",
        flush=True,
    )
    sio_wsgi.run(app, args.host, args.port, log_level="debug" if args.debug else "info")


if __name__ == "__main__":
    main()
