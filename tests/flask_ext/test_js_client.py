"""The Flask-SocketIO style app (fsio_app) served for real, driven by the official
JavaScript client (``socket.io-client`` v4 under node, tests/js/driver.js).

Served by gunicorn (gthread, gevent and eventlet workers) and by werkzeug's threaded server;
the client starts on long-polling and upgrades to WebSocket. A last test puts the
app on Redis and emits from another process (``SocketIO(message_queue=...)``
without an app), as Flask-SocketIO's "emit from an external process".
"""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sio_wsgi.flask import SocketIO
from tests.e2e.e2e_support import scenario
from tests.examples.examples_support import gunicorn_argv
from tests.support import ROOT, ServerProcess, port_open, skip_or_fail, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

APP = "tests.flask_ext.fsio_app:app"
SERVERS = {
    "gthread": gunicorn_argv("gthread", APP),
    "gevent": gunicorn_argv("gevent", APP),
    "eventlet": gunicorn_argv("eventlet", APP),
    "werkzeug": [sys.executable, "-m", "tests.flask_ext.fsio_app", "--port", "{port}"],
}
REDIS_URL = "redis://127.0.0.1:6379/0"


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> ServerProcess:
    proc = ServerProcess(
        argv, log, cwd=ROOT, env={"PYTHONUNBUFFERED": "1", **(env or {})}, start_timeout=30
    )
    proc.start()
    return proc


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    name = str(request.param)
    proc = start(SERVERS[name], tmp_path / f"fsio-{name}.log")
    try:
        yield proc
    finally:
        proc.stop()


def post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_flask_socketio_app_with_the_js_client(server: ServerProcess, node_client: Any) -> None:
    clients = {
        "a": {"auth": {"name": "alice"}},
        "b": {"auth": {"name": "bob"}},
        "ca": {"namespace": "/chat", "manager": "a"},
        "cb": {"namespace": "/chat", "manager": "b"},
        "r": {"auth": {"token": "refuse"}},
    }
    steps = [
        {"op": "connect", "client": "a"},
        {"op": "connect", "client": "b"},
        {"op": "connect", "client": "ca"},
        {"op": "connect", "client": "cb"},
        {"op": "connect", "client": "r", "expect": "connect_error"},
        {"op": "wait", "client": "a", "event": "welcome"},
        {"op": "wait_upgrade", "client": "a"},
        {
            "op": "emit",
            "client": "a",
            "event": "join",
            "args": ["r1"],
            "ack": True,
            "label": "join-a",
        },
        {
            "op": "emit",
            "client": "b",
            "event": "join",
            "args": ["r1"],
            "ack": True,
            "label": "join-b",
        },
        {"op": "wait", "client": "a", "event": "joined", "count": 2},
        {"op": "emit", "client": "a", "event": "say", "args": [{"room": "r1", "text": "hi"}]},
        {"op": "wait", "client": "b", "event": "said"},
        {"op": "emit", "client": "b", "event": "shout", "args": ["all"]},
        {"op": "wait", "client": "a", "event": "shouted"},
        {"op": "wait", "client": "b", "event": "shouted"},
        {"op": "emit", "client": "a", "event": "add", "args": [2, 3], "ack": True, "label": "add"},
        {
            "op": "emit",
            "client": "a",
            "event": "boom",
            "args": ["bad"],
            "ack": True,
            "label": "boom",
        },
        {"op": "wait", "client": "a", "event": "error"},
        {"op": "emit", "client": "a", "event": "whoami", "ack": True, "label": "who"},
        {"op": "emit", "client": "a", "event": "count", "ack": True, "label": "c1"},
        {"op": "emit", "client": "a", "event": "count", "ack": True, "label": "c2"},
        {
            "op": "emit",
            "client": "ca",
            "event": "post",
            "args": ["hey"],
            "ack": True,
            "label": "post",
        },
        {"op": "wait", "client": "cb", "event": "post"},
        {"op": "emit", "client": "ca", "event": "fail", "ack": True, "label": "fail"},
        {"op": "emit", "client": "a", "event": "message", "args": ["echo"]},
        {"op": "wait", "client": "a", "event": "message"},
        {"op": "mark", "name": "ready"},
        {"op": "wait", "client": "a", "event": "announce"},
        {"op": "wait", "client": "b", "event": "announce"},
        {"op": "emit", "client": "a", "event": "kick"},
        {"op": "wait", "client": "a", "event": "disconnect"},
    ]
    proc = node_client.spawn(scenario(server, "upgrade", steps, clients))
    proc.wait_for(10, type="mark", name="ready")
    assert post(server.url + "/announce", {"text": "news"}) == {"ok": True}
    res = proc.finish(20)
    assert res.ok, f"{res.dump()}\n--- server log ---\n{server.log_tail()}"
    sid_a = res.connect("a")["id"]
    assert res.events("a", "welcome") == [[{"sid": sid_a, "name": "alice", "user": None}]]
    assert res.ack("join-a") == [["r1"]] and res.ack("join-b") == [["r1"]]
    assert res.events("b", "said") == [[{"text": "hi", "who": "alice"}]]
    assert res.events("a", "said") == []  # include_self=False
    assert res.ack("add") == [5, -1]
    assert res.ack("boom") == [{"error": "bad", "type": "ValueError"}]
    assert res.events("a", "error") == [[{"error": "bad", "event": "boom"}]]
    assert res.ack("who")[0]["sid"] == sid_a and res.ack("who")[0]["name"] == "alice"
    assert (res.ack("c1"), res.ack("c2")) == ([1], [2])
    assert res.ack("post") == ["posted"]
    # the session is per connection: /chat shares alice's
    assert res.events("cb", "post") == [[{"text": "hey", "from": "alice"}]]
    assert res.events("ca", "post") == []
    assert res.ack("fail") == [{"chat_error": "KeyError('chat failure')", "namespace": "/chat"}]
    assert res.events("a", "message") == [["echo"]]
    assert res.events("a", "announce") == [["news"]] and res.events("b", "announce") == [["news"]]
    refused = res.of("connect_error", "r")
    assert refused[0]["message"] == "refused" and refused[0]["data"] == {"why": "bad token"}
    assert any("left: server disconnect alice" in line for line in get(server.url + "/log"))


def test_emit_from_an_external_process(tmp_path: Path, node_client: Any) -> None:
    if not port_open(6379):
        skip_or_fail("redis not running on 127.0.0.1:6379")
    channel = f"fsio-{uuid.uuid4().hex}"
    env = {"FSIO_MESSAGE_QUEUE": REDIS_URL, "FSIO_CHANNEL": channel}
    srv = start(SERVERS["gthread"], tmp_path / "fsio-redis.log", env)
    emitter = SocketIO(message_queue=REDIS_URL, channel=channel)
    try:
        steps = [
            {"op": "connect", "client": "a"},
            {"op": "mark", "name": "ready"},
            {"op": "wait", "client": "a", "event": "from_outside", "timeout_ms": 10000},
        ]
        proc = node_client.spawn(scenario(srv, "websocket", steps))
        proc.wait_for(10, type="mark", name="ready")
        # the worker's listener subscribes in a task of its own: published before that, the
        # event would reach nobody (pub/sub keeps nothing)
        probe = redis.Redis.from_url(REDIS_URL)
        try:
            wait_until(
                lambda: dict(probe.pubsub_numsub(channel)).get(channel.encode(), 0) > 0,
                timeout=10,
                what="the worker subscribed to the channel",
            )
        finally:
            probe.close()
        emitter.emit("from_outside", {"n": 1})
        res = proc.finish(20)
        assert res.ok, f"{res.dump()}\n--- server log ---\n{srv.log_tail()}"
        assert res.events("a", "from_outside") == [[{"n": 1}]]
    finally:
        emitter.server.shutdown()  # type: ignore[union-attr]
        srv.stop()
