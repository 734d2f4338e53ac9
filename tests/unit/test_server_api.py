"""Server: the python-socketio compatible API, driven through a fake engine."""

from __future__ import annotations

import inspect
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sio_wsgi.config import DEFAULTS
from sio_wsgi.exceptions import (
    ConnectionRefusedError,
    DisconnectedError,
    LocalProtocolError,
    TimeoutError,
)
from sio_wsgi.namespace import Namespace
from sio_wsgi.protocol.serializers import MsgpackSerializer
from sio_wsgi.protocol.sio import Packet, PacketType
from sio_wsgi.server import Server
from tests.unit.sio_fakes import SioClient, make_server, wait_until

PT = PacketType


@pytest.fixture(params=[True, False], ids=["async", "inline"])
def async_handlers(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# ------------------------------------------------------------------ signature


def test_signature_mirrors_python_socketio() -> None:
    params = inspect.signature(Server.__init__).parameters
    assert list(params)[1:8] == [
        "client_manager",
        "logger",
        "serializer",
        "json",
        "async_handlers",
        "always_connect",
        "namespaces",
    ]
    for name in ("ping_interval", "ping_timeout", "connect_timeout", "max_http_buffer_size"):
        assert params[name].default == getattr(DEFAULTS, name)
    assert "engineio_logger" in params
    emit = inspect.signature(Server.emit).parameters
    assert list(emit)[1:] == [
        "event",
        "data",
        "to",
        "room",
        "skip_sid",
        "namespace",
        "callback",
        "ignore_queue",
        "volatile",
        "compress",  # compress: Node's, not python-socketio's
    ]
    call = inspect.signature(Server.call).parameters
    assert list(call)[1:7] == ["event", "data", "to", "sid", "namespace", "timeout"]
    assert call["timeout"].default == 60
    assert Server.reason.CLIENT_DISCONNECT == "client disconnect"
    assert Server.reason.SERVER_DISCONNECT == "server disconnect"
    assert Server.reason.PING_TIMEOUT == "ping timeout"
    assert Server.reason.TRANSPORT_CLOSE == "transport close"
    assert Server.reason.TRANSPORT_ERROR == "transport error"


def test_options_are_collected() -> None:
    server, _ = make_server(ping_interval=1, connect_timeout=2, namespaces=["/a"])
    assert server.options.ping_interval == 1.0
    assert server.options.connect_timeout == 2.0
    assert server.options.namespaces == ("/a",)


# ------------------------------------------------------------------ connect


def test_connect_reply_and_handler_args(async_handlers: bool) -> None:
    server, engine = make_server(async_handlers=async_handlers)
    seen: list[tuple[Any, ...]] = []

    @server.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        seen.append((sid, environ["REMOTE_ADDR"], auth))

    client = SioClient(engine)
    client.raw('0{"token":"123"}')
    reply = client.next_raw()
    assert isinstance(reply, str)
    assert reply.startswith('0{"sid":"')
    packet_sid = reply[len('0{"sid":"') : -2]
    assert packet_sid != client.eio_sid
    assert seen == [(packet_sid, "127.0.0.1", {"token": "123"})]


@pytest.mark.parametrize("arity", [1, 2, 3, "varargs"])
def test_connect_handler_arity_is_respected(arity: Any) -> None:
    server, engine = make_server()
    got: list[tuple[Any, ...]] = []
    handlers: dict[Any, Callable[..., Any]] = {
        1: lambda sid: got.append((sid,)),
        2: lambda sid, environ: got.append((sid, environ)),
        3: lambda sid, environ, auth: got.append((sid, environ, auth)),
        "varargs": lambda *args: got.append(args),
    }
    server.on("connect", handlers[arity])
    SioClient(engine).connect(auth={"a": 1})
    wait_until(lambda: got)
    expected = {1: 1, 2: 2, 3: 3, "varargs": 3}[arity]
    assert len(got[0]) == expected


def test_handler_type_error_is_not_swallowed_as_arity(caplog: pytest.LogCaptureFixture) -> None:
    server, engine = make_server(async_handlers=False)

    @server.on("connect")
    def connect(sid: str, environ: dict[str, Any]) -> None:
        raise TypeError("user bug")

    client = SioClient(engine)
    client.raw("0")
    assert client.next_packet().type == PT.CONNECT_ERROR
    assert "user bug" in caplog.text


def test_namespace_connect_and_unknown_namespace() -> None:
    server, engine = make_server()
    server.on(
        "connect",
        lambda sid, environ, auth: server.emit("auth", auth or {}, to=sid, namespace="/custom"),
        namespace="/custom",
    )
    client = SioClient(engine)
    sid = client.connect("/custom")
    assert client.next_raw() == '2/custom,["auth",{}]'
    client.raw("0/random")
    assert client.next_raw() == '4/random,{"message":"Invalid namespace"}'
    assert client.closed_reason() is None
    assert server.rooms(sid, namespace="/custom") == [sid]


def test_root_namespace_is_always_accepted_by_default() -> None:
    _, engine = make_server()
    assert SioClient(engine).connect("/")


@pytest.mark.parametrize(
    ("namespaces", "ns", "ok"),
    [("*", "/anything", True), (["/a"], "/a", True), (["/a"], "/", False), ("/a", "/b", False)],
)
def test_namespaces_option(namespaces: Any, ns: str, ok: bool) -> None:
    _, engine = make_server(namespaces=namespaces)
    client = SioClient(engine)
    client.raw("0" if ns == "/" else f"0{ns},")
    packet = client.next_packet()
    assert packet.type == (PT.CONNECT if ok else PT.CONNECT_ERROR)


def test_catch_all_namespace_handlers_accept_any_namespace() -> None:
    server, engine = make_server()
    got: list[tuple[Any, ...]] = []
    server.on("connect", lambda ns, sid, environ: got.append(("connect", ns)), namespace="*")
    server.on("hello", lambda ns, sid, x: got.append(("hello", ns, x)), namespace="*")
    server.on("*", lambda ev, ns, sid, x: got.append(("any", ev, ns, x)), namespace="*")
    client = SioClient(engine)
    client.connect("/dyn")
    client.emit("hello", 1, namespace="/dyn")
    client.emit("other", 2, namespace="/dyn")
    wait_until(lambda: len(got) == 3)
    assert got == [("connect", "/dyn"), ("hello", "/dyn", 1), ("any", "other", "/dyn", 2)]


@pytest.mark.parametrize("how", ["false", "refused0", "refused1", "refused2", "crash"])
def test_connect_refused(how: str) -> None:
    server, engine = make_server()

    @server.event
    def connect(sid: str, environ: dict[str, Any]) -> bool | None:
        server.emit("too-early", to=sid)
        if how == "false":
            return False
        if how == "refused0":
            raise ConnectionRefusedError()
        if how == "refused1":
            raise ConnectionRefusedError("bad token")
        if how == "refused2":
            raise ConnectionRefusedError("bad token", {"why": "x"})
        raise RuntimeError("boom")

    disconnected: list[str] = []
    server.on("disconnect", disconnected.append)
    client = SioClient(engine)
    client.raw("0")
    expected = {
        "false": '4{"message":"Connection rejected by server"}',
        "refused0": '4{"message":"Connection rejected by server"}',
        "refused1": '4{"message":"bad token"}',
        "refused2": '4{"message":"bad token","data":{"why":"x"}}',
        "crash": '4{"message":"Connection rejected by server"}',
    }[how]
    assert client.next_raw() == expected
    time.sleep(0.05)
    assert client.sent() == [expected]  # the queued emit was dropped
    assert disconnected == []
    assert client.closed_reason() is None
    assert server.manager.get_recipients("/") == []


def test_emit_in_connect_handler_arrives_after_reply(async_handlers: bool) -> None:
    server, engine = make_server(async_handlers=async_handlers)

    @server.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        server.emit("first", 1, to=sid)
        server.emit("everyone", 2)
        server.enter_room(sid, "r")
        server.emit("room", 3, room="r")

    client = SioClient(engine)
    client.connect()
    assert [client.next_raw() for _ in range(3)] == [
        '2["first",1]',
        '2["everyone",2]',
        '2["room",3]',
    ]


def test_always_connect_sends_reply_first_then_disconnect_on_refusal() -> None:
    server, engine = make_server(always_connect=True)
    order: list[str] = []

    @server.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        order.append("handler")
        server.emit("inside", to=sid)
        return bool(auth)

    client = SioClient(engine)
    sid = client.connect(auth={"ok": 1})
    assert client.next_raw() == '2["inside"]'
    assert server.manager.is_connected(sid, "/")
    other = SioClient(engine)
    other.raw("0")
    reply = other.next_packet()
    assert reply.type == PT.CONNECT
    assert other.next_raw() == '2["inside"]'
    assert other.next_raw() == "1"
    assert not server.manager.is_connected(reply.data["sid"], "/")


def test_connect_timeout_closes_silent_clients() -> None:
    _, engine = make_server(connect_timeout=5)
    silent = SioClient(engine)
    good = SioClient(engine)
    good.connect()
    assert [t.delay for t in engine.scheduler.timers] == [5.0, 5.0]
    engine.scheduler.fire_all()
    assert silent.closed_reason() == "server disconnect"
    assert good.closed_reason() is None


def test_duplicate_connect_is_ignored() -> None:
    _, engine = make_server()
    client = SioClient(engine)
    client.connect()
    client.raw("0")
    time.sleep(0.05)
    assert len(client.sent()) == 1


# ------------------------------------------------------------------ events and acks


def test_event_args_and_ack_values(async_handlers: bool) -> None:
    server, engine = make_server(async_handlers=async_handlers)
    server.on("message-with-ack", lambda sid, *args: args)
    server.on("none", lambda sid: None)
    server.on("one", lambda sid, x: x)
    server.on("list", lambda sid: [1, 2])
    client = SioClient(engine)
    client.connect()
    client.raw('2456["message-with-ack",1,"2",{"3":[false]}]')
    assert client.next_raw() == '3456[1,"2",{"3":[false]}]'
    client.emit("none", ack=1)
    assert client.next_raw() == "31[]"
    client.emit("one", {"a": 1}, ack=2)
    assert client.next_raw() == '32[{"a":1}]'
    client.emit("list", ack=3)
    assert client.next_raw() == "33[[1,2]]"


def test_echo_keeps_types_and_namespaces() -> None:
    server, engine = make_server()

    def back(sid: str, *args: Any) -> None:
        server.emit("message-back", args, to=sid, namespace="/custom")

    server.on("message", back, namespace="/custom")
    client = SioClient(engine)
    client.connect("/custom")
    client.raw('2/custom,["message",1,"2",{"3":[true]}]')
    assert client.next_raw() == '2/custom,["message-back",1,"2",{"3":[true]}]'


def test_emit_data_conventions() -> None:
    server, engine = make_server()
    client = SioClient(engine)
    sid = client.connect()
    server.emit("t", (1, 2), to=sid)
    server.emit("l", [1, 2], to=sid)
    server.emit("n", to=sid)
    server.send("hello", to=sid)
    server.emit("u", "é", to=sid)
    assert [client.next_raw() for _ in range(5)] == [
        '2["t",1,2]',
        '2["l",[1,2]]',
        '2["n"]',
        '2["message","hello"]',
        '2["u","é"]',
    ]
    with pytest.raises(LocalProtocolError):
        server.emit("disconnect", to=sid)


def test_binary_both_ways() -> None:
    server, engine = make_server()
    got: list[Any] = []

    def binary(sid: str, *args: Any) -> tuple[Any, ...]:
        got.append(args)
        return args

    server.on("message", binary)
    client = SioClient(engine)
    sid = client.connect()
    client.raw(
        '52-789["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01\x02",
        b"\x03",
    )
    assert [client.next_raw() for _ in range(3)] == [
        '62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01\x02",
        b"\x03",
    ]
    assert got == [(b"\x01\x02", b"\x03")]
    server.emit("blob", {"x": [b"\xff"]}, to=sid)
    assert client.next_raw() == '51-["blob",{"x":[{"_placeholder":true,"num":0}]}]'
    assert client.next_raw() == b"\xff"


@pytest.mark.parametrize(
    "bad",
    ["abc", "2{}", 'abc["x"]', '2abc["x"]', '2["connect"]', "4{}", b"\x00", '7["x"]'],
)
def test_malformed_packets_close_the_connection(bad: str | bytes) -> None:
    server, engine = make_server()
    disconnects: list[tuple[str, str]] = []
    server.on("disconnect", lambda sid, reason: disconnects.append((sid, reason)))
    client = SioClient(engine)
    sid = client.connect()
    client.raw(bad)
    assert client.closed_reason() == "parse error"
    wait_until(lambda: disconnects)
    assert disconnects == [(sid, "parse error")]


def test_text_where_attachment_expected_closes() -> None:
    _, engine = make_server()
    client = SioClient(engine)
    client.connect()
    client.raw('51-["x",{"_placeholder":true,"num":0}]', '2["y"]')
    assert client.closed_reason() == "parse error"


def test_malformed_before_connect_closes() -> None:
    _, engine = make_server()
    client = SioClient(engine)
    client.raw("abc")
    assert client.closed_reason() == "parse error"


def test_events_before_connect_or_unknown_are_ignored() -> None:
    server, engine = make_server()
    got: list[Any] = []
    server.on("x", lambda sid: got.append(sid))
    client = SioClient(engine)
    client.raw('2["x"]', '2/other,["x"]')
    client.connect()
    client.emit("nobody-listens", ack=5)
    client.emit("x")
    wait_until(lambda: got)
    assert len(client.sent()) == 1  # only the CONNECT reply: no ack without a handler


def test_handler_exception_is_logged_and_connection_survives(
    caplog: pytest.LogCaptureFixture, async_handlers: bool
) -> None:
    server, engine = make_server(async_handlers=async_handlers)

    @server.on("boom")
    def boom(sid: str) -> None:
        raise ValueError("kaboom")

    server.on("ok", lambda sid: "fine")
    client = SioClient(engine)
    client.connect()
    with caplog.at_level(logging.ERROR):
        client.emit("boom", ack=1)
        client.emit("ok", ack=2)
        assert client.next_raw() == '32["fine"]'
    assert "kaboom" in caplog.text
    assert client.closed_reason() is None


def test_events_of_one_client_run_in_order() -> None:
    server, engine = make_server(async_handlers=True)
    order: list[int] = []
    threads: set[str] = set()

    @server.on("n")
    def n(sid: str, i: int) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(random.random() / 500)
        order.append(i)

    client = SioClient(engine)
    client.connect()
    for i in range(100):
        client.emit("n", i)
    wait_until(lambda: len(order) == 100)
    assert order == list(range(100))
    assert threading.current_thread().name not in threads  # ran off the reader


def test_slow_handler_does_not_block_the_reader() -> None:
    server, engine = make_server(async_handlers=True)
    release = threading.Event()
    server.on("slow", lambda sid: release.wait(2))
    client = SioClient(engine)
    client.connect()
    started = time.monotonic()
    client.emit("slow")
    assert time.monotonic() - started < 0.5
    release.set()


def test_catch_all_event_and_specific_precedence() -> None:
    server, engine = make_server()
    got: list[tuple[Any, ...]] = []
    server.on("known", lambda sid, x: got.append(("known", x)))
    server.on("*", lambda event, sid, *args: got.append(("any", event, *args)))
    client = SioClient(engine)
    client.connect()
    client.emit("known", 1)
    client.emit("other", 2, 3)
    wait_until(lambda: len(got) == 2)
    assert got == [("known", 1), ("any", "other", 2, 3)]


def test_event_decorator_forms() -> None:
    server, engine = make_server()
    got: list[str] = []

    @server.event(namespace="/chat")
    def ping(sid: str) -> str:
        got.append("ping")
        return "pong"

    returned = server.on("direct", lambda sid: "d", namespace="/chat")
    assert callable(returned)
    client = SioClient(engine)
    client.connect("/chat")
    client.emit("ping", namespace="/chat", ack=1)
    assert client.next_raw() == '3/chat,1["pong"]'
    client.emit("direct", namespace="/chat", ack=2)
    assert client.next_raw() == '3/chat,2["d"]'


def test_emit_callback_receives_ack_args() -> None:
    server, engine = make_server()
    got: list[tuple[Any, ...]] = []
    client = SioClient(engine)
    sid = client.connect()
    server.emit("q", "data", to=sid, callback=lambda *args: got.append(args))
    packet = client.next_packet()
    assert packet.data == ["q", "data"]
    assert packet.id is not None
    client.ack(packet.id, "a", b"\x01")
    assert got == [("a", b"\x01")]


def test_volatile_is_passed_to_the_engine() -> None:
    server, engine = make_server()
    client = SioClient(engine)
    sid = client.connect()
    engine.writable = False
    server.emit("v", to=sid, volatile=True)
    server.emit("kept", to=sid)
    engine.writable = True
    assert client.next_raw() == '2["kept"]'
    assert engine.volatile_flags[-2:] == [True, False]


# ------------------------------------------------------------------ call()


def _answer_next_call(client: SioClient, *args: Any) -> None:
    packet = client.next_packet()
    assert packet.id is not None
    client.ack(packet.id, *args, namespace=packet.namespace)


@pytest.mark.parametrize(("args", "expected"), [((), None), ((7,), 7), ((1, "b"), (1, "b"))])
def test_call_returns_the_ack(args: tuple[Any, ...], expected: Any) -> None:
    server, engine = make_server()
    client = SioClient(engine)
    sid = client.connect()
    answer = threading.Thread(target=_answer_next_call, args=(client, *args))
    answer.start()
    assert server.call("question", {"q": 1}, to=sid, timeout=3) == expected
    answer.join(3)


def test_call_times_out() -> None:
    server, engine = make_server()
    sid = SioClient(engine).connect()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.call("question", sid=sid, timeout=0.1)
    assert time.monotonic() - started < 1
    with pytest.raises(builtins_timeout()):
        server.call("question", sid=sid, timeout=0.01)


def builtins_timeout() -> type[BaseException]:
    import builtins

    return builtins.TimeoutError


def test_call_fails_fast_when_the_client_leaves() -> None:
    server, engine = make_server()
    client = SioClient(engine)
    sid = client.connect()
    threading.Timer(0.05, engine.drop, args=(client.eio_sid,)).start()
    started = time.monotonic()
    with pytest.raises(DisconnectedError):
        server.call("question", to=sid, timeout=5)
    assert time.monotonic() - started < 2
    with pytest.raises(DisconnectedError):
        server.call("question", to=sid, timeout=5)


def test_call_from_inside_a_handler() -> None:
    server, engine = make_server(async_handlers=True)

    @server.on("ask")
    def ask(sid: str) -> Any:
        return {"answer": server.call("question", to=sid, timeout=3)}

    client = SioClient(engine)
    client.connect()
    client.emit("ask", ack=9)
    _answer_next_call(client, 42)
    assert client.next_raw() == '39[{"answer":42}]'


def test_call_needs_async_handlers() -> None:
    server, engine = make_server(async_handlers=False)
    sid = SioClient(engine).connect()
    with pytest.raises(RuntimeError):
        server.call("q", to=sid)


# ------------------------------------------------------------------ disconnects


@pytest.mark.parametrize("with_reason", [True, False])
def test_client_disconnect_of_one_namespace(with_reason: bool) -> None:
    server, engine = make_server()
    got: list[tuple[Any, ...]] = []
    if with_reason:
        server.on("disconnect", lambda sid, reason: got.append((sid, reason)), namespace="/custom")
    else:
        server.on("disconnect", lambda sid: got.append((sid,)), namespace="/custom")
    server.on("message", lambda sid, *a: server.emit("message-back", a, to=sid))
    client = SioClient(engine)
    client.connect()
    csid = client.connect("/custom")
    client.raw("1/custom,")
    wait_until(lambda: got)
    assert got == [(csid, "client disconnect")] if with_reason else [(csid,)]
    client.raw('2["message",1]')
    assert client.next_raw() == '2["message-back",1]'
    assert client.closed_reason() is None


def test_transport_close_runs_each_disconnect_handler_once(async_handlers: bool) -> None:
    server, engine = make_server(async_handlers=async_handlers)
    got: list[tuple[str, str, str]] = []
    for ns in ("/", "/a"):
        server.on(
            "disconnect", lambda sid, reason, ns=ns: got.append((ns, sid, reason)), namespace=ns
        )
    client = SioClient(engine)
    s1 = client.connect()
    s2 = client.connect("/a")
    engine.drop(client.eio_sid, "ping timeout")
    engine.drop(client.eio_sid, "transport close")
    wait_until(lambda: len(got) == 2)
    time.sleep(0.05)
    assert sorted(got) == [("/", s1, "ping timeout"), ("/a", s2, "ping timeout")]
    wait_until(lambda: not server._clients)


def test_server_disconnect() -> None:
    server, engine = make_server()
    got: list[tuple[str, str]] = []
    server.on("disconnect", lambda sid, reason: got.append((sid, reason)))
    client = SioClient(engine)
    sid = client.connect()
    server.enter_room(sid, "r")
    server.disconnect(sid)
    assert client.next_raw() == "1"
    assert got == [(sid, "server disconnect")]
    assert not server.manager.is_connected(sid, "/")
    server.disconnect(sid)  # second time: nothing
    assert got == [(sid, "server disconnect")]
    server.disconnect("unknown")


def test_server_disconnect_from_inside_connect_refuses() -> None:
    server, engine = make_server()
    got: list[str] = []
    server.on("disconnect", got.append)

    @server.event
    def connect(sid: str, environ: dict[str, Any]) -> None:
        server.disconnect(sid)

    client = SioClient(engine)
    client.raw("0")
    assert client.next_packet().type == PT.CONNECT_ERROR
    assert got == []


def test_shutdown_closes_everything() -> None:
    server, engine = make_server()
    got: list[str] = []
    server.on("disconnect", lambda sid, reason: got.append(reason))
    SioClient(engine).connect()
    server.shutdown()
    assert engine.shut_down
    wait_until(lambda: got == ["server shutting down"])


# ------------------------------------------------------------------ rooms & sessions


def test_rooms_through_the_server() -> None:
    server, engine = make_server()
    a, b, c = (SioClient(engine) for _ in range(3))
    sa, sb, sc = a.connect(), b.connect(), c.connect()
    for sid in (sa, sb):
        server.enter_room(sid, "r")
    assert sorted(server.rooms(sa)) == sorted([sa, "r"])
    server.emit("x", 1, room="r", skip_sid=sa)
    assert b.next_raw() == '2["x",1]'
    server.emit("y", to=["r", sc], skip_sid=[sb])
    assert a.next_raw() == '2["y"]'
    assert c.next_raw() == '2["y"]'
    server.leave_room(sb, "r")
    server.close_room("r")
    assert server.rooms(sa) == [sa]
    server.emit("z")
    assert [x.next_raw() for x in (a, b, c)] == ['2["z"]'] * 3


def test_sessions() -> None:
    server, engine = make_server(namespaces="*")
    seen: list[Any] = []
    server.on("disconnect", lambda sid: seen.append(server.get_session(sid)))
    client = SioClient(engine)
    sid = client.connect()
    csid = client.connect("/c")
    assert server.get_session(sid) == {}
    server.save_session(sid, {"user": "ann"})
    with server.session(sid) as session:
        session["n"] = 1
    assert server.get_session(sid) == {"user": "ann", "n": 1}
    assert server.get_session(csid, namespace="/c") == {}
    with pytest.raises(KeyError):
        server.get_session("nobody")
    with pytest.raises(KeyError):
        server.save_session("nobody", {})
    engine.drop(client.eio_sid)
    wait_until(lambda: seen)
    assert seen == [{"user": "ann", "n": 1}]


def test_environ_transport_and_helpers() -> None:
    server, engine = make_server()
    client = SioClient(engine, environ={"REMOTE_ADDR": "1.2.3.4"})
    sid = client.connect()
    env = server.get_environ(sid)
    assert env is not None
    assert env["REMOTE_ADDR"] == "1.2.3.4"
    assert server.get_environ("nobody") is None
    assert server.transport(sid) == "polling"
    assert server.transport("nobody") is None
    done = threading.Event()
    task = server.start_background_task(lambda x, y=0: done.set() if x + y == 3 else None, 1, y=2)
    task.join(2)
    assert done.is_set()
    server.sleep(0)
    body = server.handle_request({}, lambda status, headers: None)
    assert list(body) == [b"fake"]


# ------------------------------------------------------------------ class-based namespaces


class Chat(Namespace):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.log: list[tuple[Any, ...]] = []

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        self.log.append(("connect", auth))
        self.enter_room(sid, "lobby")

    def on_disconnect(self, sid: str, reason: str) -> None:
        self.log.append(("disconnect", reason))

    def on_say(self, sid: str, text: str) -> str:
        self.emit("said", text, room="lobby")
        with self.session(sid) as session:
            session["said"] = text
        return text.upper()


def test_class_based_namespace() -> None:
    server, engine = make_server()
    chat = Chat("/chat")
    server.register_namespace(chat)
    client = SioClient(engine)
    sid = client.connect("/chat", auth={"k": 1})
    assert chat.rooms(sid) == sorted(chat.rooms(sid), key=lambda r: r != sid)
    assert "lobby" in chat.rooms(sid)
    client.emit("say", "hi", namespace="/chat", ack=4)
    assert client.next_raw() == '2/chat,["said","hi"]'
    assert client.next_raw() == '3/chat,4["HI"]'
    assert chat.get_session(sid) == {"said": "hi"}
    chat.save_session(sid, {})
    chat.leave_room(sid, "lobby")
    chat.close_room("lobby")
    chat.send("m", to=sid)
    assert client.next_raw() == '2/chat,["message","m"]'
    chat.disconnect(sid)
    assert client.next_raw() == "1/chat,"
    assert chat.log == [("connect", {"k": 1}), ("disconnect", "server disconnect")]


def test_class_namespace_with_short_signatures_and_call() -> None:
    server, engine = make_server()

    class Short(Namespace):
        def on_connect(self, sid: str, environ: dict[str, Any]) -> None:
            pass

        def on_disconnect(self, sid: str) -> None:
            pass

        def on_ask(self, sid: str) -> Any:
            return self.call("question", to=sid, timeout=3)

    server.register_namespace(Short("/s"))
    client = SioClient(engine)
    client.connect("/s")
    client.emit("ask", namespace="/s", ack=1)
    _answer_next_call(client, "yes")
    assert client.next_raw() == '3/s,1["yes"]'
    client.raw("1/s,")


def test_catch_all_class_namespace() -> None:
    server, engine = make_server()
    got: list[tuple[Any, ...]] = []

    class Any_(Namespace):
        def on_connect(self, namespace: str, sid: str, environ: dict[str, Any]) -> None:
            got.append(("connect", namespace))

        def on_ping(self, namespace: str, sid: str) -> str:
            return namespace

    server.register_namespace(Any_("*"))
    client = SioClient(engine)
    client.connect("/zzz")
    client.emit("ping", namespace="/zzz", ack=3)
    assert client.next_raw() == '3/zzz,3["/zzz"]'
    assert got == [("connect", "/zzz")]


def test_namespace_errors() -> None:
    server, _ = make_server()
    with pytest.raises(ValueError):
        server.register_namespace("not a namespace")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        Namespace("/x").emit("e")


# ------------------------------------------------------------------ msgpack


def test_msgpack_mode() -> None:
    import msgpack

    server, engine = make_server(serializer="msgpack")
    server.on("echo", lambda sid, *args: args)
    client = SioClient(engine, serializer=MsgpackSerializer())
    sid = client.connect(auth={"t": 1})
    client.emit("echo", b"\x00\x01", {"a": [1]}, ack=5)
    raw = client.next_raw()
    assert isinstance(raw, bytes)
    assert msgpack.unpackb(raw) == {
        "type": 3,
        "nsp": "/",
        "data": [b"\x00\x01", {"a": [1]}],
        "id": 5,
    }
    server.emit("bin", b"\xff", to=sid)
    assert client.next_packet() == Packet(PT.EVENT, "/", ["bin", b"\xff"])
    client.raw('2["text is invalid here"]')
    assert client.closed_reason() == "parse error"


def test_json_module_option() -> None:
    import json

    class Module:
        used = False

        @classmethod
        def dumps(cls, obj: Any, separators: Any = None) -> str:
            cls.used = True
            return json.dumps(obj, separators=separators)

        loads = staticmethod(json.loads)

    _, engine = make_server(json=Module)
    SioClient(engine).connect()
    assert Module.used


def test_logger_option() -> None:
    mine = logging.getLogger("my.app.sio")
    server, _ = make_server(logger=mine, engineio_logger=True)
    assert server.logger is mine
    loud, _ = make_server(logger=True)
    assert loud.logger.getEffectiveLevel() <= logging.INFO
    quiet, _ = make_server(logger=False)
    assert quiet.logger.name == "sio_wsgi.server"
