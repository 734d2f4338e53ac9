"""End-to-end tests with the official JavaScript client (socket.io-client v4 under node).

Each test runs per async mode (one shared server process per mode) and per client
transport: ``upgrade`` (polling then websocket, the client default), ``websocket``
only and ``polling`` only. The node driver (tests/js/driver.js) performs the steps
and prints what it received; the assertions are made here.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from tests.e2e.e2e_support import b64, check, scenario

__all__: list[str] = []


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------
# connection
# ---------------------------------------------------------------------------


def test_connect_auth_welcome(server: Any, transport: str, node_client: Any) -> None:
    """Connecting with an auth object gets a 'welcome' event carrying that auth."""
    auth = {"token": "t1", "n": 1}
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "wait", "event": "welcome"},
                {"op": "transport"},
            ],
            clients={"a": {"auth": auth}},
        )
    )
    check(res, server)
    conn = res.connect("a")
    (welcome,) = res.events("a", "welcome")
    assert welcome == [{"auth": auth, "sid": conn["id"], "namespace": "/"}]
    assert conn["id"] != conn["engine_id"], "Socket.IO sid must differ from the Engine.IO sid"
    if transport != "upgrade":  # with upgrade, either may be current by then
        assert conn["transport"] == transport


def test_transport_upgrade(server: Any, transport: str, node_client: Any) -> None:
    """Default clients upgrade to websocket; polling-only clients stay on polling."""
    steps: list[dict[str, Any]] = [{"op": "connect"}]
    if transport == "polling":
        steps += [{"op": "sleep", "ms": 300}, {"op": "transport"}]
    else:
        steps += [{"op": "wait_upgrade", "timeout_ms": 3000}]
    steps += [{"op": "emit", "event": "echo", "args": ["after"], "ack": True}]
    res = node_client(scenario(server, transport, steps))
    check(res, server)
    (tr,) = res.of("transport", "a")
    assert tr["name"] == ("polling" if transport == "polling" else "websocket")
    assert res.ack("echo") == ["after"]


def test_connect_refused(server: Any, transport: str, node_client: Any) -> None:
    """A connect handler raising ConnectionRefusedError gives connect_error with message + data."""
    res = node_client(
        scenario(
            server,
            transport,
            [{"op": "connect", "expect": "connect_error"}],
            clients={"a": {"auth": {"token": "bad"}}},
        )
    )
    check(res, server)
    (err,) = res.of("connect_error", "a")
    assert err["message"] == "bad token"
    assert err["data"] == {"why": "x"}
    assert not res.of("connect", "a")
    assert not res.events("a", "welcome")


# ---------------------------------------------------------------------------
# events and acks
# ---------------------------------------------------------------------------


def test_emit_with_ack(server: Any, transport: str, node_client: Any) -> None:
    """An event with an ack gets its args back (types intact), plus an 'echo_back' event."""
    args = [1, "2", {"3": [True, None, 1.5]}, "héllo ☃ \U0001f600", ""]
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "emit", "event": "echo", "args": args, "ack": True},
                {"op": "emit", "event": "echo", "args": [], "ack": True, "label": "empty"},
                {"op": "wait", "event": "echo_back", "count": 2},
            ],
        )
    )
    check(res, server)
    assert res.ack("echo") == args
    assert res.ack("empty") == []
    assert res.events("a", "echo_back") == [args, []]


def test_many_acks_in_order(
    server: Any, transport: str, node_client: Any, impl: str, request: pytest.FixtureRequest
) -> None:
    """Many emits without waiting (batched into one polling payload): all arrive, in order."""
    if impl == "socketio" and transport == "polling":
        pytest.xfail("python-engineio refuses polling payloads of more than 16 packets")
    if impl == "socketio":
        request.applymarker(
            pytest.mark.xfail(
                reason="python-engineio refuses polling payloads of more than 16 packets, and "
                "python-socketio's async handlers (one thread each) may reorder the replies",
                strict=False,
            )
        )
    n = 50
    steps: list[dict[str, Any]] = [{"op": "connect"}]
    steps += [{"op": "emit", "event": "echo", "args": [i]} for i in range(n)]
    steps += [{"op": "wait", "event": "echo_back", "count": n}]
    res = node_client(scenario(server, transport, steps))
    check(res, server)
    assert res.events("a", "echo_back") == [[i] for i in range(n)]


def test_server_call_to_client(server: Any, transport: str, node_client: Any) -> None:
    """sio.call() from a handler reaches the client, whose ack becomes the call's result."""
    answer = {"yes": [1, 2, 3]}
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {
                    "op": "emit",
                    "event": "ask_client",
                    "args": [{"q": "?"}],
                    "ack": True,
                    "timeout_ms": 6000,
                },
            ],
            clients={"a": {"answers": {"question": answer}}},
        )
    )
    check(res, server)
    (question,) = res.of("event", "a", event="question")
    assert question["args"] == [{"q": "?"}] and question["with_ack"] is True
    assert res.ack("ask_client") == [{"answer": answer}]


def test_binary_both_ways(server: Any, transport: str, node_client: Any) -> None:
    """Buffers / ArrayBuffers / Uint8Arrays nested in dicts and lists go both ways."""
    one, two, three = b"\x00\x01\x02\xff", bytes(range(256)) * 4, b"third"
    payload = {
        "buf": {"$bin": b64(one)},
        "nested": [{"ab": {"$bin": b64(two), "$as": "arraybuffer"}}, "text", 3],
    }
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {
                    "op": "emit",
                    "event": "binary",
                    "args": [payload, {"$bin": b64(three), "$as": "uint8array"}],
                    "ack": True,
                },
                {"op": "wait", "event": "binary_back"},
            ],
        )
    )
    check(res, server)
    ack = res.ack("binary")
    assert len(ack) == 3
    got, got_three, shape = ack
    assert got["buf"]["$bin"] == b64(one)
    assert got["nested"][0]["ab"]["$bin"] == b64(two)
    assert got["nested"][1:] == ["text", 3]
    assert got_three["$bin"] == b64(three)
    assert shape == [
        {"buf": f"<bytes:{len(one)}>", "nested": [{"ab": f"<bytes:{len(two)}>"}, "text", 3]},
        f"<bytes:{len(three)}>",
    ]
    (back,) = res.events("a", "binary_back")
    assert back[0]["nested"][0]["ab"]["$bin"] == b64(two)
    assert back[1]["$bin"] == b64(three)


def test_large_binary(server: Any, transport: str, node_client: Any) -> None:
    """A 200 kB binary attachment survives the round trip."""
    blob = os.urandom(200_000)
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "emit", "event": "binary", "args": [{"$bin": b64(blob)}], "ack": True},
            ],
        )
    )
    check(res, server)
    assert res.ack("binary")[0]["$bin"] == b64(blob)


# ---------------------------------------------------------------------------
# namespaces, rooms, broadcasts
# ---------------------------------------------------------------------------


def test_namespace_multiplexing(server: Any, transport: str, node_client: Any) -> None:
    """'/' and '/chat' share one Engine.IO connection; events stay in their namespace."""
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect", "client": "a"},
                {"op": "connect", "client": "c"},
                {"op": "wait", "client": "c", "event": "welcome"},
                {
                    "op": "emit",
                    "client": "c",
                    "event": "echo",
                    "args": ["in chat"],
                    "ack": True,
                    "label": "chat",
                },
                {
                    "op": "emit",
                    "client": "a",
                    "event": "echo",
                    "args": ["in root"],
                    "ack": True,
                    "label": "root",
                },
                # kicking /chat must leave / connected
                {"op": "emit", "client": "c", "event": "kick"},
                {"op": "wait", "client": "c", "event": "disconnect"},
                {
                    "op": "emit",
                    "client": "a",
                    "event": "echo",
                    "args": ["still"],
                    "ack": True,
                    "label": "after",
                },
            ],
            clients={
                "a": {"auth": {"ns": "root"}},
                "c": {"manager": "a", "namespace": "/chat", "auth": {"ns": "chat"}},
            },
        )
    )
    check(res, server)
    ca, cc = res.connect("a"), res.connect("c")
    assert ca["engine_id"] == cc["engine_id"], "namespaces must share the Engine.IO session"
    assert ca["id"] != cc["id"]
    assert res.events("c", "welcome") == [
        [{"auth": {"ns": "chat"}, "sid": cc["id"], "namespace": "/chat"}]
    ]
    assert res.ack("chat") == ["in chat"] and res.ack("root") == ["in root"]
    assert res.events("c", "echo_back") == [["in chat"]]
    assert res.events("a", "echo_back") == [["in root"], ["still"]]
    assert [d["reason"] for d in res.of("disconnect", "c")] == ["io server disconnect"]
    assert res.ack("after") == ["still"]
    entry = server.wait_disconnect(cc["id"])
    assert entry and entry["namespace"] == "/chat" and entry["reason"] == "server disconnect"


def test_rooms_join_leave_skip(server: Any, transport: str, node_client: Any) -> None:
    """Room broadcasts reach members only, skip the sender, and stop after leave."""
    room = _room()

    def to_room(client: str, data: Any, label: str) -> dict[str, Any]:
        return {
            "op": "emit",
            "client": client,
            "event": "to_room",
            "args": [{"room": room, "data": data}],
            "ack": True,
            "label": label,
        }

    def barrier(client: str, label: str) -> dict[str, Any]:
        # an ack on the same session comes after anything queued before it
        return {
            "op": "emit",
            "client": client,
            "event": "echo",
            "args": [label],
            "ack": True,
            "label": label,
        }

    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect", "client": "a"},
                {"op": "connect", "client": "b"},
                {"op": "connect", "client": "c"},
                {
                    "op": "emit",
                    "client": "a",
                    "event": "join",
                    "args": [room],
                    "ack": True,
                    "label": "ja",
                },
                {
                    "op": "emit",
                    "client": "b",
                    "event": "join",
                    "args": [room],
                    "ack": True,
                    "label": "jb",
                },
                to_room("c", 1, "m1"),  # c not in room: a, b get it
                to_room("a", 2, "m2"),  # a in room: skipped, b gets it
                {
                    "op": "emit",
                    "client": "b",
                    "event": "leave",
                    "args": [room],
                    "ack": True,
                    "label": "lb",
                },
                to_room("c", 3, "m3"),  # only a left in the room
                barrier("a", "ba"),
                barrier("b", "bb"),
                barrier("c", "bc"),
            ],
            clients={"a": {}, "b": {}, "c": {}},
        )
    )
    check(res, server)
    assert res.ack("ja") == [{"joined": room}] and res.ack("lb") == [{"left": room}]
    assert res.events("a", "room_msg") == [[1], [3]]
    assert res.events("b", "room_msg") == [[1], [2]]
    assert res.events("c", "room_msg") == []


def test_broadcast_skips_sender(server: Any, transport: str, node_client: Any) -> None:
    """A broadcast to everybody skips the sender and reaches the other clients."""
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect", "client": "a"},
                {"op": "connect", "client": "b"},
                {"op": "connect", "client": "c"},
                {
                    "op": "emit",
                    "client": "a",
                    "event": "broadcast",
                    "args": [{"hi": "all"}],
                    "ack": True,
                },
                {"op": "wait", "client": "b", "event": "broadcast_msg"},
                {"op": "wait", "client": "c", "event": "broadcast_msg"},
                {"op": "emit", "client": "a", "event": "echo", "args": ["barrier"], "ack": True},
            ],
            clients={"a": {}, "b": {}, "c": {}},
        )
    )
    check(res, server)
    assert res.events("b", "broadcast_msg") == [[{"hi": "all"}]]
    assert res.events("c", "broadcast_msg") == [[{"hi": "all"}]]
    assert res.events("a", "broadcast_msg") == []


def test_volatile_burst(server: Any, transport: str, node_client: Any) -> None:
    """N volatile events: at most N arrive, in order, and the connection stays healthy."""
    n = 200
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "emit", "event": "volatile_burst", "args": [n], "ack": True},
                {"op": "wait", "event": "burst_done"},
                {"op": "emit", "event": "echo", "args": ["alive"], "ack": True},
                {"op": "sleep", "ms": 100},
                {"op": "counts"},
            ],
        )
    )
    check(res, server)
    got = [args[0] for args in res.events("a", "vol")]
    assert len(got) <= n
    assert got == sorted(set(got)), "volatile events must not be duplicated or reordered"
    assert res.ack("echo") == ["alive"]
    assert not res.of("disconnect", "a")


# ---------------------------------------------------------------------------
# disconnects
# ---------------------------------------------------------------------------


def test_server_disconnect(server: Any, transport: str, node_client: Any) -> None:
    """sio.disconnect(sid) gives the client 'io server disconnect'; the server logs it."""
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "emit", "event": "kick"},
                {"op": "wait", "event": "disconnect"},
            ],
        )
    )
    check(res, server)
    assert [d["reason"] for d in res.of("disconnect", "a")] == ["io server disconnect"]
    entry = server.wait_disconnect(res.connect("a")["id"])
    assert entry is not None, server.log_tail()
    assert entry["reason"] == "server disconnect"


def test_client_disconnect(server: Any, transport: str, node_client: Any) -> None:
    """socket.disconnect() runs the server's disconnect handler with 'client disconnect'."""
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "wait", "event": "welcome"},
                {"op": "disconnect"},
                {"op": "sleep", "ms": 50},
            ],
        )
    )
    check(res, server)
    sid = res.connect("a")["id"]
    entry = server.wait_disconnect(sid, timeout=3)
    assert entry is not None, f"no disconnect logged for {sid}\n{server.log_tail()}"
    assert entry["reason"] == "client disconnect"
    assert entry["namespace"] == "/"


def test_disconnect_log_via_other_client(server: Any, transport: str, node_client: Any) -> None:
    """A second client sees the first one's disconnect through the 'disconnect_log' event."""
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect", "client": "a"},
                {"op": "connect", "client": "b"},
                {"op": "disconnect", "client": "a"},
                {"op": "sleep", "ms": 300},
                {"op": "emit", "client": "b", "event": "disconnect_log", "ack": True},
            ],
            clients={"a": {}, "b": {}},
        )
    )
    check(res, server)
    sid = res.connect("a")["id"]
    (log,) = res.ack("disconnect_log")
    mine = [e for e in log if e["sid"] == sid]
    assert [e["reason"] for e in mine] == ["client disconnect"]


# ---------------------------------------------------------------------------
# emits from outside handlers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/emit", "/emit_from_thread"])
def test_emit_from_route_and_thread(
    server: Any,
    transport: str,
    node_client: Any,
    route: str,
    impl: str,
    async_mode: str,
    request: pytest.FixtureRequest,
) -> None:
    """sio.emit from a Flask view and from a plain OS thread reaches the client."""
    if impl == "socketio" and async_mode == "eventlet" and route == "/emit_from_thread":
        request.applymarker(
            pytest.mark.xfail(
                reason="python-socketio/eventlet cannot wake a green thread from an OS thread",
                strict=False,
            )
        )
    event = "from_route" if route == "/emit" else "from_thread"
    proc = node_client.spawn(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "mark", "name": "ready"},
                {"op": "wait", "event": event, "timeout_ms": 4000},
                {"op": "emit", "event": "echo", "args": ["ok"], "ack": True},
            ],
        )
    )
    conn = proc.wait_for(5, type="connect")
    proc.wait_for(5, type="mark", name="ready")
    server.post_json(route, {"event": event, "data": {"via": route}, "to": conn["id"]})
    res = proc.finish(10)
    check(res, server)
    assert res.events("a", event) == [[{"via": route}]]


def test_emit_from_background_task(server: Any, transport: str, node_client: Any) -> None:
    """The start_background_task ticker reaches room members, and stops after leave."""
    res = node_client(
        scenario(
            server,
            transport,
            [
                {"op": "connect"},
                {"op": "emit", "event": "join", "args": ["ticks"], "ack": True},
                {"op": "wait", "event": "tick", "count": 3, "timeout_ms": 3000},
                {"op": "emit", "event": "leave", "args": ["ticks"], "ack": True},
                {"op": "counts"},
                {"op": "sleep", "ms": 600},
                {"op": "counts"},
            ],
        )
    )
    check(res, server)
    ticks = [args[0]["n"] for args in res.events("a", "tick")]
    assert len(ticks) >= 3
    assert ticks == sorted(ticks)
    before, after = (c["counts"].get("tick", 0) for c in res.of("counts", "a"))
    assert after - before <= 1, "ticks kept coming after leaving the room"


# ---------------------------------------------------------------------------
# heartbeat and reconnection
# ---------------------------------------------------------------------------


def test_fast_heartbeat_keeps_client_alive(
    live_server: Any, async_mode: str, transport: str, node_client: Any, impl: str
) -> None:
    """With ping_interval 0.3 s / ping_timeout 0.2 s a live client survives several pings."""
    if impl == "socketio":
        pytest.xfail("python-engineio sends pingInterval int(0.3)*1000 == 0 in the handshake")
    srv = live_server(async_mode, ping_interval=0.3, ping_timeout=0.2)
    res = node_client(
        scenario(
            srv,
            transport,
            [
                {"op": "connect"},
                {"op": "sleep", "ms": 1500},
                {"op": "emit", "event": "echo", "args": ["alive"], "ack": True},
            ],
        )
    )
    check(res, srv)
    assert res.ack("echo") == ["alive"]
    assert not res.of("disconnect", "a"), res.dump()


def test_reconnect_after_server_restart(
    live_server: Any, async_mode: str, transport: str, node_client: Any
) -> None:
    """The client reconnects by itself after the server process restarts on the same port."""
    srv = live_server(async_mode, fresh=True)
    proc = node_client.spawn(
        scenario(
            srv,
            transport,
            [
                {"op": "connect"},
                {"op": "mark", "name": "ready"},
                {"op": "wait", "event": "connect", "count": 2, "timeout_ms": 20000},
                {"op": "emit", "event": "echo", "args": ["again"], "ack": True},
            ],
            options={
                "reconnection": True,
                "reconnectionDelay": 100,
                "reconnectionDelayMax": 300,
                "randomizationFactor": 0,
            },
            overall_timeout_ms=30000,
        )
    )
    try:
        proc.wait_for(8, type="mark", name="ready")
        srv.restart()
        res = proc.finish(35)
    finally:
        srv.stop()
    check(res, srv)
    conns = res.of("connect", "a")
    assert len(conns) == 2 and conns[0]["id"] != conns[1]["id"]
    assert res.of("disconnect", "a")
    assert res.ack("echo") == ["again"]
