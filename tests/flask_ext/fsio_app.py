"""A Flask-SocketIO style application on ``sio_wsgi.flask`` (the tests' subject).

Written as a Flask-SocketIO app would be, with only the import changed: decorated
handlers without a sid, context-bound ``emit``/``send``/``join_room``..., a
class-based namespace, error handlers, the Flask session, ``socketio.emit`` from
a route and from a background task, and an app factory (``init_app``).

Run it: ``gunicorn -k gthread tests.flask_ext.fsio_app:app`` or
``python -m tests.flask_ext.fsio_app --port 5000`` (werkzeug's threaded server).
Environment: ``FSIO_MESSAGE_QUEUE`` / ``FSIO_CHANNEL`` put it on a message queue.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from flask import Flask, request, session

from sio_wsgi.flask import (
    ConnectionRefusedError,
    Namespace,
    SocketIO,
    call,
    close_room,
    disconnect,
    emit,
    join_room,
    leave_room,
    rooms,
    send,
)


class Chat(Namespace):
    """``/chat``: everyone joins ``lobby``; posts go to the others."""

    def on_connect(self) -> None:
        join_room("lobby")
        emit("hello", {"sid": request.sid, "name": session.get("name")})

    def on_post(self, text: str) -> str:
        self.emit(
            "post", {"text": text, "from": session.get("name")}, room="lobby", include_self=False
        )
        return "posted"

    def on_rooms(self) -> list[str]:
        return sorted(r for r in rooms() if r != request.sid)

    def on_fail(self) -> None:
        raise KeyError("chat failure")

    def on_disconnect(self, reason: str) -> None:
        request_log(f"/chat left: {reason}")


def request_log(line: str) -> None:
    """Record a line the tests read back (``GET /log``)."""
    from flask import current_app

    current_app.config["LOG"].append(line)


def create_app(**options: Any) -> Flask:
    """The app, with its own :class:`SocketIO` (handlers registered before ``init_app``).

    :param options: SocketIO options (``manage_session``, ``message_queue``...).
    """
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "fsio-test-secret"
    app.config["LOG"] = []
    socketio = SocketIO()

    @socketio.on("connect")
    def on_connect(auth: Any) -> bool | None:
        auth = auth or {}
        if auth.get("token") == "refuse":
            raise ConnectionRefusedError("refused", {"why": "bad token"})
        if auth.get("token") == "false":
            return False
        session["name"] = auth.get("name") or request.args.get("name") or "anon"
        emit("welcome", {"sid": request.sid, "name": session["name"], "user": session.get("user")})
        return None

    @socketio.on("disconnect")
    def on_disconnect(reason: str) -> None:
        request_log(f"/ left: {reason} {session.get('name')}")

    @socketio.event
    def join(room: str) -> list[str]:
        join_room(room)
        emit("joined", {"room": room, "who": session["name"]}, to=room)
        return sorted(r for r in rooms() if r != request.sid)

    @socketio.event
    def leave(room: str) -> list[str]:
        leave_room(room)
        return sorted(r for r in rooms() if r != request.sid)

    @socketio.event
    def say(data: dict[str, str]) -> None:
        emit(
            "said",
            {"text": data["text"], "who": session["name"]},
            room=data["room"],
            include_self=False,
        )

    @socketio.event
    def shout(text: str) -> None:
        emit("shouted", text, broadcast=True)

    @socketio.event
    def shout_others(text: str) -> None:
        emit("shouted", text, broadcast=True, include_self=False)

    @socketio.on("close")
    def on_close(room: str) -> None:
        close_room(room)

    @socketio.on("message")
    def on_message(data: Any) -> None:
        send(data)

    @socketio.on("json")
    def on_json(data: Any) -> None:
        send(data, json=True)

    @socketio.event
    def add(a: int, b: int) -> Any:
        return a + b, a - b

    @socketio.event
    def whoami() -> dict[str, Any]:
        return {
            "sid": request.sid,
            "namespace": request.namespace,
            "event": request.event["message"],
            "name": session.get("name"),
            "user": session.get("user"),
            "query": request.args.get("q"),
        }

    @socketio.event
    def count() -> int:
        session["count"] = session.get("count", 0) + 1
        return int(session["count"])

    @socketio.event
    def boom(text: str) -> None:
        raise ValueError(text)

    @socketio.event
    def ask(n: int) -> None:
        def answered(value: Any) -> None:  # runs in the asking client's contexts
            request_log(f"answer from {session['name']}: {value}")

        emit("question", n, callback=answered)

    @socketio.event
    def confirm(question: str) -> Any:
        return call("sure", question, timeout=5)  # asks this client and waits

    @socketio.event
    def kick() -> None:
        disconnect()

    @socketio.on("*")
    def catch_all(event: str, *args: Any) -> str:
        return f"no handler for {event} {list(args)}"

    @socketio.on_error_default
    def default_error(exc: Exception) -> dict[str, Any]:
        emit("error", {"error": str(exc), "event": request.event["message"]})
        return {"error": str(exc), "type": type(exc).__name__}

    @socketio.on_error("/chat")
    def chat_error(exc: Exception) -> dict[str, Any]:
        return {"chat_error": repr(exc), "namespace": request.namespace}

    socketio.on_namespace(Chat("/chat"))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "async_mode": socketio.async_mode}

    @app.get("/login/<name>")
    def login(name: str) -> dict[str, Any]:
        session["user"] = name
        return {"ok": True}

    @app.get("/session")
    def show_session() -> dict[str, Any]:
        return dict(session)

    @app.post("/announce")
    def announce() -> dict[str, Any]:
        socketio.emit("announce", request.get_json()["text"])
        return {"ok": True}

    @app.post("/announce-task")
    def announce_task() -> dict[str, Any]:
        text = request.get_json()["text"]
        socketio.start_background_task(socketio.emit, "announce", f"task: {text}").join()
        return {"ok": True}

    @app.get("/log")
    def log() -> list[str]:
        return list(app.config["LOG"])

    socketio.init_app(app, cors_allowed_origins="*", **options)
    return app


def _env_options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    if os.environ.get("FSIO_MESSAGE_QUEUE"):
        options["message_queue"] = os.environ["FSIO_MESSAGE_QUEUE"]
        options["channel"] = os.environ.get("FSIO_CHANNEL", "flask-socketio")
    return options


app = create_app(**_env_options())


def main() -> None:
    """Serve :data:`app` on werkzeug's threaded server."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
