"""The Admin UI's protocol (sio_wsgi/admin.py) with the in-process test client.

The admin client speaks what the UI speaks (``@socket.io/admin-ui``'s
``typed-events.ts``); the browser test (tests/examples/test_admin_ui_browser.py)
drives the UI itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest

import sio_wsgi
from sio_wsgi.admin import Credentials, EventBuffer, serialize_handshake
from sio_wsgi.exceptions import ConfigError
from sio_wsgi.testing import SocketIOTestClient
from tests.support import wait_until
from tests.unit.bus_fakes import BusManager, InMemoryBus

ADMIN = "/admin"
LOGIN = {"username": "admin", "password": "s3cret"}


def make_server(**manager: Any) -> sio_wsgi.Server:
    sio = sio_wsgi.Server(async_mode="threading", **manager)

    @sio.event
    def connect(sid: str, environ: Any, auth: Any) -> None:
        sio.enter_room(sid, "lobby")

    @sio.on("hello")
    def hello(sid: str, text: str) -> str:
        sio.emit("hi", text, to=sid)
        return "ok"

    return sio


@pytest.fixture
def sio() -> Iterator[sio_wsgi.Server]:
    server = make_server()
    yield server
    server.shutdown()


def admin_client(sio: sio_wsgi.Server, auth: Any = LOGIN) -> SocketIOTestClient:
    client = SocketIOTestClient(sio, namespace=ADMIN, auth=auth)
    assert client.is_connected(ADMIN), client.connect_error(ADMIN)
    return client


# ------------------------------------------------------------------ credentials


def test_plain_credentials_compare_every_field() -> None:
    creds = Credentials(LOGIN)
    assert creds.required
    assert creds.accept({"username": "admin", "password": "s3cret"})
    assert not creds.accept({"username": "admin", "password": "s3cre"})
    assert not creds.accept({"username": "root", "password": "s3cret"})
    assert not creds.accept({"username": "admin"})
    assert not creds.accept({"username": "admin", "password": 5})
    assert not creds.accept(None)
    assert not creds.accept("admin:s3cret")


def test_bcrypt_hash_is_checked_as_node_does() -> None:
    hashed = bcrypt.hashpw(b"changeit", bcrypt.gensalt(rounds=4)).decode()
    creds = Credentials({"username": "admin", "password": hashed})
    assert creds.accept({"username": "admin", "password": "changeit"})
    assert not creds.accept({"username": "admin", "password": hashed})  # not the hash itself
    assert not creds.accept({"username": "admin", "password": "changeIt"})
    php = "$2y$" + hashed[4:]  # PHP's prefix for the same hash
    assert Credentials({"username": "admin", "password": php}).accept(
        {"username": "admin", "password": "changeit"}
    )
    broken = Credentials({"username": "admin", "password": "$2b$04$short"})
    assert not broken.accept({"username": "admin", "password": "changeit"})


def test_credential_lists_callables_and_disabled() -> None:
    creds = Credentials([LOGIN, {"username": "ops", "password": "pw"}])
    assert creds.accept({"username": "ops", "password": "pw"})
    assert not creds.accept({"username": "ops", "password": "s3cret"})
    assert Credentials(lambda auth: auth == {"token": "t"}).accept({"token": "t"})
    assert not Credentials(lambda auth: False).accept(LOGIN)
    off = Credentials(False)
    assert not off.required and off.accept(None)


@pytest.mark.parametrize("auth", [None, "admin", [{}], [5], 7])
def test_unusable_auth_is_a_config_error(auth: Any) -> None:
    with pytest.raises(ConfigError):
        Credentials(auth)


def test_instrument_validates_its_options(sio: sio_wsgi.Server) -> None:
    with pytest.raises(ConfigError, match="auth"):
        sio.instrument()
    with pytest.raises(ConfigError, match="mode"):
        sio.instrument(auth=False, mode="debug")
    with pytest.raises(ConfigError, match="namespace"):
        sio.instrument(auth=False, namespace="admin")
    only_root = sio_wsgi.Server(async_mode="threading", namespaces=["/"])
    with pytest.raises(ConfigError, match="refuse the admin namespace /admin"):
        only_root.instrument(auth=False)
    with_admin = sio_wsgi.Server(async_mode="threading", namespaces=["/", "/admin"])
    with_admin.instrument(auth=False)
    for server in (only_root, with_admin):
        server.shutdown()


# ------------------------------------------------------------------ pieces


def test_event_buffer_aggregates_per_second_and_type() -> None:
    now = [100.2]
    buffer = EventBuffer(clock=lambda: now[0])
    buffer.push("packetsIn")
    buffer.push("bytesIn", None, 10)
    buffer.push("bytesIn", None, 5)
    now[0] = 101.7
    buffer.push("rawDisconnection", "transport close")
    values = sorted(buffer.take(), key=lambda v: (v["timestamp"], v["type"]))
    assert values == [
        {"timestamp": 100000, "type": "bytesIn", "count": 15},
        {"timestamp": 100000, "type": "packetsIn", "count": 1},
        {
            "timestamp": 101000,
            "type": "rawDisconnection",
            "subType": "transport close",
            "count": 1,
        },
    ]
    assert buffer.take() == []


def test_handshake_serialization() -> None:
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": "pytest",
        "HTTP_ORIGIN": "http://example.com",
        "CONTENT_TYPE": "text/plain",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": "EIO=4&transport=polling&room=a",
        "wsgi.url_scheme": "http",
    }
    shake = serialize_handshake(environ, 1_700_000_000.25)
    assert shake["address"] == "10.0.0.7"
    assert shake["headers"] == {
        "user-agent": "pytest",
        "origin": "http://example.com",
        "content-type": "text/plain",
    }
    assert shake["query"] == {"EIO": "4", "transport": "polling", "room": "a"}
    assert shake["issued"] == 1_700_000_000_250
    assert shake["url"] == "/socket.io/?EIO=4&transport=polling&room=a"
    assert shake["secure"] is False and shake["xdomain"] is True
    assert shake["time"].startswith("Tue Nov 14 2023 22:13:20 GMT+0000")
    forwarded = serialize_handshake({**environ, "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, 0)
    assert forwarded["address"] == "1.2.3.4"


# ------------------------------------------------------------------ the namespace


def test_wrong_credentials_are_a_connect_error(sio: sio_wsgi.Server) -> None:
    sio.instrument(auth=LOGIN)
    client = SocketIOTestClient(sio, namespace=ADMIN, auth={"username": "admin", "password": "x"})
    try:
        assert not client.is_connected(ADMIN)
        assert client.connect_error(ADMIN) == {"message": "invalid credentials"}
    finally:
        client.close()


def test_login_gets_session_config_sockets_and_stats(sio: sio_wsgi.Server) -> None:
    sio.instrument(auth=LOGIN, server_id="node-a")
    alice = SocketIOTestClient(sio, headers={"User-Agent": "alice"})
    bob = SocketIOTestClient(sio, query_string="user=bob")
    admin = admin_client(sio)
    try:
        (session_id,) = admin.wait_for("session", ADMIN)
        assert isinstance(session_id, str) and len(session_id) == 16
        (config,) = admin.wait_for("config", ADMIN)
        assert config["supportedFeatures"] == [
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
            "AGGREGATED_EVENTS",
            "ALL_EVENTS",
        ]
        (sockets,) = admin.wait_for("all_sockets", ADMIN)
        by_id = {s["id"]: s for s in sockets}
        a = by_id[alice.sid()]
        assert a["nsp"] == "/" and a["transport"] == "polling"
        assert sorted(a["rooms"]) == sorted([alice.sid(), "lobby"])
        assert a["handshake"]["headers"]["user-agent"] == "alice"
        assert len(a["clientId"]) == 12 and a["clientId"] not in (alice.eio_sid or "")
        assert by_id[bob.sid()]["handshake"]["query"]["user"] == "bob"
        assert set(a) == {"id", "clientId", "transport", "nsp", "data", "handshake", "rooms"}
        (stats,) = admin.wait_for("server_stats", ADMIN)
        assert stats["serverId"] == "node-a" and stats["pid"] > 0
        assert stats["clientsCount"] == 3 and stats["pollingClientsCount"] == 3
        counts = {n["name"]: n["socketsCount"] for n in stats["namespaces"]}
        assert counts["/"] == 2 and counts[ADMIN] == 1
        kinds = {e["type"] for e in stats["aggregatedEvents"]}
        assert {"rawConnection", "packetsIn", "bytesIn", "packetsOut", "bytesOut"} <= kinds
        # the session id logs in again without the password
        again = admin_client(sio, auth={"sessionId": session_id})
        again.close()
    finally:
        for client in (alice, bob, admin):
            client.close()


def test_live_events_in_development_mode(sio: sio_wsgi.Server) -> None:
    sio.instrument(auth=False)
    admin = admin_client(sio, auth=None)
    alice = SocketIOTestClient(sio)
    try:
        sid = alice.sid()
        socket, when = admin.wait_for("socket_connected", ADMIN)  # the admin's own socket
        assert socket["nsp"] == ADMIN
        socket, when = admin.wait_for("socket_connected", ADMIN)
        assert socket["id"] == sid and "lobby" in socket["rooms"] and when.endswith("Z")
        assert alice.emit("hello", "there", callback=True) == "ok"
        nsp, who, args, _ = admin.wait_for("event_received", ADMIN)
        assert (nsp, who, args) == ("/", sid, ["hello", "there"])
        assert admin.wait_for("event_sent", ADMIN)[:3] == ["/", sid, ["hi", "there"]]
        assert admin.wait_for("room_joined", ADMIN)[:3] == ["/", "lobby", sid]  # in connect
        sio.enter_room(sid, "vip")
        assert admin.wait_for("room_joined", ADMIN)[:3] == ["/", "vip", sid]
        sio.leave_room(sid, "vip")
        assert admin.wait_for("room_left", ADMIN)[:3] == ["/", "vip", sid]
        alice.disconnect()
        nsp, who, reason, _ = admin.wait_for("socket_disconnected", ADMIN)
        assert (nsp, who, reason) == ("/", sid, "client disconnect")
    finally:
        admin.close()
        alice.close()


def test_actions_join_leave_disconnect(sio: sio_wsgi.Server) -> None:
    sio.instrument(auth=LOGIN)
    admin = admin_client(sio)
    alice, bob = SocketIOTestClient(sio), SocketIOTestClient(sio)
    a, b = alice.sid(), bob.sid()
    try:
        admin.emit("join", "/", "team", a, namespace=ADMIN)
        wait_until(lambda: "team" in sio.rooms(a), what="alice in team")
        admin.emit("join", "/", "all", namespace=ADMIN)  # no filter: every socket
        wait_until(lambda: "all" in sio.rooms(a) and "all" in sio.rooms(b), what="all joined")
        admin.emit("leave", "/", "all", "lobby", namespace=ADMIN)  # filter: a room
        wait_until(lambda: "all" not in sio.rooms(a) + sio.rooms(b), what="all left")
        admin.emit("emit", "/", "team", "news", 1, 2, namespace=ADMIN)
        assert alice.wait_for("news") == [1, 2]
        admin.emit("_disconnect", "/", False, b, namespace=ADMIN)
        wait_until(lambda: not bob.is_connected(), what="bob disconnected")
        assert alice.is_connected()
        nsp, who, reason, _ = admin.wait_for("socket_disconnected", ADMIN)
        assert (nsp, who, reason) == ("/", b, "server disconnect")
        admin.emit("_disconnect", "/", True, a, namespace=ADMIN)  # close: the connection
        wait_until(lambda: a not in sio._clients and not alice.is_connected(), what="closed")
    finally:
        for client in (alice, bob, admin):
            client.close()


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("join", ()),
        ("join", ("/",)),
        ("join", ("/", 5)),
        ("join", ("/", "room", 7)),
        ("leave", ("/", "", None)),
        ("_disconnect", ()),
        ("_disconnect", (None, True)),
        ("_disconnect", ("/", False, ["a"])),
        ("emit", ("/",)),
        ("emit", ("/", None, "connect")),  # a reserved event name
        ("emit", (5, None, "news")),
    ],
)
def test_malformed_actions_are_ignored(
    sio: sio_wsgi.Server, event: str, args: tuple[Any, ...]
) -> None:
    sio.instrument(auth=False, mode="production")
    alice = SocketIOTestClient(sio)
    admin = admin_client(sio, auth=None)
    try:
        admin.emit(event, *args, namespace=ADMIN)
        admin.emit("join", "/", "after", alice.sid(), namespace=ADMIN)  # still served
        wait_until(lambda: "after" in sio.rooms(alice.sid()), what="the next action")
        assert alice.is_connected() and admin.is_connected(ADMIN)
        assert sorted(sio.rooms(alice.sid())) == sorted([alice.sid(), "lobby", "after"])
    finally:
        admin.close()
        alice.close()


def test_shutdown_stops_the_stats_task() -> None:
    server = make_server()
    ui = server.instrument(auth=False, server_stats_interval=0.05)
    server.shutdown()
    assert ui._stop.is_set()


def test_read_only_refuses_actions_and_production_sends_no_sockets(
    sio: sio_wsgi.Server,
) -> None:
    sio.instrument(auth=False, read_only=True, mode="production")
    alice = SocketIOTestClient(sio)
    admin = admin_client(sio, auth=None)
    try:
        (config,) = admin.wait_for("config", ADMIN)
        assert config == {"supportedFeatures": ["AGGREGATED_EVENTS"]}
        admin.emit("_disconnect", "/", False, alice.sid(), namespace=ADMIN)
        admin.emit("join", "/", "x", alice.sid(), namespace=ADMIN)
        admin.wait_for("server_stats", ADMIN)
        names = [r["name"] for r in admin.get_received(ADMIN, settle=0.2)]
        assert "all_sockets" not in names and "socket_connected" not in names
        assert alice.is_connected() and "x" not in sio.rooms(alice.sid())
    finally:
        admin.close()
        alice.close()


def test_stats_are_emitted_periodically_and_stop(sio: sio_wsgi.Server) -> None:
    ui = sio.instrument(auth=False, server_stats_interval=0.05)
    admin = admin_client(sio, auth=None)
    try:
        for _ in range(3):
            admin.wait_for("server_stats", ADMIN)
        ui.stop()
        admin.get_received(ADMIN, settle=0.2)
        assert admin.get_received(ADMIN, settle=0.2) == []
    finally:
        admin.close()


# ------------------------------------------------------------------ across nodes


def test_two_nodes_share_sockets_stats_and_actions() -> None:
    bus = InMemoryBus()
    node_a = make_server(client_manager=BusManager(bus, heartbeat_interval=0.2))
    node_b = make_server(client_manager=BusManager(bus, heartbeat_interval=0.2))
    clients: list[SocketIOTestClient] = []
    try:
        for node in (node_a, node_b):
            wait_until(lambda node=node: len(node.manager.nodes()) == 1, what="bus up")  # type: ignore[attr-defined]
        node_a.instrument(auth=False, server_id="a", server_stats_interval=0.1)
        node_b.instrument(auth=False, server_id="b", server_stats_interval=0.1)
        on_a, on_b = SocketIOTestClient(node_a), SocketIOTestClient(node_b)
        admin = SocketIOTestClient(node_a, namespace=ADMIN)
        clients += [on_a, on_b, admin]
        (listed,) = admin.wait_for("all_sockets", ADMIN)
        assert on_a.sid() in {s["id"] for s in listed}
        wait_until(
            lambda: any(
                e["name"] == "socket_connected" and e["args"][0]["id"] == on_b.sid()
                for e in admin.get_received(ADMIN, settle=0)
            ),
            what="node b's socket listed",
        )
        seen: set[str] = set()

        def both_servers() -> bool:
            seen.update(admin.wait_for("server_stats", ADMIN)[0]["serverId"] for _ in range(2))
            return seen == {"a", "b"}

        wait_until(both_servers, what="stats of both nodes")
        # an action from node a's admin reaches node b's socket through the bus
        admin.emit("join", "/", "remote", on_b.sid(), namespace=ADMIN)
        wait_until(lambda: "remote" in node_b.rooms(on_b.sid()), what="remote join")
        admin.emit("_disconnect", "/", False, on_b.sid(), namespace=ADMIN)
        wait_until(lambda: not on_b.is_connected(), what="remote disconnect")
        assert on_a.is_connected()
    finally:
        for client in clients:
            client.close()
        node_a.shutdown()
        node_b.shutdown()
