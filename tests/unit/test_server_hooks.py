"""The hooks through the Server API: the registration forms, a Namespace class for a
dynamic family, rate_limit(), and outgoing observers seeing broadcasts from another node."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import sio_wsgi
from sio_wsgi.protocol.sio import PacketType
from tests.unit.bus_fakes import BusManager, InMemoryBus
from tests.unit.sio_fakes import FakeServer, SioClient, make_server, wait_until


def test_registration_forms_and_defaults() -> None:
    server, _ = make_server()

    def mw(sid: str) -> None: ...

    assert server.use(mw) is mw
    assert server.use(mw, namespace="/x") is mw

    @server.use(namespace="*")
    def mw2(sid: str, environ: dict[str, Any], auth: Any) -> None: ...

    @server.use_event
    def ev(sid: str, event: str, args: list[Any]) -> None: ...

    @server.on_any
    def anything(event: str, namespace: str, sid: str, *args: Any) -> None: ...

    @server.on_outgoing(namespace="/x")
    def out(sid: str, namespace: str, event: str, args: list[Any]) -> None: ...

    limiter = server.rate_limit(rate=5, burst=5, namespace="*")
    assert isinstance(limiter, sio_wsgi.RateLimit)
    hooks = server.hooks
    assert [h.key for h in hooks.chain("connect", "/")] == ["/", "*"]
    assert [h.key for h in hooks.chain("connect", "/x")] == ["/x", "*"]
    assert [h.fn for h in hooks.chain("event", "/")] == [ev, limiter]
    assert [h.fn for h in hooks.chain("any", "/y")] == [anything]
    assert server.manager.outgoing is not None
    with pytest.raises(TypeError):
        server.use(42)  # type: ignore[arg-type]


def test_no_hooks_no_outgoing_runner() -> None:
    server, _ = make_server()
    assert server.manager.outgoing is None
    assert not server.hooks.incoming and not server.hooks.connect


def test_a_namespace_class_for_a_family_and_the_rate_limit_helper() -> None:
    server, engine = make_server()
    got: list[tuple[str, ...]] = []

    class Rooms(sio_wsgi.Namespace):
        def on_connect(self, namespace: str, sid: str, environ: dict[str, Any]) -> None:
            got.append(("connect", namespace))
            self.enter_room(sid, "all", namespace=namespace)

        def on_ping(self, namespace: str, sid: str, n: int) -> int:
            got.append(("ping", namespace))
            return n

    family = Rooms(re.compile(r"^/room-[a-z]+$"))
    server.register_namespace(family)
    server.rate_limit(rate=0.001, burst=1, namespace=family.namespace)
    client = SioClient(engine)
    sid = client.connect("/room-a")
    client.emit("ping", 1, namespace="/room-a", ack=1)
    assert client.next_packet().data == [1]
    client.emit("ping", 2, namespace="/room-a", ack=2)
    error = client.next_packet()
    assert error.type == PacketType.EVENT and error.data[0] == "error"
    assert got == [("connect", "/room-a"), ("ping", "/room-a")]
    assert set(server.rooms(sid, namespace="/room-a")) == {sid, "all"}
    with pytest.raises(ValueError):
        family.emit("x")  # a family needs the concrete namespace


@pytest.fixture
def two_nodes() -> Iterator[tuple[FakeServer, FakeServer, Any]]:
    bus = InMemoryBus()
    servers = [FakeServer(client_manager=BusManager(bus, heartbeat_interval=0.2)) for _ in range(2)]
    a, b = servers
    wait_until(lambda: a.manager.healthy and b.manager.healthy)
    wait_until(lambda: a.manager.nodes() == [b.manager.host_id])  # type: ignore[attr-defined]
    yield a, b, bus
    for server in servers:
        server.shutdown()


def test_outgoing_sees_broadcasts_from_another_node(
    two_nodes: tuple[FakeServer, FakeServer, Any],
) -> None:
    a, b, _ = two_nodes
    seen: list[tuple[str, str, str, list[Any]]] = []
    lock = threading.Lock()

    @b.on_outgoing
    def record(sid: str, namespace: str, event: str, args: list[Any]) -> None:
        with lock:
            seen.append((sid, namespace, event, args))

    client = SioClient(b.eio)
    sid = client.connect()
    a.emit("news", {"n": 1})
    assert client.next_packet().data == ["news", {"n": 1}]
    wait_until(lambda: len(seen) == 1)
    assert seen == [(sid, "/", "news", [{"n": 1}])]
