"""``sio_wsgi.flask.SocketIO`` set-up: options, message queues, ``run``'s mapping, paths."""

from __future__ import annotations

import json
import types
import uuid
import warnings
from typing import Any

import flask
import pytest
from werkzeug.test import Client

from sio_wsgi import ConfigError
from sio_wsgi.flask import Namespace, SocketIO, emit
from sio_wsgi.flask.wiring import RunTarget, queue_manager
from sio_wsgi.managers.kombu import KombuManager
from sio_wsgi.managers.redis import RedisManager
from tests.support import port_open, skip_or_fail

pytestmark = pytest.mark.timeout(60)


def make_app() -> flask.Flask:
    app = flask.Flask(__name__)
    app.config["SECRET_KEY"] = "x"
    return app


def test_options_reach_the_server() -> None:
    sio = SocketIO(
        make_app(),
        ping_interval=7,
        ping_timeout=3,
        cors_allowed_origins="*",
        async_handlers=True,
        always_connect=True,
    )
    assert sio.server is not None
    assert sio.server.options.ping_interval == 7
    assert sio.server.options.ping_timeout == 3
    assert sio.server.always_connect
    assert sio.async_mode == "threading"
    sio.server.shutdown()


def test_unknown_option_is_an_error_ignored_ones_warn() -> None:
    with pytest.raises(ConfigError, match="no_such_option"):
        SocketIO(make_app(), no_such_option=1)
    with pytest.warns(UserWarning, match="monitor_clients"):
        sio = SocketIO(make_app(), monitor_clients=False)
    assert sio.server is not None
    sio.server.shutdown()
    with pytest.warns(UserWarning, match="grace"):
        sio = SocketIO(make_app(), ping_interval=(10, 5))
    assert sio.server is not None and sio.server.options.ping_interval == 10
    sio.server.shutdown()


def test_unsupported_message_queues() -> None:
    for url in ("kafka://localhost:9092", "zmq+tcp://127.0.0.1:5555+5556"):
        with pytest.raises(ConfigError, match="only Redis and Kombu"):
            queue_manager(url, "c", write_only=True)


def test_message_queue_urls_pick_the_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, str, str, bool]] = []

    def fake(kind: str) -> Any:
        def build(url: str, channel: str, write_only: bool) -> str:
            made.append((kind, url, channel, write_only))
            return kind

        return build

    monkeypatch.setattr("sio_wsgi.managers.redis.RedisManager", fake("redis"))
    monkeypatch.setattr("sio_wsgi.managers.kombu.KombuManager", fake("kombu"))
    assert queue_manager("redis://h:1/0", "ch", False) == "redis"
    assert queue_manager("rediss://h:1/0", "ch", True) == "redis"
    assert queue_manager("amqp://guest@h//", "ch", False) == "kombu"
    assert made == [
        ("redis", "redis://h:1/0", "ch", False),
        ("redis", "rediss://h:1/0", "ch", True),
        ("kombu", "amqp://guest@h//", "ch", False),
    ]


def test_emitter_without_app_is_write_only() -> None:
    if not port_open(6379):
        skip_or_fail("redis not running on 127.0.0.1:6379")
    sio = SocketIO(message_queue="redis://127.0.0.1:6379/0", channel=f"t-{uuid.uuid4().hex}")
    assert sio.server is not None
    assert isinstance(sio.server.manager, RedisManager)
    assert sio.server.manager.write_only
    assert sio.server.manager.channel.startswith("t-")
    sio.emit("hello", {"a": 1})  # published, nobody listens
    sio.server.shutdown()


def test_amqp_url_gives_kombu_manager() -> None:
    if not port_open(5672):
        skip_or_fail("rabbitmq not running on 127.0.0.1:5672")
    sio = SocketIO(message_queue="amqp://guest:guest@127.0.0.1:5672//", channel="fsio-kombu")
    assert sio.server is not None and isinstance(sio.server.manager, KombuManager)
    assert sio.server.manager.write_only
    sio.server.shutdown()


def test_init_app_factory_and_custom_path() -> None:
    sio = SocketIO(path="/live")
    assert sio.server is None

    @sio.event
    def ping() -> str:
        return "pong"

    class Ns(Namespace):
        def on_hi(self, who: str) -> str:
            return f"hi {who} on {flask.request.namespace}"

    sio.on_namespace(Ns("/ns"))
    app = make_app()
    sio.init_app(app)
    assert app.extensions["socketio"] is sio
    client = sio.test_client(app)
    assert client.path == "/live/"
    assert client.emit("ping", callback=True) == "pong"
    assert client.connect("/ns")
    assert client.emit("hi", "x", namespace="/ns", callback=True) == "hi x on /ns"
    http = app.test_client()
    assert http.get("/live/?EIO=4&transport=polling").status_code == 200
    assert http.get("/socket.io/?EIO=4&transport=polling").status_code == 404
    client.disconnect()
    with pytest.raises(ValueError):
        sio.on_namespace(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sio.on_error_default(42)  # type: ignore[type-var]
    sio.server.shutdown()  # type: ignore[union-attr]


def test_namespace_catch_all_and_flask_json() -> None:
    app = make_app()
    sio = SocketIO(app, json=flask.json)
    seen: list[tuple[str, Any]] = []

    @sio.on("*", namespace="*")
    def anything(event: str, data: Any) -> str:
        seen.append((flask.request.namespace, event))
        return f"{event}@{flask.request.namespace}"

    @sio.on("connect", namespace="*")
    def connect_any() -> None:
        emit("in", flask.request.namespace)

    client = sio.test_client(app, namespace="/free")
    assert client.get_received("/free") == [{"name": "in", "args": ["/free"], "namespace": "/free"}]
    assert client.emit("x", 1, namespace="/free", callback=True) == "x@/free"
    assert seen == [("/free", "x")]
    sio.server.shutdown()  # type: ignore[union-attr]


def test_run_maps_flask_socketio_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    fake = types.ModuleType("sio_wsgi.runner")
    fake.run = lambda app, **kw: calls.append((app, kw)) or "served"  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "sio_wsgi.runner", fake)
    app = make_app()
    sio = SocketIO(app)
    assert sio.run(app) == "served"
    target = calls[-1][0]
    assert isinstance(target, RunTarget)
    assert target.flask_app is app and target.server is sio.server
    served = Client(target)  # every request goes through the Flask app
    assert served.get("/socket.io/?EIO=4&transport=polling").status_code == 200
    assert served.get("/nowhere").status_code == 404
    assert calls[-1][1] == {
        "host": "127.0.0.1",
        "port": 5000,
        "reloader": False,
        "async_mode": "threading",
        "log_level": "warning",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="extra_files"):
            sio.run(app, extra_files=["a.txt"])
    sio.run(app, host="0.0.0.0", port=8000, debug=True, allow_unsafe_werkzeug=True, workers=2)
    assert calls[-1][1] == {
        "host": "0.0.0.0",
        "port": 8000,
        "reloader": True,
        "async_mode": "threading",
        "log_level": "debug",
        "workers": 2,
    }
    assert app.debug
    app.debug = False
    app.config["SERVER_NAME"] = "example.com:7000"
    sio.run(app, log_output=True, use_reloader=False)
    assert calls[-1][1]["port"] == 7000 and calls[-1][1]["log_level"] == "info"
    sio.server.shutdown()  # type: ignore[union-attr]


def test_json_option_accepts_a_module() -> None:
    app = make_app()
    sio = SocketIO(app, json=json)
    client = sio.test_client(app)
    assert client.is_connected()
    sio.server.shutdown()  # type: ignore[union-attr]


def test_helpers_outside_a_handler_raise() -> None:
    app = make_app()
    sio = SocketIO(app)
    with app.app_context(), pytest.raises(RuntimeError, match=r"request\.namespace"):
        emit("x")
    with app.test_request_context("/"), pytest.raises(RuntimeError, match=r"request\.namespace"):
        emit("x")
    sio.server.shutdown()  # type: ignore[union-attr]


def test_error_handlers_cover_connect() -> None:
    app = make_app()
    sio = SocketIO(app)
    seen: list[str] = []

    @sio.on("connect")
    def on_connect(auth: Any) -> None:
        raise RuntimeError(f"connect failed for {auth}")

    @sio.on_error_default
    def on_error(exc: Exception) -> bool:
        seen.append(f"{flask.request.event['message']}: {exc}")
        return "ok" in str(exc)  # False refuses the connection

    assert sio.test_client(app, auth={"v": "ok"}).is_connected()
    assert not sio.test_client(app, auth={"v": "no"}).is_connected()
    assert seen == [
        "connect: connect failed for {'v': 'ok'}",
        "connect: connect failed for {'v': 'no'}",
    ]
    sio.server.shutdown()  # type: ignore[union-attr]
