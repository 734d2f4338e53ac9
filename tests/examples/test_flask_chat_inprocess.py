"""The Flask chat example tested in-process with sio_wsgi.testing: no server, no network.

This is also how a Flask user would test their own Socket.IO app: log in with
Flask's test client, hand its session cookie to :class:`SocketIOTestClient`.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from sio_wsgi.testing import SocketIOTestClient
from tests.examples.examples_support import ROOT, png_bytes

EXAMPLE = ROOT / "examples" / "flask_chat"
CHAT_CORE = ROOT / "examples" / "chat_core"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def chat_app() -> Iterator[ModuleType]:
    """Import examples/flask_chat/app.py under a private name.

    :returns: the module (``app``, ``flask_app``, ``sio``, ``state``).
    """
    saved_path = list(sys.path)  # app.py appends examples/ to import chat_core
    try:
        spec = importlib.util.spec_from_file_location("flask_chat_example_app", EXAMPLE / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # Flask finds its templates from the module's file
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
    yield module
    module.sio.shutdown()
    sys.modules.pop("flask_chat_example_app", None)


def login(chat_app: ModuleType, name: str) -> SocketIOTestClient:
    """Log in over HTTP like the page does, then connect with the session cookie.

    :param chat_app: the example module.
    :param name: the nickname.
    :returns: a connected test client.
    """
    http = chat_app.flask_app.test_client()
    assert http.post("/login", data={"name": name}).status_code == 302
    cookie = http.get_cookie("session")
    assert cookie is not None
    client = SocketIOTestClient(chat_app.app, cookies={"session": cookie.value})
    assert client.is_connected(), client.connect_error()
    return client


def events(client: SocketIOTestClient, name: str) -> list[list[Any]]:
    """Arguments of every ``name`` event received so far.

    :param client: the client.
    :param name: the event.
    :returns: argument lists.
    """
    return [r["args"] for r in client.get_received() if r["name"] == name]


def test_anonymous_is_refused(chat_app: ModuleType) -> None:
    client = SocketIOTestClient(chat_app.app)
    try:
        assert not client.is_connected()
        assert client.connect_error()["message"] == "pick a nickname first"
    finally:
        client.close()


def test_session_nickname_messages_acks_and_privacy(chat_app: ModuleType) -> None:
    alice, bob, carol = (login(chat_app, n) for n in ("alice", "bob", "carol"))
    try:
        assert alice.wait_for("welcome")[0]["name"] == "alice"
        ack = alice.call("message", {"id": "m1", "room": "lobby", "text": "hello"})
        assert ack["ok"] is True
        assert bob.wait_for("message")[0]["text"] == "hello"
        assert alice.wait_for("delivered") == [{"id": "m1"}]  # bob's client acked it

        ack = alice.call("private", {"id": "p1", "to": "bob", "text": "secret"})
        assert ack["ok"] is True
        assert bob.wait_for("private")[0]["text"] == "secret"
        alice.call("message", {"id": "m2", "room": "lobby", "text": "public again"})
        assert carol.wait_for("message")[0]["text"] == "hello"
        assert carol.wait_for("message")[0]["text"] == "public again"
        assert not [r for r in carol.get_received() if r["name"] == "private"]
        assert alice.call("private", {"id": "p2", "to": "nobody", "text": "?"})["ok"] is False
    finally:
        for c in (alice, bob, carol):
            c.close()


def test_rooms_typing_files_and_announce(chat_app: ModuleType) -> None:
    alice, bob = login(chat_app, "alice"), login(chat_app, "bob")
    try:
        assert alice.call("join", {"room": "python"})["members"] == ["alice"]
        joined = bob.call("join", {"room": "Python"})
        assert joined["room"] == "python" and joined["members"] == ["alice", "bob"]
        assert alice.call("join", {"room": "../etc"})["ok"] is False

        bob.emit("typing", {"room": "python"})
        assert alice.wait_for("typing") == [{"room": "python", "name": "bob"}]

        image = png_bytes()
        ack = alice.call(
            "file",
            {"id": "f1", "room": "python", "name": "dot.png", "type": "image/png", "data": image},
        )
        assert ack["ok"] is True
        got = bob.wait_for("file")[0]
        assert got["data"] == image and got["type"] == "image/png" and got["from"] == "alice"
        too_big = alice.call(
            "file", {"id": "f2", "room": "python", "name": "big.bin", "data": b"\0" * (600 * 1024)}
        )
        assert too_big["ok"] is False

        http = chat_app.flask_app.test_client()
        r = http.post("/announce", data={"text": "maintenance at noon"})
        assert r.status_code == 200 and r.get_json()["ok"] is True
        for c in (alice, bob):
            assert c.wait_for("announcement")[0]["text"] == "maintenance at noon"
        assert http.post("/announce", data={}).status_code == 400
    finally:
        alice.close()
        bob.close()


def test_pages_and_client_js(chat_app: ModuleType) -> None:
    http = chat_app.flask_app.test_client()
    assert b'id="name"' in http.get("/").data  # the nickname form first
    http.post("/login", data={"name": "dora", "transport": "polling"})
    page = http.get("/").data
    assert b'src="/socket.io/socket.io.js"' in page and b"client-missing" in page
    assert b'<strong id="me">dora</strong>' in page and b"examples/flask_chat/" in page


def test_the_page_comes_from_chat_core(chat_app: ModuleType) -> None:
    """chat.js and chat.css are chat_core's, linked by the shared templates, served by Flask."""
    http = chat_app.flask_app.test_client()
    assert b'href="/static/chat_core/chat.css"' in http.get("/").data  # the nickname form
    http.post("/login", data={"name": "erin"})
    page = http.get("/").data
    for name in ("chat.js", "chat.css"):
        assert f'"/static/chat_core/{name}"'.encode() in page, name
        with http.get(f"/static/chat_core/{name}") as response:
            assert response.status_code == 200
            assert response.data == (CHAT_CORE / "static" / "chat_core" / name).read_bytes()
