"""The Flask-SocketIO style app (fsio_app) through ``socketio.test_client``, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest

from sio_wsgi.flask import SocketIO, SocketIOTestClient
from tests.flask_ext.fsio_app import create_app
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app() -> Iterator[flask.Flask]:
    application = create_app()
    yield application
    socketio(application).server.shutdown()  # type: ignore[union-attr]


def socketio(app: flask.Flask) -> SocketIO:
    ext: SocketIO = app.extensions["socketio"]
    return ext


def client(app: flask.Flask, **kwargs: Any) -> SocketIOTestClient:
    return socketio(app).test_client(app, **kwargs)


def names(received: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in received]


def test_connect_auth_and_welcome(app: flask.Flask) -> None:
    alice = client(app, auth={"name": "alice"})
    assert alice.is_connected()
    received = alice.get_received()
    assert received == [
        {
            "name": "welcome",
            "args": [{"sid": alice.sid(), "name": "alice", "user": None}],
            "namespace": "/",
        }
    ]
    alice.disconnect()
    assert not alice.is_connected()
    log = socketio(app).app.config["LOG"]  # type: ignore[union-attr]
    wait_until(lambda: "/ left: client disconnect alice" in log, timeout=5)


def test_refused_connections(app: flask.Flask) -> None:
    refused = client(app, auth={"token": "refuse"})
    assert not refused.is_connected()
    assert refused.connect_error() == {"message": "refused", "data": {"why": "bad token"}}
    falsy = client(app, auth={"token": "false"})
    assert not falsy.is_connected()
    with pytest.raises(RuntimeError):
        falsy.emit("whoami")
    with pytest.raises(RuntimeError):
        falsy.get_received()


def test_request_attributes_and_query_string(app: flask.Flask) -> None:
    bob = client(app, query_string="q=42&name=bob")
    info = bob.emit("whoami", callback=True)
    assert info == {
        "sid": bob.sid(),
        "namespace": "/",
        "event": "whoami",
        "name": "bob",
        "user": None,
        "query": "42",
    }


def test_rooms_include_self_and_broadcast(app: flask.Flask) -> None:
    a = client(app, auth={"name": "a"})
    b = client(app, auth={"name": "b"})
    c = client(app, auth={"name": "c"})
    for x in (a, b, c):
        x.get_received()
    assert a.emit("join", "r1", callback=True) == ["r1"]
    assert b.emit("join", "r1", callback=True) == ["r1"]
    assert b.wait_for("joined") == [{"room": "r1", "who": "b"}]
    assert a.wait_for("joined") == [{"room": "r1", "who": "a"}]
    assert a.wait_for("joined") == [{"room": "r1", "who": "b"}]
    a.emit("say", {"room": "r1", "text": "hi"})
    assert b.wait_for("said") == [{"text": "hi", "who": "a"}]
    assert names(a.get_received()) == []  # include_self=False
    assert names(c.get_received()) == []  # not in the room
    a.emit("shout", "all")
    for x in (a, b, c):
        assert x.wait_for("shouted") == ["all"]
    a.emit("shout_others", "others")
    assert b.wait_for("shouted") == ["others"]
    assert c.wait_for("shouted") == ["others"]
    assert names(a.get_received()) == []
    assert b.emit("leave", "r1", callback=True) == []
    a.emit("say", {"room": "r1", "text": "alone"})
    assert names(b.get_received()) == []
    a.emit("close", "r1")
    assert a.emit("whoami", callback=True)["sid"] == a.sid()
    b.emit("say", {"room": "r1", "text": "closed"})
    assert names(a.get_received()) == []


def test_send_message_and_json_give_one_value(app: flask.Flask) -> None:
    a = client(app)
    a.get_received()
    a.send("echo this")
    a.send({"k": [1, 2]}, json=True)
    assert a.get_received() == [
        {"name": "message", "args": "echo this", "namespace": "/"},
        {"name": "json", "args": {"k": [1, 2]}, "namespace": "/"},
    ]


def test_acks_and_catch_all(app: flask.Flask) -> None:
    a = client(app)
    assert a.emit("add", 5, 3, callback=True) == [8, 2]  # several values: a list
    assert a.emit("nothing", 1, callback=True) == "no handler for nothing [1]"


def test_managed_session_per_connection(app: flask.Flask) -> None:
    http = app.test_client()
    assert http.get("/login/carol").status_code == 200
    a = client(app, flask_test_client=http)
    assert a.get_received()[0]["args"][0]["user"] == "carol"
    assert [a.emit("count", callback=True) for _ in range(3)] == [1, 2, 3]
    assert a.emit("whoami", callback=True)["user"] == "carol"
    other = client(app, flask_test_client=http)
    assert other.emit("count", callback=True) == 1  # its own copy
    assert "count" not in http.get("/session").get_json()  # never written to the cookie
    assert http.get("/session").get_json()["user"] == "carol"


def test_unmanaged_session_is_the_cookie_session() -> None:
    app = create_app(manage_session=False)
    try:
        http = app.test_client()
        http.get("/login/dave")
        a = client(app, flask_test_client=http)
        assert a.emit("whoami", callback=True)["user"] == "dave"
        # a cookie session cannot be saved without a response: each event sees the
        # handshake's cookie again
        assert [a.emit("count", callback=True) for _ in range(2)] == [1, 1]
        assert a.emit("whoami", callback=True)["name"] is None
    finally:
        socketio(app).server.shutdown()  # type: ignore[union-attr]


def test_error_handlers(app: flask.Flask) -> None:
    a = client(app)
    a.get_received()
    assert a.emit("boom", "kaput", callback=True) == {"error": "kaput", "type": "ValueError"}
    assert a.get_received() == [
        {"name": "error", "args": [{"error": "kaput", "event": "boom"}], "namespace": "/"}
    ]
    chat = client(app, namespace="/chat")
    assert chat.emit("fail", namespace="/chat", callback=True) == {
        "chat_error": "KeyError('chat failure')",
        "namespace": "/chat",
    }


def test_namespace_class(app: flask.Flask) -> None:
    a = client(app, namespace="/chat")
    b = client(app, namespace="/chat")
    assert a.is_connected("/chat") and not a.is_connected("/")
    assert a.get_received("/chat")[0]["name"] == "hello"
    assert b.get_received("/chat")[0]["args"] == [{"sid": b.sid("/chat"), "name": None}]
    assert a.emit("post", "hey", namespace="/chat", callback=True) == "posted"
    assert b.wait_for("post", "/chat") == [{"text": "hey", "from": None}]
    assert names(a.get_received("/chat")) == []
    assert a.emit("rooms", namespace="/chat", callback=True) == ["lobby"]
    a.disconnect("/chat")
    log = socketio(app).app.config["LOG"]  # type: ignore[union-attr]
    wait_until(lambda: "/chat left: client disconnect" in log, timeout=5)


def test_several_namespaces_on_one_client(app: flask.Flask) -> None:
    a = client(app, auth={"name": "multi"})
    assert a.connect("/chat")
    assert a.is_connected("/") and a.is_connected("/chat")
    assert names(a.get_received("/chat")) == ["hello"]
    assert a.emit("whoami", callback=True)["name"] == "multi"


def test_server_disconnect(app: flask.Flask) -> None:
    a = client(app, auth={"name": "kicked"})
    a.emit("kick")
    wait_until(lambda: not a.is_connected(), timeout=5)
    log = socketio(app).app.config["LOG"]  # type: ignore[union-attr]
    wait_until(lambda: "/ left: server disconnect kicked" in log, timeout=5)


def test_emit_from_routes_and_tasks(app: flask.Flask) -> None:
    a = client(app)
    b = client(app, namespace="/chat")
    http = app.test_client()
    assert http.post("/announce", json={"text": "news"}).status_code == 200
    assert a.wait_for("announce") == ["news"]
    assert http.post("/announce-task", json={"text": "later"}).status_code == 200
    assert a.wait_for("announce") == ["task: later"]
    assert names(b.get_received("/chat")) == ["hello"]  # '/' only


def test_server_call_and_ack_callback_in_context(app: flask.Flask) -> None:
    sio = socketio(app)
    a = client(app)
    a.on("question", lambda x: x * 2)
    assert sio.call("question", 21, to=a.sid(), timeout=5) == 42
    got: list[Any] = []
    sio.emit("question", 4, to=a.sid(), callback=lambda v: got.append(v))
    wait_until(lambda: got == [8], timeout=5)


def test_ack_callback_and_call_from_a_handler(app: flask.Flask) -> None:
    a = client(app, auth={"name": "asker"})
    a.on("question", lambda n: n * 2)
    a.on("sure", lambda q: f"yes to {q}")
    a.emit("ask", 4)
    log = socketio(app).app.config["LOG"]  # type: ignore[union-attr]
    wait_until(lambda: "answer from asker: 8" in log, timeout=5)
    assert a.emit("confirm", "this", callback=True) == "yes to this"
