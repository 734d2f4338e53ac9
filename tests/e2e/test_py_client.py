"""End-to-end tests with the python-socketio client (``socketio.Client`` / ``SimpleClient``).

Mirrors the important JS client tests, per async mode and client transport
(``upgrade`` = polling then websocket, ``websocket``, ``polling``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
from socketio import exceptions as sio_exc

from tests.e2e.e2e_support import CLIENT_TRANSPORTS
from tests.support import wait_until

__all__: list[str] = []

TIMEOUT = 4.0
RECORDED = (
    "welcome",
    "echo_back",
    "room_msg",
    "broadcast_msg",
    "binary_back",
    "from_route",
    "from_thread",
    "tick",
)


class Peer:
    """A ``socketio.Client`` that records what it receives.

    :param answer: what the client acks to the server's ``question`` call.
    """

    def __init__(self, answer: Any = None) -> None:
        self.sio = socketio.Client(reconnection=False, request_timeout=5)
        self.cond = threading.Condition()
        self.got: dict[tuple[str, str], list[Any]] = {}
        self.answer = answer
        for ns in ("/", "/chat"):
            for event in RECORDED:
                self.sio.on(event, self._recorder(event, ns), namespace=ns)
            self.sio.on("question", self._question, namespace=ns)
            self.sio.on("connect_error", self._recorder("connect_error", ns), namespace=ns)
            self.sio.on("disconnect", self._recorder("disconnect", ns), namespace=ns)

    def _recorder(self, event: str, ns: str) -> Any:
        def handler(*args: Any) -> None:
            with self.cond:
                self.got.setdefault((ns, event), []).append(args[0] if len(args) == 1 else args)
                self.cond.notify_all()

        return handler

    def _question(self, data: Any) -> Any:
        return self.answer if self.answer is not None else {"got": data}

    def connect(self, url: str, transport: str, **kw: Any) -> None:
        """Connect over the given client transport choice.

        :param url: server URL.
        :param transport: key of ``CLIENT_TRANSPORTS``.
        :param kw: more ``Client.connect`` arguments.
        """
        transports = None if transport == "upgrade" else CLIENT_TRANSPORTS[transport]
        self.sio.connect(url, transports=transports, wait_timeout=TIMEOUT, **kw)

    def events(self, event: str, ns: str = "/") -> list[Any]:
        """:returns: what ``event`` delivered on ``ns`` so far."""
        with self.cond:
            return list(self.got.get((ns, event), []))

    def wait(
        self, event: str, count: int = 1, ns: str = "/", timeout: float = TIMEOUT
    ) -> list[Any]:
        """Wait until ``count`` ``event`` arrived on ``ns``.

        :returns: the payloads.
        :raises AssertionError: on timeout.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.got.get((ns, event), [])) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"timeout waiting for {count} x {event} on {ns}: {self.got}"
                self.cond.wait(left)
            return list(self.got[(ns, event)])

    def disconnect_bounded(self, timeout: float = 3.0) -> None:
        """``Client.disconnect()`` in a helper thread, waited on for at most ``timeout``.

        Over polling the python client joins its reader, which can sit in a long-poll
        for a whole ping interval.

        :param timeout: seconds.
        """
        t = threading.Thread(target=self.sio.disconnect, daemon=True)
        t.start()
        t.join(timeout)

    def close(self) -> None:
        """Teardown: drop the connection without waiting for the long-poll."""
        if self.sio.connected:
            self.sio.eio.disconnect(abort=True)


@pytest.fixture
def peers() -> Iterator[Any]:
    """Factory of :class:`Peer`; disconnects them all at teardown."""
    made: list[Peer] = []

    def make(answer: Any = None) -> Peer:
        p = Peer(answer)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_py_connect_auth_welcome(server: Any, transport: str, peers: Any) -> None:
    """Auth reaches the connect handler; 'welcome' comes back with it."""
    p = peers()
    p.connect(server.url, transport, auth={"token": "py"})
    (welcome,) = p.wait("welcome")
    assert welcome == {"auth": {"token": "py"}, "sid": p.sio.get_sid("/"), "namespace": "/"}
    if transport != "polling":
        wait_until(lambda: p.sio.transport() == "websocket", 3, "the upgrade to websocket")
    else:
        assert p.sio.transport() == "polling"


def test_py_connect_refused(server: Any, transport: str, peers: Any) -> None:
    """A refused connect raises ConnectionError; connect_error carries message and data."""
    p = peers()
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            p.connect(server.url, transport, auth={"token": "bad"})
        except BaseException as exc:
            errors.append(exc)

    # on refusal the python client disconnects and joins its long-poll reader, which can
    # wait a whole ping interval when its CLOSE is lost (client race): bound the wait
    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    p.wait("connect_error")
    t.join(2)
    assert p.events("connect_error") == [{"message": "bad token", "data": {"why": "x"}}]
    if not t.is_alive():
        assert len(errors) == 1 and isinstance(errors[0], sio_exc.ConnectionError), errors
    assert "/" not in p.sio.namespaces


def test_py_call_and_ack(server: Any, transport: str, peers: Any) -> None:
    """Client call() gets the handler's return value; several args come back as several."""
    p = peers()
    p.connect(server.url, transport)
    assert p.sio.call("echo", {"a": [1, "2", None]}, timeout=TIMEOUT) == {"a": [1, "2", None]}
    assert list(p.sio.call("echo", (1, "2", {"3": [True]}), timeout=TIMEOUT)) == [
        1,
        "2",
        {"3": [True]},
    ]
    assert p.wait("echo_back", 2) == [{"a": [1, "2", None]}, (1, "2", {"3": [True]})]


def test_py_server_call_to_client(server: Any, transport: str, peers: Any) -> None:
    """Server-side call() gets the python client's handler return value."""
    p = peers(answer={"py": "answer"})
    p.connect(server.url, transport)
    assert p.sio.call("ask_client", "q?", timeout=8) == {"answer": {"py": "answer"}}


def test_py_server_waits_for_client_ack_on_a_plain_event(
    server: Any, transport: str, peers: Any
) -> None:
    """A handler waiting for the client's ack on its own Event (not call()) gets it.

    In threading mode the handler runs on the WebSocket reader; the reading must
    move to another thread while it waits, or the ack is never read.
    """
    p = peers(answer={"py": "raw"})
    p.connect(server.url, transport)
    assert p.sio.call("ask_client_raw", "q?", timeout=8) == {"answer": {"py": "raw"}}


def test_py_binary(server: Any, transport: str, peers: Any) -> None:
    """Bytes nested in dicts and lists go both ways as bytes."""
    p = peers()
    p.connect(server.url, transport)
    data = {"a": b"\x00\x01\xff", "l": [b"x" * 5000, {"deep": b""}], "t": "text"}
    back = p.sio.call("binary", data, timeout=TIMEOUT)
    got, shape = back
    assert got == data
    assert shape == [{"a": "<bytes:3>", "l": ["<bytes:5000>", {"deep": "<bytes:0>"}], "t": "text"}]
    assert p.wait("binary_back") == [data]


def test_py_namespaces(server: Any, transport: str, peers: Any) -> None:
    """'/' and '/chat' on one connection; disconnecting '/chat' keeps '/'."""
    p = peers()
    p.connect(server.url, transport, namespaces=["/", "/chat"], auth={"k": 1})
    (w_root,) = p.wait("welcome", ns="/")
    (w_chat,) = p.wait("welcome", ns="/chat")
    assert w_root["namespace"] == "/" and w_chat["namespace"] == "/chat"
    assert w_chat["sid"] == p.sio.get_sid("/chat") != p.sio.get_sid("/")
    assert p.sio.call("echo", "chat", namespace="/chat", timeout=TIMEOUT) == "chat"
    assert p.events("echo_back", "/") == []
    chat_sid = p.sio.get_sid("/chat")
    p.sio.emit("kick", namespace="/chat")
    entry = server.wait_disconnect(chat_sid)
    assert entry and entry["reason"] == "server disconnect" and entry["namespace"] == "/chat"
    assert p.sio.call("echo", "root", timeout=TIMEOUT) == "root"


def test_py_rooms_and_broadcast(server: Any, transport: str, peers: Any) -> None:
    """Room emits reach members but not the sender; broadcasts skip the sender."""
    a, b, c = peers(), peers(), peers()
    for p in (a, b, c):
        p.connect(server.url, transport)
    room = f"room-{uuid.uuid4().hex[:8]}"
    a.sio.call("join", room, timeout=TIMEOUT)
    b.sio.call("join", room, timeout=TIMEOUT)
    assert c.sio.call("to_room", {"room": room, "data": 1}, timeout=TIMEOUT) is True
    assert a.sio.call("to_room", {"room": room, "data": 2}, timeout=TIMEOUT) is True
    b.sio.call("leave", room, timeout=TIMEOUT)
    c.sio.call("to_room", {"room": room, "data": 3}, timeout=TIMEOUT)
    assert c.sio.call("broadcast", "all", timeout=TIMEOUT) is True
    for p in (a, b, c):  # barrier: acks come after anything queued before them
        p.sio.call("echo", "barrier", timeout=TIMEOUT)
    assert a.wait("room_msg", 2) == [1, 3]
    assert b.wait("room_msg", 2) == [1, 2]
    assert c.events("room_msg") == []
    assert a.wait("broadcast_msg") == ["all"] and b.wait("broadcast_msg") == ["all"]
    assert c.events("broadcast_msg") == []


def test_py_server_disconnect(server: Any, transport: str, peers: Any) -> None:
    """kick: the client's disconnect handler runs; the server logs 'server disconnect'."""
    p = peers()
    p.connect(server.url, transport)
    sid = p.sio.get_sid("/")
    p.sio.emit("kick")
    p.wait("disconnect")
    wait_until(lambda: "/" not in p.sio.namespaces, 3, "the client leaving '/'")
    entry = server.wait_disconnect(sid)
    assert entry and entry["reason"] == "server disconnect"


def test_py_client_disconnect(server: Any, transport: str, peers: Any) -> None:
    """Client disconnect(): the server's handler gets 'client disconnect'."""
    p = peers()
    p.connect(server.url, transport)
    sid = p.sio.get_sid("/")
    p.disconnect_bounded()
    entry = server.wait_disconnect(sid)
    if entry is None and transport == "polling":
        # python-engineio's client write loop can exit (state no longer 'connected') before
        # it POSTs the queued DISCONNECT and CLOSE: seen with python-socketio servers too
        pytest.xfail("python-engineio client race: DISCONNECT/CLOSE never POSTed")
    assert entry is not None, server.log_tail()
    # the python client sends DISCONNECT then aborts the transport at once, so a server
    # may see the transport go first; the JS client tests pin 'client disconnect' exactly
    assert entry["reason"] in ("client disconnect", "transport close")


@pytest.mark.parametrize("route", ["/emit", "/emit_from_thread"])
def test_py_emit_from_route_and_thread(
    server: Any,
    transport: str,
    peers: Any,
    route: str,
    impl: str,
    async_mode: str,
    request: pytest.FixtureRequest,
) -> None:
    """Emits from a Flask view and from a plain OS thread reach the python client."""
    if impl == "socketio" and async_mode == "eventlet" and route == "/emit_from_thread":
        request.applymarker(
            pytest.mark.xfail(
                reason="python-socketio/eventlet cannot wake a green thread from an OS thread",
                strict=False,
            )
        )
    p = peers()
    p.connect(server.url, transport)
    event = "from_route" if route == "/emit" else "from_thread"
    server.post_json(route, {"event": event, "data": [route], "to": p.sio.get_sid("/")})
    assert p.wait(event) == [[route]]


def test_py_background_task_ticks(server: Any, transport: str, peers: Any) -> None:
    """The background ticker reaches a client in room 'ticks'."""
    p = peers()
    p.connect(server.url, transport)
    p.sio.call("join", "ticks", timeout=TIMEOUT)
    ticks = p.wait("tick", 2, timeout=3)
    assert ticks[1]["n"] > ticks[0]["n"]


def test_simple_client(server: Any, transport: str) -> None:
    """socketio.SimpleClient: receive, emit and call."""
    transports = None if transport == "upgrade" else CLIENT_TRANSPORTS[transport]
    with socketio.SimpleClient() as c:
        c.connect(server.url, transports=transports, auth={"simple": True}, wait_timeout=TIMEOUT)
        event, data = c.receive(timeout=TIMEOUT)
        assert (event, data["auth"]) == ("welcome", {"simple": True})
        c.emit("echo", "hi")
        assert c.receive(timeout=TIMEOUT) == ["echo_back", "hi"]
        assert c.call("echo", {"n": 5}, timeout=TIMEOUT) == {"n": 5}
        assert c.receive(timeout=TIMEOUT) == ["echo_back", {"n": 5}]
