"""Hooks end to end with the python-socketio ``Client``: connect middlewares, event
middlewares, on_any, on_outgoing, the rate limiter and a dynamic namespace family."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from tests.support import ServerProcess, wait_until

TIMEOUT = 5.0


class Peer:
    """A ``socketio.Client`` recording the events it gets, per namespace."""

    def __init__(self) -> None:
        self.sio = socketio.Client(reconnection=False, request_timeout=5)
        self.lock = threading.Lock()
        self.got: list[tuple[str, str, Any]] = []

        def record(event: str, *args: Any, namespace: str = "/") -> None:
            with self.lock:
                self.got.append((namespace, event, args[0] if len(args) == 1 else list(args)))

        for ns in ("/", "/limited", "/strict", "/dyn-7"):
            self.sio.on("*", lambda event, *a, ns=ns: record(event, *a, namespace=ns), namespace=ns)
            self.sio.on(
                "disconnect", lambda *a, ns=ns: record("disconnect", namespace=ns), namespace=ns
            )
            self.sio.on(
                "connect_error",
                lambda *a, ns=ns: record("connect_error", *a, namespace=ns),
                namespace=ns,
            )

    def events(self, event: str, ns: str = "/") -> list[Any]:
        with self.lock:
            return [data for n, e, data in self.got if n == ns and e == event]


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.sio.disconnect()


def test_a_connect_middleware_refuses_with_data(hooks_server: ServerProcess, peer: Peer) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError) as caught:
        peer.sio.connect(hooks_server.url, auth={"token": "bad"}, wait_timeout=TIMEOUT)
    assert "failed to connect" in str(caught.value)
    assert peer.events("connect_error") == [{"message": "unauthorized", "data": {"code": 401}}]


def test_a_connect_middleware_fills_the_session_and_environ(
    hooks_server: ServerProcess, peer: Peer
) -> None:
    peer.sio.connect(hooks_server.url, auth={"user": "ann"}, wait_timeout=TIMEOUT)
    wait_until(lambda: peer.events("welcome"), timeout=TIMEOUT)
    assert peer.events("welcome") == [{"user": "ann"}]
    assert peer.sio.call("whoami", timeout=TIMEOUT)["session"] == {"user": "ann"}


def test_event_middleware_on_any_and_outgoing(hooks_server: ServerProcess, peer: Peer) -> None:
    peer.sio.connect(hooks_server.url, auth={"user": "bob"}, wait_timeout=TIMEOUT)
    assert peer.sio.call("shout", "hey", timeout=TIMEOUT) == ["HEY"]  # rewritten to echo
    with pytest.raises(socketio.exceptions.TimeoutError):  # dropped: never acknowledged
        peer.sio.call("forbidden", timeout=0.5)
    wait_until(lambda: peer.events("error"), timeout=TIMEOUT)
    assert peer.events("error") == [{"message": "forbidden event", "data": {"event": "forbidden"}}]
    peer.sio.emit("nobody-handles-this", 1)
    seen = peer.sio.call("seen", timeout=TIMEOUT)
    assert seen == ["echo", "nobody-handles-this", "seen"]  # not the dropped one
    assert peer.sio.call("outgoing", timeout=TIMEOUT) == ["welcome", "error"]


def test_the_rate_limiter_drops_past_the_burst(hooks_server: ServerProcess, peer: Peer) -> None:
    peer.sio.connect(hooks_server.url, namespaces=["/limited"], wait_timeout=TIMEOUT)
    for n in range(6):
        peer.sio.emit("hit", n, namespace="/limited")
    wait_until(
        lambda: len(peer.events("hit_ok", "/limited")) + len(peer.events("error", "/limited")) >= 6,
        timeout=TIMEOUT,
    )
    assert peer.events("hit_ok", "/limited")[:3] == [0, 1, 2]
    errors = peer.events("error", "/limited")
    assert len(errors) >= 2 and all(e["message"] == "rate limit exceeded" for e in errors)


def test_the_rate_limiter_can_disconnect(hooks_server: ServerProcess, peer: Peer) -> None:
    peer.sio.connect(hooks_server.url, namespaces=["/strict"], wait_timeout=TIMEOUT)
    for n in range(5):
        peer.sio.emit("hit", n, namespace="/strict")
    wait_until(lambda: peer.events("disconnect", "/strict"), timeout=TIMEOUT)
    assert peer.events("hit_ok", "/strict") == [0, 1]
    assert peer.events("error", "/strict")[0]["message"] == "rate limit exceeded"


def test_a_dynamic_namespace_child(hooks_server: ServerProcess, peer: Peer) -> None:
    peer.sio.connect(
        hooks_server.url, namespaces=["/dyn-7"], auth={"room": "r"}, wait_timeout=TIMEOUT
    )
    assert peer.sio.call("broadcast", "hello", namespace="/dyn-7", timeout=TIMEOUT) == "/dyn-7"
    wait_until(lambda: peer.events("said", "/dyn-7"), timeout=TIMEOUT)
    assert peer.events("said", "/dyn-7") == [{"ns": "/dyn-7", "text": "hello"}]
    other = socketio.Client(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            other.connect(hooks_server.url, namespaces=["/dyn-x"], wait_timeout=2)
    finally:
        other.disconnect()
