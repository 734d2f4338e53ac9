"""sio_wsgi.testing.SocketIOTestClient against a real Server, in-process (no sockets)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import flask
import pytest

import sio_wsgi
from sio_wsgi.flask import FlaskContext
from sio_wsgi.testing import SocketIOTestClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to open a socket connection during the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the test client must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)


@pytest.fixture
def sio() -> Iterator[sio_wsgi.Server]:
    server = sio_wsgi.Server(async_mode="threading")
    server.disconnects = []  # type: ignore[attr-defined]

    @server.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if not isinstance(auth, dict) or auth.get("token") != "secret":
            raise sio_wsgi.ConnectionRefusedError("bad token", {"hint": "send auth.token"})
        server.save_session(sid, {"name": auth.get("name", "anon")})
        server.emit("welcome", {"name": auth.get("name", "anon")}, to=sid)

    @server.event
    def disconnect(sid: str, reason: str) -> None:
        server.disconnects.append((sid, reason))  # type: ignore[attr-defined]

    @server.event
    def echo(sid: str, *args: Any) -> Any:
        server.emit("echo", args, to=sid)
        return args

    @server.event
    def join(sid: str, room: str) -> str:
        server.enter_room(sid, room)
        return f"joined {room}"

    @server.event
    def shout(sid: str, room: str, text: str) -> None:
        name = server.get_session(sid)["name"]
        server.emit("shout", {"from": name, "text": text}, to=room, skip_sid=sid)

    @server.event
    def ask(sid: str) -> Any:
        return server.call("question", "2+2?", to=sid, timeout=5)

    @server.event
    def kick(sid: str) -> None:
        server.disconnect(sid)

    @server.on("connect", namespace="/admin")
    def admin_connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        server.emit("hello-admin", environ.get("HTTP_X_ROLE"), to=sid, namespace="/admin")

    @server.on("ping", namespace="/admin")
    def admin_ping(sid: str) -> str:
        return "pong"

    yield server
    server.shutdown()


@pytest.fixture
def app(sio: sio_wsgi.Server) -> sio_wsgi.WSGIApp:
    return sio_wsgi.WSGIApp(sio, serve_client=False)


AUTH = {"token": "secret", "name": "alice"}


def test_connect_emit_ack_and_received(app: sio_wsgi.WSGIApp, no_network: None) -> None:
    with SocketIOTestClient(app, auth=AUTH) as client:
        assert client.is_connected()
        assert client.sid() and client.sid() != client.eio_sid
        assert client.get_received() == [
            {"name": "welcome", "args": [{"name": "alice"}], "namespace": "/"}
        ]
        assert client.emit("echo", 1, "two", {"3": [True]}, callback=True) == (
            1,
            "two",
            {"3": [True]},
        )
        # emit() returned after the handler: what it emitted to us is already here
        assert client.get_received(settle=0) == [
            {"name": "echo", "args": [1, "two", {"3": [True]}], "namespace": "/"}
        ]
        assert client.emit("echo", "no ack asked") is None
        assert client.get_received(settle=0)[0]["args"] == ["no ack asked"]


def test_refused_connect_has_connect_error(app: sio_wsgi.WSGIApp) -> None:
    client = SocketIOTestClient(app, auth={"token": "wrong"})
    try:
        assert not client.is_connected()
        assert client.connect_error() == {
            "message": "bad token",
            "data": {"hint": "send auth.token"},
        }
        assert client.connect(auth=AUTH)  # a second try on the same connection works
        assert client.is_connected()
    finally:
        client.close()


def test_binary_round_trip(app: sio_wsgi.WSGIApp) -> None:
    with SocketIOTestClient(app, auth=AUTH) as client:
        blob = bytes(range(256)) * 10
        assert client.call("echo", {"file": blob, "name": "x.bin"}) == {
            "file": blob,
            "name": "x.bin",
        }
        received = [r for r in client.get_received() if r["name"] == "echo"]
        assert received[0]["args"] == [{"file": blob, "name": "x.bin"}]


def test_rooms_between_two_clients(app: sio_wsgi.WSGIApp) -> None:
    with (
        SocketIOTestClient(app, auth=AUTH) as alice,
        SocketIOTestClient(app, auth={**AUTH, "name": "bob"}) as bob,
        SocketIOTestClient(app, auth={**AUTH, "name": "carol"}) as carol,
    ):
        assert alice.call("join", "python") == "joined python"
        assert bob.call("join", "python") == "joined python"
        for c in (alice, bob, carol):
            c.get_received(settle=0)
        bob.emit("shout", "python", "hi room")
        assert alice.wait_for("shout") == [{"from": "bob", "text": "hi room"}]
        assert bob.get_received() == []  # skip_sid
        assert carol.get_received() == []  # not in the room


def test_server_call_is_answered_by_on_handler(app: sio_wsgi.WSGIApp) -> None:
    with SocketIOTestClient(app, auth=AUTH) as client:
        client.on("question", lambda q: 4 if q == "2+2?" else None)
        assert client.call("ask") == 4
        assert any(r["name"] == "question" for r in client.get_received())


def test_namespaces_and_headers(app: sio_wsgi.WSGIApp) -> None:
    client = SocketIOTestClient(app, namespace="/admin", headers={"X-Role": "ops"})
    try:
        assert client.is_connected("/admin") and not client.is_connected()
        assert client.get_received("/admin") == [
            {"name": "hello-admin", "args": ["ops"], "namespace": "/admin"}
        ]
        assert client.call("ping", namespace="/admin") == "pong"
        assert client.connect("/", auth=AUTH)
        assert client.sid("/") != client.sid("/admin")
        assert client.connect("/nowhere") is False
        assert client.connect_error("/nowhere") == {"message": "Invalid namespace"}
        client.disconnect("/admin")
        assert client.is_connected("/") and not client.is_connected("/admin")
    finally:
        client.close()


def test_disconnects_run_the_server_handler(sio: sio_wsgi.Server, app: sio_wsgi.WSGIApp) -> None:
    client = SocketIOTestClient(app, auth=AUTH)
    sid = client.sid()
    client.disconnect()
    done = threading.Event()
    for _ in range(100):
        if any(s == sid for s, _ in sio.disconnects):  # type: ignore[attr-defined]
            done.set()
            break
        done.wait(0.02)
    assert (sid, "client disconnect") in sio.disconnects  # type: ignore[attr-defined]

    kicked = SocketIOTestClient(app, auth=AUTH)
    kicked.emit("kick")
    assert not kicked.is_connected()
    with pytest.raises(sio_wsgi.DisconnectedError):
        kicked.emit("echo", 1)
    kicked.close()


def test_works_with_a_server_directly(sio: sio_wsgi.Server) -> None:
    with SocketIOTestClient(sio, auth=AUTH) as client:
        assert client.call("echo", "x") == "x"


def test_flask_context_session_and_request(sio: sio_wsgi.Server) -> None:
    flask_app = flask.Flask(__name__)
    flask_app.secret_key = "test"
    flask_app.config["GREETING"] = "hello"
    ctx = FlaskContext(flask_app, sio)
    flask_app.wsgi_app = sio_wsgi.WSGIApp(sio, flask_app.wsgi_app, serve_client=False)  # type: ignore[method-assign]

    @flask_app.post("/login")
    def login() -> str:
        flask.session["user"] = flask.request.form["user"]
        return "ok"

    @flask_app.post("/broadcast")
    def broadcast() -> str:
        sio.emit("news", flask.request.form["text"])
        return "sent"

    @ctx.on("whoami")
    def whoami(sid: str) -> dict[str, Any]:
        assert flask.request.sid == sid  # type: ignore[attr-defined]
        return {
            "user": flask.session.get("user"),
            "greeting": flask.current_app.config["GREETING"],
            "path": flask.request.path,
        }

    http = flask_app.test_client()
    http.post("/login", data={"user": "zoe"})
    cookie = http.get_cookie("session")
    assert cookie is not None
    with SocketIOTestClient(flask_app, auth=AUTH, cookies={"session": cookie.value}) as client:
        assert client.call("whoami") == {"user": "zoe", "greeting": "hello", "path": "/socket.io/"}
        assert http.post("/broadcast", data={"text": "from a view"}).data == b"sent"
        assert client.wait_for("news") == ["from a view"]
