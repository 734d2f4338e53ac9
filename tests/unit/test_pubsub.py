"""PubSubManager: two Servers in one process joined by tests/unit/bus_fakes.py's InMemoryBus."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sio_wsgi.exceptions import DisconnectedError, TimeoutError
from sio_wsgi.managers import messages as bus
from sio_wsgi.managers.pubsub import BusError
from sio_wsgi.protocol.sio import Packet, PacketType
from tests.unit.bus_fakes import BusManager, InMemoryBus
from tests.unit.sio_fakes import FakeEngine, FakeServer, SioClient, wait_until


class Node:
    """One server on the bus, with helpers to connect fake clients."""

    def __init__(self, bus_: InMemoryBus, **options: Any) -> None:
        self.manager = BusManager(bus_, heartbeat_interval=0.2, **options)
        self.server = FakeServer(client_manager=self.manager)
        self.engine: FakeEngine = self.server.eio
        wait_until(lambda: self.manager.healthy)

    def client(self, namespace: str = "/") -> tuple[SioClient, str]:
        client = SioClient(self.engine)
        return client, client.connect(namespace)


@pytest.fixture
def fake_bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def nodes(fake_bus: InMemoryBus) -> Iterator[tuple[Node, Node]]:
    a, b = Node(fake_bus), Node(fake_bus)
    wait_until(lambda: a.manager.nodes() == [b.manager.host_id])
    wait_until(lambda: b.manager.nodes() == [a.manager.host_id])
    yield a, b
    for node in (a, b):
        node.server.shutdown()


def event_of(client: SioClient, timeout: float = 3.0) -> list[Any]:
    packet = client.next_packet(timeout)
    assert packet.type in (PacketType.EVENT, PacketType.BINARY_EVENT), packet
    data: list[Any] = packet.data
    return data


def nothing_more(client: SioClient, wait: float = 0.15) -> bool:
    with pytest.raises(AssertionError):
        client.next_packet(wait)
    return True


def test_emit_to_everyone_crosses_nodes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    ca, _ = a.client()
    cb, _ = b.client()
    a.server.emit("news", {"n": 1})
    assert event_of(ca) == ["news", {"n": 1}]
    assert event_of(cb) == ["news", {"n": 1}]
    assert nothing_more(ca) and nothing_more(cb)


def test_room_spans_nodes_and_skip_sid_is_honoured_remotely(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    ca, sa = a.client()
    cb, sb = b.client()
    cb2, sb2 = b.client()
    a.server.enter_room(sa, "lobby")
    b.server.enter_room(sb, "lobby")
    b.server.enter_room(sb2, "lobby")
    a.server.emit("hi", "all", room="lobby", skip_sid=sb2)
    assert event_of(ca) == ["hi", "all"]
    assert event_of(cb) == ["hi", "all"]
    assert nothing_more(cb2)


def test_emit_to_a_sid_on_another_node_with_binary(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    cb, sb = b.client()
    a.server.emit("blob", (b"\x00\x01", {"k": b"v"}), to=sb)
    assert event_of(cb) == ["blob", b"\x00\x01", {"k": b"v"}]


def test_emit_to_a_local_sid_does_not_touch_the_bus(
    nodes: tuple[Node, Node], fake_bus: InMemoryBus
) -> None:
    a, _ = nodes
    ca, sa = a.client()
    before = len(fake_bus.published)
    a.server.emit("private", 1, to=sa)
    assert event_of(ca) == ["private", 1]
    emits = [m for m in fake_bus.published[before:] if b'"type":"emit"' in m]
    assert emits == []


def test_remote_enter_and_leave_room(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    cb, sb = b.client()
    a.server.enter_room(sb, "vip")
    wait_until(lambda: "vip" in b.server.rooms(sb))
    a.server.emit("perk", 1, room="vip")
    assert event_of(cb) == ["perk", 1]
    a.server.leave_room(sb, "vip")
    wait_until(lambda: "vip" not in b.server.rooms(sb))


def test_close_room_everywhere(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _, sa = a.client()
    _, sb = b.client()
    a.server.enter_room(sa, "tmp")
    b.server.enter_room(sb, "tmp")
    a.server.close_room("tmp")
    wait_until(lambda: "tmp" not in b.server.rooms(sb))
    assert "tmp" not in a.server.rooms(sa)


def test_remote_disconnect_runs_the_owner_handler(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    reasons: list[str] = []
    b.server.on("disconnect", lambda sid, reason: reasons.append(reason))
    cb, sb = b.client()
    a.server.disconnect(sb)
    packet = cb.next_packet()
    assert packet.type == PacketType.DISCONNECT
    wait_until(lambda: reasons == ["server disconnect"])
    assert not b.manager.is_connected(sb, "/")


def test_ack_of_a_remote_client_returns_to_the_asking_node(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    cb, sb = b.client()
    got: list[tuple[Any, ...]] = []
    a.server.emit("question", "q?", to=sb, callback=lambda *args: got.append(args))
    packet = cb.next_packet()
    assert packet.data == ["question", "q?"] and packet.id is not None
    cb.ack(packet.id, "answer", b"\x07")
    wait_until(lambda: got == [("answer", b"\x07")])


def test_call_a_client_of_another_node(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    cb, sb = b.client()
    results: list[Any] = []
    task = a.server.start_background_task(
        lambda: results.append(a.server.call("q", 1, to=sb, timeout=3))
    )
    packet = cb.next_packet()
    assert packet.id is not None
    cb.ack(packet.id, 42)
    task.join(3)
    assert results == [42]


def test_call_an_unknown_sid_times_out(nodes: tuple[Node, Node]) -> None:
    a, _ = nodes
    with pytest.raises(TimeoutError):
        a.server.call("q", to="nobody", timeout=0.2)


def test_call_needs_a_bus_to_reach_unknown_sids() -> None:
    server = FakeServer()
    with pytest.raises(DisconnectedError):
        server.call("q", to="nobody", timeout=0.2)
    server.shutdown()


def test_cluster_queries(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _, sa = a.client()
    _, sb = b.client()
    b.server.enter_room(sb, "red")
    a.server.enter_room(sa, "red")
    assert sorted(a.server.fetch_sids("red", timeout=2)) == sorted([sa, sb])
    assert sorted(a.server.fetch_sids(timeout=2)) == sorted([sa, sb])
    assert sorted(a.server.fetch_rooms(sb, timeout=2)) == sorted([sb, "red"])
    assert a.server.fetch_rooms("nobody", timeout=0.3) == []
    assert a.server.rooms(sb) == []  # the local view stays local


def test_query_with_a_silent_node_returns_what_arrived(
    fake_bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    a = Node(fake_bus)
    _, sa = a.client()
    a.manager._nodes.seen["ghost"] = 1e18  # a node that never answers
    with caplog.at_level(logging.WARNING):
        assert a.server.fetch_sids(timeout=0.2) == [sa]
    assert "no answer from ghost" in caplog.text
    a.server.shutdown()


def test_server_side_emit_reaches_other_nodes_only(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    heard: dict[str, list[Any]] = {"a": [], "b": []}
    a.server.on_server_event("sync", lambda *args: heard["a"].append(args))

    @b.server.on_server_event("sync")
    def on_sync(*args: Any) -> None:
        heard["b"].append(args)

    a.server.server_side_emit("sync", ({"v": 1}, b"\x01"))
    wait_until(lambda: heard["b"] == [({"v": 1}, b"\x01")])
    assert heard["a"] == []


def test_bad_bus_message_is_logged_and_dropped(
    nodes: tuple[Node, Node], fake_bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    cb, _ = b.client()
    with caplog.at_level(logging.WARNING, logger="sio_wsgi.managers.pubsub"):
        fake_bus.inject(b"\x80\x04\x95 pickled stuff")
        fake_bus.inject(b'{"v":99,"type":"emit","host":"x","data":{}}')
        wait_until(lambda: b.manager.health().dropped == 2)
    assert "does not parse" in caplog.text
    a.server.emit("still", "alive")
    assert event_of(cb) == ["still", "alive"]


def test_broker_outage_raises_then_recovers(
    nodes: tuple[Node, Node], fake_bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    cb, _ = b.client()
    with caplog.at_level(logging.WARNING, logger="sio_wsgi.managers.pubsub"):
        fake_bus.down = True
        wait_until(lambda: not a.manager.healthy and not b.manager.healthy)
        with pytest.raises(BusError):
            a.server.emit("lost", 1)
        fake_bus.down = False
        wait_until(lambda: a.manager.healthy and b.manager.healthy)
    assert "lost the connection" in caplog.text
    assert "reconnected" in caplog.text
    health = b.manager.health()
    assert health.reconnects == 1 and health.last_error and "down" in health.last_error
    a.server.emit("back", 2)
    assert event_of(cb) == ["back", 2]


def test_write_only_external_emitter(nodes: tuple[Node, Node], fake_bus: InMemoryBus) -> None:
    a, b = nodes
    ca, sa = a.client()
    cb, _ = b.client()
    external = BusManager(fake_bus, write_only=True)
    external.emit("ext", {"x": 1})  # python-socketio's signature: data, namespace='/'
    assert event_of(ca) == ["ext", {"x": 1}]
    assert event_of(cb) == ["ext", {"x": 1}]
    external.emit("pair", data=(1, 2), room=sa)
    assert event_of(ca) == ["pair", 1, 2]
    external.emit("list", [1, 2])
    assert event_of(ca) == ["list", [1, 2]]
    with pytest.raises(ValueError):
        external.emit("ask", 1, callback=print)
    with pytest.raises(RuntimeError):
        external.fetch_participants("/", None)
    assert not external.health().listening and external.healthy
    assert external.host_id not in a.manager.nodes()


def test_write_only_emitter_reports_a_dead_broker(fake_bus: InMemoryBus) -> None:
    external = BusManager(fake_bus, write_only=True)
    fake_bus.down = True
    with pytest.raises(BusError):
        external.emit("ext", 1)
    assert not external.healthy


def test_ignore_queue_stays_local(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    ca, _ = a.client()
    cb, _ = b.client()
    a.server.emit("local", 1, ignore_queue=True)
    assert event_of(ca) == ["local", 1]
    assert nothing_more(cb)


def test_shutdown_says_goodbye(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    b.server.shutdown()
    wait_until(lambda: a.manager.nodes() == [])
    assert not b.manager.health().listening


def test_listener_survives_a_failing_handler(
    nodes: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    cb, sb = b.client()
    a.server.emit("q", 1, to=sb, callback=lambda *args: 1 / 0)
    packet = cb.next_packet()
    assert packet.id is not None
    with caplog.at_level(logging.ERROR):
        cb.ack(packet.id, "x")
        wait_until(lambda: "error handling a ack bus message" in caplog.text)
    a.server.emit("after", 1)
    assert event_of(cb) == ["after", 1]


def test_messages_carry_the_sender_host(fake_bus: InMemoryBus) -> None:
    node = Node(fake_bus)
    node.server.emit("x", 1)
    envelopes = [bus.decode(raw) for raw in fake_bus.published]
    emits = [e for e in envelopes if isinstance(e.message, bus.Emit)]
    assert emits and emits[0].host == node.manager.host_id
    assert emits[0].message == bus.Emit("x", [1], "/", None, None, None, False)
    node.server.shutdown()


def test_namespaced_emit_crosses_nodes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    b.server.on("connect", lambda sid, environ, auth: None, namespace="/chat")
    cb, _ = b.client("/chat")
    a.server.emit("msg", "hey", namespace="/chat")
    packet = cb.next_packet()
    assert packet == Packet(PacketType.EVENT, "/chat", ["msg", "hey"])


def test_a_node_that_just_subscribed_asks_the_broker_about_unknown_hosts(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a worker that just started has not heard its older peers' replies to its hello
    # yet: a session of theirs must not be taken for gone (issue 16's CI failure)
    a, b = nodes
    asked: list[str] = []
    alive = "00112233aabbccdd"

    def host_alive(host: str) -> bool:
        asked.append(host)
        return host == alive

    monkeypatch.setattr(b.manager, "_host_alive", host_alive)
    table = b.manager._nodes
    table.subscribed_at = time.monotonic()  # as if b had just subscribed
    assert table.settling()
    assert b.manager.knows_host(a.manager.host_id) and asked == []  # heard: no question
    assert b.manager.knows_host(alive) and asked == [alive]
    assert not b.manager.knows_host("ffeeddccbbaa9988")
    # settled: a host not heard from is gone, without a broker round trip
    table.subscribed_at = time.monotonic() - 2 * table.heartbeat_interval
    asked.clear()
    assert not table.settling()
    assert not b.manager.knows_host(alive) and asked == []


def test_ready_waits_for_the_first_subscription_only(fake_bus: InMemoryBus) -> None:
    fake_bus.down = True
    manager = BusManager(fake_bus, heartbeat_interval=0.2)
    FakeServer(client_manager=manager)
    try:
        started = time.monotonic()
        assert not manager.ready(0.2)  # starting: waited, in vain
        assert time.monotonic() - started >= 0.2
        assert manager._nodes.settling()  # never subscribed: nobody heard yet
        fake_bus.down = False
        assert manager.ready(5.0)
        fake_bus.down = True
        wait_until(lambda: not manager.healthy)
        started = time.monotonic()
        assert not manager.ready(5.0)  # an outage later: no wait
        assert time.monotonic() - started < 1.0
    finally:
        fake_bus.down = False
        manager.shutdown()
