"""Dispatcher: ordering, CONNECT and its pending buffer, binary assembly, acks, limits.

The dispatcher acts on the engine only through the functions given to
``attach()``; here they record what it asks for, and the test decides when a
client's queued handlers run (``engine.step()``). Everything is synchronous:
no threads, no sleeps, no waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from sio_wsgi.acks import Waiter
from sio_wsgi.config import DEFAULTS
from sio_wsgi.dispatch import Dispatcher
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.exceptions import ConnectionRefusedError, DisconnectedError
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import HandlerRegistry
from sio_wsgi.protocol.serializers import JSONSerializer

ENV = {"REMOTE_ADDR": "127.0.0.1"}


class Timer:
    def __init__(self, delay: float, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.delay, self.fn, self.args = delay, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class RecordingEngine:
    """The four engine functions, recording; ``step()`` runs the oldest ``run`` request."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None
        self.runs: list[tuple[str, Callable[..., object], tuple[Any, ...]]] = []
        self.sends: list[tuple[str, list[str | bytes], bool]] = []
        self.closed: dict[str, DisconnectReason] = {}
        self.timers: list[Timer] = []

    def run(self, eio_sid: str, fn: Callable[..., object], /, *args: Any) -> None:
        self.runs.append((eio_sid, fn, args))

    def send(self, eio_sid: str, out: Outgoing, volatile: bool = False, /) -> bool:
        if eio_sid in self.closed:
            return False
        # the Socket.IO messages, without the Engine.IO MESSAGE type digit
        messages = [m if isinstance(m, bytes) else m[1:] for m in out.items]
        self.sends.append((eio_sid, messages, volatile))
        return True

    def close(self, eio_sid: str, reason: DisconnectReason, /) -> None:
        if eio_sid in self.closed:
            return
        self.closed[eio_sid] = reason
        assert self.dispatcher is not None
        self.dispatcher.on_disconnect(eio_sid, reason)

    def call_later(self, delay: float, fn: Callable[..., object], /, *args: Any) -> Timer:
        timer = Timer(delay, fn, args)
        self.timers.append(timer)
        return timer

    def step(self) -> None:
        """Run the oldest pending ``run`` request (a drain of one client's queue)."""
        _, fn, args = self.runs.pop(0)
        fn(*args)

    def run_all(self) -> None:
        while self.runs:
            self.step()

    def messages(self, eio_sid: str = "e1") -> list[str | bytes]:
        """Everything sent to ``eio_sid``, flattened."""
        return [m for sid, batch, _ in self.sends if sid == eio_sid for m in batch]


class Harness:
    def __init__(self, **options: Any) -> None:
        self.handlers = HandlerRegistry()
        self.manager = Manager()
        self.engine = RecordingEngine()
        self.log: list[tuple[Any, ...]] = []
        self.dispatcher = Dispatcher(
            DEFAULTS.replace(**options),
            self.handlers,
            self.manager,
            JSONSerializer(),
            _quiet_logger(),
            threading.Lock,
        )
        self.engine.dispatcher = self.dispatcher
        d, e = self.dispatcher, self.engine
        d.attach(run=e.run, send=e.send, close=e.close, call_later=e.call_later)
        self.manager.attach(d.encode, d.deliver)

    def open(self, eio_sid: str = "e1") -> str:
        assert self.dispatcher.on_connect(eio_sid, dict(ENV))
        return eio_sid

    def receive(self, *messages: str | bytes, eio_sid: str = "e1") -> None:
        for message in messages:
            self.dispatcher.on_message(eio_sid, message)

    def connect(self, namespace: str = "/", eio_sid: str = "e1") -> str:
        """Open (if needed) and join ``namespace``, running the queue; the new sid."""
        if eio_sid not in self.dispatcher.clients:
            self.open(eio_sid)
        self.receive("0" if namespace == "/" else f"0{namespace},", eio_sid=eio_sid)
        self.engine.run_all()
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        assert sid is not None
        return sid

    def on(self, event: str, namespace: str = "/") -> Callable[[Callable[..., Any]], Any]:
        def register(fn: Callable[..., Any]) -> Any:
            self.handlers.on(event, fn, namespace)
            return fn

        return register

    def record(self, *events: str, namespace: str = "/") -> None:
        """Handlers that append ``(event, *args-without-environ)`` to :attr:`log`."""
        for event in events:
            if event == "connect":
                self.handlers.on(
                    event, lambda sid, environ, auth: self.log.append(("connect", auth)), namespace
                )
            else:
                self.handlers.on(
                    event, lambda sid, *args, e=event: self.log.append((e, *args)), namespace
                )


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("tests.dispatch")
    logger.setLevel(logging.CRITICAL)
    return logger


def connect_reply(message: str | bytes) -> bool:
    return isinstance(message, str) and message.startswith('0{"sid":"')


# ------------------------------------------------------------------ ordering


def test_connect_events_and_disconnect_run_in_arrival_order() -> None:
    h = Harness()
    h.record("connect", "ev", "disconnect")
    h.open()
    h.receive('0{"t":1}', '2["ev",1]', '2["ev",2]', "1")
    assert h.log == []  # nothing runs on the reader
    assert [(sid, fn.__name__) for sid, fn, _ in h.engine.runs] == [("e1", "_drain")]
    h.engine.step()
    assert h.log == [
        ("connect", {"t": 1}),
        ("ev", 1),
        ("ev", 2),
        ("disconnect", DisconnectReason.CLIENT_DISCONNECT),
    ]
    assert connect_reply(h.engine.messages()[0])
    assert h.engine.runs == []


def test_messages_arriving_during_a_handler_join_the_running_drain() -> None:
    h = Harness()
    h.record("ev")

    @h.on("connect")
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        h.log.append(("connect",))
        h.receive('2["ev","during"]')  # the reader gets more while the handler runs

    h.open()
    h.receive("0")
    h.engine.step()
    assert h.log == [("connect",), ("ev", "during")]
    assert h.engine.runs == []  # one drain did both: no second task was started


def test_a_busy_client_starts_one_drain_and_others_their_own() -> None:
    h = Harness()
    h.record("ev")
    a, b = h.connect(eio_sid="a"), h.connect(eio_sid="b")
    assert a != b
    h.receive('2["ev","a1"]', '2["ev","a2"]', eio_sid="a")
    h.receive('2["ev","b1"]', eio_sid="b")
    assert [sid for sid, _, _ in h.engine.runs] == ["a", "b"]
    h.engine.run_all()
    assert h.log == [("ev", "a1"), ("ev", "a2"), ("ev", "b1")]


def test_inline_mode_runs_handlers_on_the_reader() -> None:
    h = Harness(async_handlers=False)
    h.record("connect", "ev")
    h.open()
    h.receive("0", '2["ev",1]')
    assert h.log == [("connect", None), ("ev", 1)]
    assert h.engine.runs == []
    assert connect_reply(h.engine.messages()[0])


def test_client_disconnect_runs_before_a_transport_close_queued_behind_it() -> None:
    h = Harness()
    h.record("disconnect")
    h.connect()
    h.receive("1")
    h.engine.close("e1", DisconnectReason.TRANSPORT_CLOSE)
    h.engine.run_all()
    assert h.log == [("disconnect", DisconnectReason.CLIENT_DISCONNECT)]
    assert h.dispatcher.clients == {}


def test_transport_close_runs_each_namespace_disconnect_once_then_forgets() -> None:
    h = Harness(namespaces="*")
    h.record("disconnect")
    h.record("disconnect", namespace="/a")
    s1, s2 = h.connect(), h.connect("/a")
    h.engine.close("e1", DisconnectReason.PING_TIMEOUT)
    h.dispatcher.on_disconnect("e1", DisconnectReason.TRANSPORT_CLOSE)  # a second report: ignored
    assert "e1" in h.dispatcher.clients  # until its disconnect handlers ran
    h.engine.run_all()
    assert h.log == [("disconnect", "ping timeout")] * 2
    assert h.dispatcher.clients == {}
    assert not h.manager.is_connected(s1, "/")
    assert not h.manager.is_connected(s2, "/a")


# ------------------------------------------------------------------ CONNECT


def test_pending_buffer_flushes_right_after_the_connect_reply() -> None:
    h = Harness()

    @h.on("connect")
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        h.manager.emit("inside", [1], "/", to=sid)
        h.manager.emit("everyone", [], "/")

    h.open()
    h.receive("0")
    sid = h.manager.sid_from_eio_sid("e1", "/")
    assert sid is not None
    h.manager.emit("early", [], "/", to=sid)  # before the connect handler even ran
    assert h.engine.sends == []
    h.engine.step()
    [(eio_sid, batch, _)] = h.engine.sends  # one send: the reply, then the held-back messages
    assert eio_sid == "e1"
    assert batch == [f'0{{"sid":"{sid}"}}', '2["early"]', '2["inside",1]', '2["everyone"]']
    h.manager.emit("after", [], "/", to=sid)
    assert h.engine.sends[-1] == ("e1", ['2["after"]'], False)  # straight through now


def test_always_connect_replies_first_and_refusal_then_disconnects() -> None:
    h = Harness(always_connect=True)

    @h.on("connect")
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        assert connect_reply(h.engine.messages()[0])  # the reply went out already
        h.manager.emit("inside", [], "/", to=sid)
        return bool(auth)

    h.open()
    h.receive("0")
    h.engine.step()
    assert h.engine.messages()[1:] == ['2["inside"]', "1"]
    assert h.manager.get_recipients("/") == []


@pytest.mark.parametrize(
    ("outcome", "payload"),
    [
        (False, '{"message":"Connection rejected by server"}'),
        (ConnectionRefusedError("bad token"), '{"message":"bad token"}'),
        (ConnectionRefusedError("no", {"why": 1}), '{"message":"no","data":{"why":1}}'),
        (RuntimeError("boom"), '{"message":"Connection rejected by server"}'),
    ],
    ids=["false", "refused", "refused-data", "crash"],
)
def test_refused_connect_drops_what_was_held_back(outcome: Any, payload: str) -> None:
    h = Harness()
    h.record("disconnect")

    @h.on("connect")
    def connect(sid: str, environ: dict[str, Any]) -> bool:
        h.manager.emit("too-early", [], "/", to=sid)
        if isinstance(outcome, Exception):
            raise outcome
        return bool(outcome)

    h.open()
    h.receive("0")
    h.engine.step()
    assert h.engine.messages() == ["4" + payload]
    assert h.manager.get_recipients("/") == []
    assert h.log == []  # no disconnect handler for a refused connection
    assert h.engine.closed == {}  # the connection stays, it may try again
    assert h.dispatcher.clients["e1"].namespaces == {}


def test_unknown_namespace_is_refused_on_the_reader() -> None:
    h = Harness()
    h.open()
    h.receive("0/nope,")
    assert h.engine.runs == []
    assert h.engine.messages() == ['4/nope,{"message":"Invalid namespace"}']


def test_duplicate_connect_is_ignored() -> None:
    h = Harness()
    h.connect()
    h.receive("0")
    assert h.engine.runs == []
    assert len(h.engine.messages()) == 1


def test_transport_close_during_connect_refuses_it_without_disconnect_handler() -> None:
    h = Harness()
    h.record("connect", "disconnect")
    h.open()
    h.receive("0")
    h.engine.close("e1", DisconnectReason.TRANSPORT_CLOSE)
    h.engine.run_all()
    assert h.log == [("connect", None)]  # the handler ran; its disconnect did not
    assert h.engine.messages() == []  # no reply to a closed connection
    assert h.manager.get_recipients("/") == []
    assert h.dispatcher.clients == {}


def test_server_disconnect_during_connect_refuses_it() -> None:
    h = Harness()
    h.record("disconnect")

    @h.on("connect")
    def connect(sid: str, environ: dict[str, Any]) -> None:
        assert h.dispatcher.disconnect(sid, "/")

    h.open()
    h.receive("0")
    h.engine.step()
    assert h.engine.messages() == ['4{"message":"Connection rejected by server"}']
    assert h.log == []


def test_server_disconnect_sends_disconnect_and_runs_the_handler() -> None:
    h = Harness()
    h.record("disconnect")
    sid = h.connect()
    assert h.dispatcher.disconnect(sid, "/")
    assert h.engine.messages()[-1] == "1"
    assert h.log == [("disconnect", DisconnectReason.SERVER_DISCONNECT)]
    assert not h.dispatcher.disconnect(sid, "/")  # gone: not a client of ours any more
    assert h.log == [("disconnect", DisconnectReason.SERVER_DISCONNECT)]
    assert h.engine.closed == {}  # the connection stays


def test_connect_timeout_closes_a_client_that_never_joins() -> None:
    h = Harness(connect_timeout=5)
    h.open("silent")
    h.connect(eio_sid="good")
    assert [t.delay for t in h.engine.timers] == [5.0, 5.0]
    for timer in h.engine.timers:
        if not timer.cancelled:
            timer.fn(*timer.args)
    assert h.engine.closed == {"silent": DisconnectReason.SERVER_DISCONNECT}


# ------------------------------------------------------------------ binary, events, acks


def test_binary_event_is_assembled_and_binary_ack_sent() -> None:
    h = Harness()
    got: list[Any] = []

    @h.on("up")
    def up(sid: str, blob: bytes) -> Any:
        got.append(blob)
        return {"echo": blob}

    h.connect()
    h.receive('51-5["up",{"_placeholder":true,"num":0}]')
    assert h.engine.runs == []  # waits for its attachment
    h.receive(b"\x01\x02")
    h.engine.run_all()
    assert got == [b"\x01\x02"]
    assert h.engine.messages()[1:] == ['61-5[{"echo":{"_placeholder":true,"num":0}}]', b"\x01\x02"]


def test_text_where_an_attachment_is_expected_closes() -> None:
    h = Harness()
    h.connect()
    h.receive('51-["up",{"_placeholder":true,"num":0}]', '2["x"]')
    assert h.engine.closed == {"e1": DisconnectReason.PARSE_ERROR}


@pytest.mark.parametrize("bad", ["abc", '2["connect"]', "4{}", b"\x00"])
def test_invalid_packets_close_with_parse_error(bad: str | bytes) -> None:
    h = Harness()
    h.connect()
    h.receive(bad)
    assert h.engine.closed == {"e1": DisconnectReason.PARSE_ERROR}


def test_event_return_value_is_the_ack() -> None:
    h = Harness()
    h.on("sum")(lambda sid, a, b: a + b)
    h.on("pair")(lambda sid: (1, "b"))
    h.connect()
    h.receive('27["sum",1,2]', '28["pair"]', '29["nobody"]')
    h.engine.run_all()
    assert h.engine.messages()[1:] == ["37[3]", '38[1,"b"]']  # no handler: no ack


def test_events_of_unjoined_namespaces_are_ignored() -> None:
    h = Harness()
    h.record("ev")
    h.open()
    h.receive('2["ev"]', '2/other,["ev"]')
    assert h.engine.runs == []
    assert h.log == []


def test_client_ack_is_resolved_on_the_reader_even_behind_busy_handlers() -> None:
    h = Harness()
    h.record("ev")
    sid = h.connect()
    got: list[tuple[Any, ...]] = []
    h.manager.emit("q", [], "/", to=sid, callback=lambda *args: got.append(args))
    ack_id = int(str(h.engine.messages()[-1])[1:].split("[")[0])
    h.receive('2["ev",1]')  # queued, not run yet
    h.receive(f'3{ack_id}["a",2]')
    assert got == [("a", 2)]  # resolved right away, not behind the event
    assert h.log == []
    h.receive(f'3{ack_id}["again"]', '3/other,1["x"]')  # once only; unknown namespace ignored
    assert got == [("a", 2)]


def test_leaving_fails_the_call_waiters_at_once() -> None:
    h = Harness()
    sid = h.connect()
    waiter = Waiter(threading.Event())
    with h.dispatcher.waiters.watching(sid, waiter):
        h.receive("1")  # the DISCONNECT is queued; the waiter fails before it runs
        assert waiter.event.is_set()
        with pytest.raises(DisconnectedError):
            waiter.outcome(0, "q")


def test_is_connected_follows_the_client_state() -> None:
    h = Harness()
    sid = h.connect()
    assert h.dispatcher.is_connected(sid, "/")
    h.engine.close("e1", DisconnectReason.TRANSPORT_CLOSE)
    assert not h.dispatcher.is_connected(sid, "/")  # at once, before its handlers ran
    assert h.engine.runs
    assert not h.dispatcher.is_connected("unknown", "/")


# ------------------------------------------------------------------ queue bound


def test_bytes_queued_behind_a_busy_handler_are_bounded() -> None:
    event = '2["ev","xxxxxxxxxx"]'  # 21 bytes
    h = Harness(max_pending_bytes=2 * len(event))
    h.record("ev")
    h.connect()
    h.receive(event, event)  # at the bound: fine
    assert h.engine.closed == {}
    h.engine.run_all()  # drained: the bytes are released
    h.receive(event, event)
    assert h.engine.closed == {}
    h.receive(event)  # one over
    assert h.engine.closed == {"e1": DisconnectReason.TRANSPORT_ERROR}


def test_a_single_event_over_the_bound_is_accepted_when_nothing_waits() -> None:
    h = Harness(max_pending_bytes=4)
    h.record("ev")
    h.connect()
    h.receive('2["ev","much more than four bytes"]')
    assert h.engine.closed == {}
    h.engine.run_all()
    assert h.log == [("ev", "much more than four bytes")]


def test_unqueued_ack_bytes_count_but_do_not_close_an_idle_client() -> None:
    h = Harness(max_pending_bytes=30)
    h.record("ev")
    h.connect()
    h.receive(*(f'3{i}["xxxxxxxxxx"]' for i in range(5)))  # acks nobody waits for
    h.receive('2["ev",1]')  # carries their bytes; nothing else waits: taken
    assert h.engine.closed == {}
    h.receive('2["ev",2]')  # behind it, over the bound
    assert h.engine.closed == {"e1": DisconnectReason.TRANSPORT_ERROR}


def test_disconnect_handlers_run_after_the_bound_closed_the_client() -> None:
    h = Harness(max_pending_bytes=4)
    h.record("ev", "disconnect")
    h.connect()
    h.receive('2["ev",1]', '2["ev",2]')  # the second is over the bound: closed
    assert h.engine.closed == {"e1": DisconnectReason.TRANSPORT_ERROR}
    h.engine.run_all()
    assert h.log == [("ev", 1), ("disconnect", DisconnectReason.TRANSPORT_ERROR)]
    assert h.dispatcher.clients == {}  # forgotten


def test_send_goes_through_the_given_function_only() -> None:
    h = Harness()
    sid = h.connect()
    assert h.dispatcher.deliver("e1", sid, Outgoing.messages(['2["x"]']), True)
    assert h.engine.sends[-1] == ("e1", ['2["x"]'], True)
