"""The session relay between two engines in one process, over an in-memory bus.

Two real :class:`EngineServer` objects, each with its own :class:`Relay`; the
bus hands each process's inbox to a listener thread of its own, in order, as a
broker subscription does. Requests go in through werkzeug's test client (WSGI
calls, no sockets); the WebSocket stream is exercised with real workers in
tests/multinode/test_relay.py.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from sio_wsgi.config import DEFAULTS
from sio_wsgi.engine import relay as relay_module
from sio_wsgi.engine import relay_wire
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import DIRECT_MESSAGE_PREFIX, RELAYED
from sio_wsgi.engine.server import EngineServer
from sio_wsgi.exceptions import BusError
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from tests.support import wait_until

POLLING = "/engine.io/?EIO=4&transport=polling"


class Bus:
    """Inboxes per host; ``down`` makes every publish fail, ``deaf`` hosts never read."""

    def __init__(self) -> None:
        self.inboxes: dict[str, queue.Queue[bytes | None]] = {}
        self.down = False
        self.deaf: set[str] = set()
        self.threads: list[threading.Thread] = []

    def join(self, host: str, handler: Callable[[bytes], None]) -> None:
        inbox: queue.Queue[bytes | None] = queue.Queue()
        self.inboxes[host] = inbox

        def listen() -> None:
            while (raw := inbox.get()) is not None:
                if host not in self.deaf:
                    handler(raw)

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        for inbox in self.inboxes.values():
            inbox.put(None)
        for thread in self.threads:
            thread.join(5)


class Link:
    """One process's side of :class:`Bus` (a :class:`~sio_wsgi.engine.ports.RelayBus`)."""

    def __init__(self, bus: Bus, host_id: str) -> None:
        self.bus = bus
        self.host_id = host_id
        self.gone: set[str] = set()
        self.forgotten: set[str] = set()  # no heartbeat from them lately

    @property
    def healthy(self) -> bool:
        return not self.bus.down

    def ready(self, timeout: float) -> bool:
        return self.healthy

    def publish_direct(self, host: str, data: bytes) -> bool:
        if self.bus.down:
            raise BusError("down")
        inbox = self.bus.inboxes.get(host)
        if inbox is None or host in self.gone:
            return False
        inbox.put(data)
        return True

    def host_alive(self, host: str) -> bool:
        return host in self.bus.inboxes and host not in self.gone

    def knows_host(self, host: str) -> bool:
        return host in self.bus.inboxes and host not in self.forgotten

    def set_link_lost_handler(self, handler: Callable[[str], None] | None) -> None:
        pass

    def set_direct_handler(self, handler: Callable[[bytes], None] | None) -> None:
        assert handler is not None
        self.bus.join(self.host_id, handler)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.disconnects: list[tuple[str, str]] = []

    def on_connect(self, sid: str, environ: dict[str, Any]) -> bool:
        return True

    def on_message(self, sid: str, data: str | bytes) -> None:
        self.messages.append((sid, data))

    def on_disconnect(self, sid: str, reason: str) -> None:
        self.disconnects.append((sid, reason))


class Node:
    def __init__(
        self, bus: Bus, host_id: str, driver: ThreadingDriver | None = None, **options: Any
    ) -> None:
        self.handler = Recorder()
        self.engine = EngineServer(
            DEFAULTS.replace(**{"ping_interval": 2.0, "ping_timeout": 2.0, **options}),
            self.handler,
            driver or ThreadingDriver(),
            logging.getLogger("test.relay"),
        )
        self.link = Link(bus, host_id)
        self.engine.enable_relay(self.link)
        self.client = Client(self.engine.handle_request)

    def open(self) -> str:
        body = self.client.get(POLLING).get_data(as_text=True)
        return str(json.loads(body[1:])["sid"])


@pytest.fixture
def nodes() -> Iterator[tuple[Node, Node, Bus]]:
    bus = Bus()
    owner = Node(bus, "a" * 16, cors_allowed_origins=["http://ok.example"])
    front = Node(bus, "b" * 16, cors_allowed_origins=["http://ok.example"])
    yield owner, front, bus
    for node in (owner, front):
        node.engine.shutdown()
    bus.close()


def test_session_ids_name_their_process() -> None:
    bus = Bus()
    node = Node(bus, "0123456789abcdef")
    sid = node.open()
    assert sid.startswith("0123456789abcdef") and len(sid) == 36
    relay = node.engine.relay
    assert relay is not None
    assert relay.owner_of(sid) is None  # its own
    assert relay.owner_of("fedcba9876543210" + "x" * 20) == "fedcba9876543210"
    assert relay.owner_of("x" * 20) is None  # an id without a process (no relay then)
    assert relay.owner_of("FEDCBA9876543210" + "x" * 20) is None  # not a host id
    node.engine.shutdown()
    bus.close()


def test_polling_through_another_process(nodes: tuple[Node, Node, Bus]) -> None:
    owner, front, _ = nodes
    sid = owner.open()
    posted = front.client.post(f"{POLLING}&sid={sid}", data="4hello\x1e4world")
    assert (posted.status_code, posted.get_data()) == (200, b"ok")
    assert owner.handler.messages == [(sid, "hello"), (sid, "world")]
    owner.engine.send(sid, Outgoing(("4back",)))
    got = front.client.get(f"{POLLING}&sid={sid}")
    assert (got.status_code, got.get_data()) == (200, b"4back")


def test_a_long_poll_waits_on_the_owner(nodes: tuple[Node, Node, Bus]) -> None:
    owner, front, _ = nodes
    sid = owner.open()
    threading.Timer(0.3, owner.engine.send, (sid, Outgoing(("4later",)))).start()
    started = time.monotonic()
    got = front.client.get(f"{POLLING}&sid={sid}")
    assert got.get_data() == b"4later"
    assert 0.25 < time.monotonic() - started < 2.0


def test_a_relayed_request_is_checked_by_the_owner(nodes: tuple[Node, Node, Bus]) -> None:
    """Size limit (413, the owner's session closed), origin (403), transport rules."""
    owner, front, _ = nodes
    sid = owner.open()
    too_big = "4" + "x" * DEFAULTS.max_http_buffer_size
    got = front.client.post(f"{POLLING}&sid={sid}", data=too_big)
    assert got.status_code == 413
    assert owner.handler.disconnects == [(sid, "transport error")]

    sid = owner.open()
    got = front.client.get(f"{POLLING}&sid={sid}", headers={"Origin": "http://evil.example"})
    assert got.status_code == 403
    got = front.client.post(f"{POLLING}&sid={sid}", data="9")  # not a packet
    assert got.status_code == 400
    assert owner.handler.disconnects[-1] == (sid, "parse error")


def test_cors_headers_come_from_the_owner(nodes: tuple[Node, Node, Bus]) -> None:
    owner, front, _ = nodes
    sid = owner.open()
    got = front.client.post(
        f"{POLLING}&sid={sid}", data="4hi", headers={"Origin": "http://ok.example"}
    )
    assert got.headers["Access-Control-Allow-Origin"] == "http://ok.example"


def test_owner_gone_is_a_prompt_400(nodes: tuple[Node, Node, Bus]) -> None:
    owner, front, _ = nodes
    sid = owner.open()
    front.link.gone.add(owner.link.host_id)  # the broker says nobody listens there
    started = time.monotonic()
    got = front.client.get(f"{POLLING}&sid={sid}")
    assert got.status_code == 400
    assert json.loads(got.get_data())["code"] == 1
    assert time.monotonic() - started < 0.5


def test_owner_that_does_not_acknowledge(
    nodes: tuple[Node, Node, Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "ACK_TIMEOUT", 0.3)
    owner, front, bus = nodes
    sid = owner.open()
    bus.deaf.add(owner.link.host_id)
    started = time.monotonic()
    got = front.client.post(f"{POLLING}&sid={sid}", data="4x")
    assert got.status_code == 400
    assert 0.25 < time.monotonic() - started < 2.0


def test_owner_dies_during_a_long_poll(nodes: tuple[Node, Node, Bus]) -> None:
    owner, front, _ = nodes
    sid = owner.open()
    threading.Timer(0.3, front.link.gone.add, (owner.link.host_id,)).start()
    started = time.monotonic()
    got = front.client.get(f"{POLLING}&sid={sid}")
    assert got.status_code == 400
    # found by the liveness check (every LIVENESS_EVERY s), not at the poll's end
    assert time.monotonic() - started < relay_module.LIVENESS_EVERY + 1.0


def test_bus_down_is_503_and_local_sessions_go_on(nodes: tuple[Node, Node, Bus]) -> None:
    owner, front, bus = nodes
    remote = owner.open()
    local = front.open()
    bus.down = True
    got = front.client.get(f"{POLLING}&sid={remote}", headers={"Origin": "http://ok.example"})
    assert got.status_code == 503
    assert json.loads(got.get_data())["message"] == "Session relay unavailable"
    assert got.headers["Access-Control-Allow-Origin"] == "http://ok.example"
    posted = front.client.post(f"{POLLING}&sid={local}", data="4still")
    assert posted.status_code == 200
    bus.down = False
    posted = front.client.post(f"{POLLING}&sid={remote}", data="4back")
    assert posted.status_code == 200
    assert (remote, "back") in owner.handler.messages


def test_a_relayed_request_is_never_relayed_again(nodes: tuple[Node, Node, Bus]) -> None:
    """An owner that lost the session answers 400 itself, whatever the id says."""
    owner, front, _ = nodes
    sid = "b" * 16 + "x" * 20  # the front's id, unknown there
    got = owner.client.get(f"{POLLING}&sid={sid}", environ_overrides={RELAYED: "c" * 16})
    assert got.status_code == 400
    got = front.client.get(f"{POLLING}&sid={'a' * 16 + 'y' * 20}")
    assert got.status_code == 400  # relayed to the owner, which does not know it


# ---------------------------------------------------------------- the managers' inboxes


def _attached(manager: Any) -> Any:
    """Start ``manager``'s listener (threads) and wait until it is subscribed."""
    manager.attach(lambda *a: [], lambda *a: None, ThreadingDriver())
    wait_until(lambda: manager.healthy, 5, "the listener subscribed")
    return manager


def test_kombu_direct_messages_reach_their_process_only() -> None:
    """kombu's ``Producer.publish(exchange="")`` means "my own exchange" (the fanout
    one): a relayed request went to every process, each answering it (400 from all
    but the owner), and the front took whichever answer came first."""
    pytest.importorskip("kombu")
    from sio_wsgi.managers.kombu import KombuManager

    channel = f"relay-unit-{time.monotonic_ns()}"
    options: dict[str, Any] = {"poll_interval": 0.05, "reconnect_delay": (0.02, 0.2)}
    a = KombuManager("memory://", channel=channel, **options)
    b = KombuManager("memory://", channel=channel, **options)
    inboxes: dict[str, queue.Queue[bytes]] = {a.host_id: queue.Queue(), b.host_id: queue.Queue()}
    try:
        for manager in (a, b):
            manager.set_direct_handler(inboxes[manager.host_id].put)
            _attached(manager)
        assert a.publish_direct(b.host_id, b"\x00to b") is True
        assert inboxes[b.host_id].get(timeout=5) == b"\x00to b"
        with pytest.raises(queue.Empty):
            inboxes[a.host_id].get(timeout=0.3)
        assert a.host_alive(b.host_id) and not a.host_alive("0" * 16)
    finally:
        for manager in (a, b):
            manager.shutdown()


class _Channel:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.closed = False

    def queue_declare(self, queue: str, passive: bool) -> None:
        assert passive
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


class _Connection:
    channel_errors = (RuntimeError,)

    def __init__(self, error: Exception | None) -> None:
        self.opened: list[_Channel] = []
        self.error = error

    def channel(self) -> _Channel:
        self.opened.append(_Channel(self.error))
        return self.opened[-1]


class _Refused(RuntimeError):
    def __init__(self, code: int) -> None:
        super().__init__(f"({code})")
        self.code = code


@pytest.mark.parametrize(
    ("error", "alive"),
    [(None, True), (_Refused(405), True), (_Refused(404), False), (RuntimeError("x"), False)],
)
def test_kombu_owner_liveness_on_rabbitmq(error: Exception | None, alive: bool) -> None:
    """RabbitMQ refuses a passive declare of another connection's exclusive queue
    with 405 RESOURCE_LOCKED: the owner is there. Taken for "gone", every relayed
    request whose answer did not beat the liveness check was a 400."""
    pytest.importorskip("kombu")
    from sio_wsgi.managers.kombu import KombuManager

    manager = KombuManager("memory://", channel="relay-unit-liveness")
    connection = _Connection(error)
    manager._alive_conn = connection  # the liveness check's own connection
    manager._channel_errors = _Connection.channel_errors
    assert manager.host_alive("a" * 16) is alive
    assert [c.closed for c in connection.opened] == [True]


def test_a_failed_direct_publish_leaves_the_state_to_the_listener() -> None:
    """One failed send to an inbox (a stale publishing connection) raises BusError
    for that request, but does not mark the bus down: that state only came back
    with a resubscription, so every later relayed request was a 503."""
    from tests.unit.bus_fakes import BrokerDown, BusManager, InMemoryBus

    failures = [BrokerDown("stale connection")]

    class Manager(BusManager):
        def _publish_direct_once(self, host: str, data: bytes) -> bool:
            if failures:
                raise failures.pop()
            return True

    manager = _attached(Manager(InMemoryBus()))
    try:
        with pytest.raises(BusError):
            manager.publish_direct("a" * 16, b"\x00x")
        assert manager.healthy
        assert manager.publish_direct("a" * 16, b"\x00x") is True
    finally:
        manager.shutdown()


class CountingDriver(ThreadingDriver):
    """Counts the tasks started (``spawn``) and the pooled jobs (``submit``)."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned = 0
        self.submitted = 0

    def spawn(self, fn: Callable[..., object], *args: object, **kwargs: object) -> Any:
        self.spawned += 1
        return super().spawn(fn, *args, **kwargs)

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        self.submitted += 1
        super().submit(fn, *args)


def test_relayed_requests_run_on_pooled_tasks() -> None:
    """No thread started per relayed request on the owner (it cost about 0.2 ms of CPU
    each in threading mode, see docs/benchmarks.md)."""
    bus = Bus()
    driver = CountingDriver()
    owner, front = Node(bus, "a" * 16, driver=driver), Node(bus, "b" * 16)
    try:
        sid = owner.open()
        spawned, submitted = driver.spawned, driver.submitted
        for i in range(5):
            got = front.client.post(f"{POLLING}&sid={sid}", data=f"4m{i}")
            assert (got.status_code, got.get_data()) == (200, b"ok")
        assert owner.handler.messages == [(sid, f"m{i}") for i in range(5)]
        assert driver.spawned == spawned
        assert driver.submitted >= submitted + 5
    finally:
        for node in (owner, front):
            node.engine.shutdown()
        bus.close()


def test_serving_does_not_wait_for_the_ack_publish(nodes: tuple[Node, Node, Bus]) -> None:
    """The owner starts serving before it publishes the acknowledgement: a slow ack publish
    does not delay the answer."""
    owner, front, _ = nodes
    sid = owner.open()
    publish = owner.link.publish_direct

    def slow_acks(host: str, data: bytes) -> bool:
        if data[len(DIRECT_MESSAGE_PREFIX) :][:1] == relay_wire.ACK:
            time.sleep(0.5)
        return publish(host, data)

    owner.link.publish_direct = slow_acks  # type: ignore[method-assign]
    started = time.monotonic()
    got = front.client.post(f"{POLLING}&sid={sid}", data="4fast")
    assert (got.status_code, got.get_data()) == (200, b"ok")
    assert time.monotonic() - started < 0.4
    assert owner.handler.messages == [(sid, "fast")]


def test_an_unknown_process_is_not_asked(nodes: tuple[Node, Node, Bus]) -> None:
    """A sid naming a process nobody heard from (made up, or gone long ago) is a 400
    at once: nothing is published, nobody waits."""
    owner, front, _ = nodes
    sid = owner.open()
    front.link.forgotten.add(owner.link.host_id)
    published: list[str] = []
    publish = front.link.publish_direct

    def counting(host: str, data: bytes) -> bool:
        published.append(host)
        return publish(host, data)

    front.link.publish_direct = counting  # type: ignore[method-assign]
    got = front.client.get(f"{POLLING}&sid={sid}")
    assert got.status_code == 400 and json.loads(got.get_data())["code"] == 1
    got = front.client.get(f"{POLLING}&sid={'c' * 16 + 'z' * 20}")
    assert got.status_code == 400
    assert published == []
