"""Hooks at the dispatcher: connect and event middlewares, on_any, outgoing observers,
dynamic namespace families and the rate limiter (synchronous, as tests/unit/test_dispatch.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sio_wsgi.config import RateLimitOptions
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.exceptions import ConnectionRefusedError, EventRejected
from sio_wsgi.hooks import ANY, CONNECT, EVENT, OUTGOING, Hooks
from sio_wsgi.namespace import HandlerRegistry
from sio_wsgi.ratelimit import EXCEEDED, RateLimit
from tests.unit.test_dispatch import Harness, connect_reply


def hooks(h: Harness) -> Hooks:
    return h.dispatcher.hooks


def events_to(h: Harness, eio_sid: str = "e1") -> list[Any]:
    """The EVENT packets sent to ``eio_sid`` (root namespace), decoded."""
    return [
        json.loads(m[1:]) for m in h.engine.messages(eio_sid) if isinstance(m, str) and m[:1] == "2"
    ]


# ------------------------------------------------------------------ connect middlewares


def test_connect_middlewares_run_in_order_before_the_handler_and_may_save_a_session() -> None:
    h = Harness()
    order: list[str] = []

    def first(sid: str, environ: dict[str, Any], auth: Any) -> None:
        order.append("first")
        environ["user"] = auth["user"]
        h.dispatcher.clients["e1"].save_session("/", {"user": auth["user"]})

    def second(sid: str) -> None:  # trailing arguments it does not declare are left out
        order.append("second")

    @h.on("connect")
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        order.append("handler")
        h.log.append((environ["user"], h.dispatcher.clients["e1"].session("/")))

    hooks(h).add(CONNECT, first, "/")
    hooks(h).add(CONNECT, second, "*")
    h.open()
    h.receive('0{"user":"ann"}')
    h.engine.run_all()
    assert order == ["first", "second", "handler"]
    assert h.log == [("ann", {"user": "ann"})]
    assert connect_reply(h.engine.messages()[0])


@pytest.mark.parametrize(
    ("outcome", "payload"),
    [
        (
            ConnectionRefusedError("unauthorized", {"code": 401}),
            {"message": "unauthorized", "data": {"code": 401}},
        ),
        (False, {"message": "Connection rejected by server"}),
        (RuntimeError("boom"), {"message": "Connection rejected by server"}),
    ],
    ids=["refused", "false", "crash"],
)
def test_a_refusing_middleware_stops_the_chain_and_the_client_gets_connect_error(
    outcome: Any, payload: dict[str, Any]
) -> None:
    h = Harness()
    h.record("connect")
    later: list[str] = []

    def refuse(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        if isinstance(outcome, Exception):
            raise outcome
        return bool(outcome)

    hooks(h).add(CONNECT, refuse, "/")
    hooks(h).add(CONNECT, lambda sid, environ, auth: later.append(sid), "/")
    h.open()
    h.receive("0")
    h.engine.run_all()
    (message,) = h.engine.messages()
    assert message[0] == "4" and json.loads(message[1:]) == payload
    assert later == [] and h.log == []
    assert h.manager.get_recipients("/") == []


def test_a_middleware_of_another_namespace_does_not_run() -> None:
    h = Harness(namespaces="*")
    seen: list[str] = []
    hooks(h).add(CONNECT, lambda sid, environ, auth, namespace: seen.append(namespace), "/a")
    h.connect("/b")
    h.connect("/a")
    assert seen == ["/a"]


@pytest.mark.parametrize("skip", [True, False])
def test_recovered_connections_skip_connect_middlewares_unless_told_otherwise(skip: bool) -> None:
    h = Harness(connection_state_recovery={"skip_middlewares": skip})
    runs: list[str] = []
    hooks(h).add(CONNECT, lambda sid: runs.append(sid), "/")
    sid = h.connect()
    (reply,) = [m for m in h.engine.messages() if connect_reply(m)]
    pid = json.loads(reply[1:])["pid"]
    h.manager.emit("tick", [], "/", to=sid)
    offset = events_to(h)[-1][-1]
    h.engine.close("e1", DisconnectReason.TRANSPORT_CLOSE)
    h.engine.run_all()
    h.open("e2")
    h.receive("0" + json.dumps({"pid": pid, "offset": offset}), eio_sid="e2")
    h.engine.run_all()
    client = h.dispatcher.clients["e2"]
    assert client.namespaces.get("/") == sid and sid in client.recovered
    assert runs == ([sid] if skip else [sid, sid])


# ------------------------------------------------------------------ event middlewares, on_any


def test_event_middlewares_pass_change_or_drop_events_and_on_any_sees_them_all() -> None:
    h = Harness()
    h.record("ev", "renamed")
    seen: list[tuple[Any, ...]] = []

    def rename(sid: str, event: str, args: list[Any]) -> tuple[str, list[Any]] | None:
        if event == "old":
            return "renamed", [*args, "+"]
        if event == "bad":
            raise EventRejected("not allowed", {"event": event})
        return None

    hooks(h).add(EVENT, rename, "/")
    hooks(h).add(ANY, lambda event, ns, sid, *args: seen.append((event, ns, *args)), "*")
    hooks(h).add(ANY, lambda event, sid, *args: seen.append(("exact", event)), "/")
    h.connect()
    h.receive('2["ev",1]', '2["old",2]', '21["bad",3]', '2["unhandled",4]')
    h.engine.run_all()
    assert h.log == [("ev", 1), ("renamed", 2, "+")]
    assert seen == [
        ("ev", "/", 1),
        ("exact", "ev"),
        ("renamed", "/", 2, "+"),
        ("exact", "renamed"),
        ("unhandled", "/", 4),
        ("exact", "unhandled"),
    ]
    # the dropped event got an error event and no ack (id 1 never answered)
    assert events_to(h) == [["error", {"message": "not allowed", "data": {"event": "bad"}}]]
    assert not any(m.startswith("31") for m in h.engine.messages() if isinstance(m, str))


def test_a_crashing_event_middleware_drops_the_event_with_a_generic_error() -> None:
    h = Harness()
    h.record("ev")

    def crash(sid: str, event: str, args: list[Any]) -> Any:
        if args == [2]:
            return "not a pair"  # a bad return value is a failure too
        raise KeyError("x")

    hooks(h).add(EVENT, crash, "/")
    h.connect()
    h.receive('2["ev",1]', '2["ev",2]')
    h.engine.run_all()
    assert h.log == []
    assert events_to(h) == [["error", {"message": "Event rejected by server", "data": None}]] * 2


def test_a_failing_on_any_is_logged_and_the_handler_still_runs() -> None:
    h = Harness()
    h.record("ev")

    def boom(*args: Any) -> None:
        raise RuntimeError("x")

    hooks(h).add(ANY, boom, "*")
    h.connect()
    h.receive('2["ev",1]')
    h.engine.run_all()
    assert h.log == [("ev", 1)]


def test_a_rejection_asking_for_it_disconnects_the_client() -> None:
    h = Harness()
    h.record("ev", "disconnect")

    def kick(sid: str, event: str, args: list[Any]) -> None:
        raise EventRejected("go away", disconnect=True)

    hooks(h).add(EVENT, kick, "/")
    h.connect()
    h.receive('2["ev",1]')
    h.engine.run_all()
    assert h.engine.messages()[-2:] == ['2["error",{"message":"go away","data":null}]', "1"]
    assert h.log[0][0] == "disconnect"
    assert h.manager.get_recipients("/") == []


# ------------------------------------------------------------------ outgoing


def test_outgoing_observers_see_each_delivery_and_their_failures_do_not_stop_it() -> None:
    h = Harness()
    seen: list[tuple[Any, ...]] = []

    def boom(*args: Any) -> None:
        raise RuntimeError("x")

    hooks(h).add(OUTGOING, boom, "*")
    hooks(h).add(OUTGOING, lambda *args: seen.append(args), "*")
    hooks(h).add(OUTGOING, lambda *args: seen.append(("other",)), "/other")
    h.manager.outgoing = hooks(h).run_outgoing
    a, b = h.connect(eio_sid="a"), h.connect(eio_sid="b")
    h.manager.emit("news", [1, 2], "/")
    h.manager.emit("direct", [], "/", to=b)
    assert sorted(seen) == sorted(
        [(a, "/", "news", [1, 2]), (b, "/", "news", [1, 2]), (b, "/", "direct", [])]
    )
    assert len(h.engine.messages("a")) == 2 and len(h.engine.messages("b")) == 3


# ------------------------------------------------------------------ dynamic namespaces


def test_a_regex_family_accepts_its_children_with_their_own_rooms_and_hooks() -> None:
    h = Harness()
    family = re.compile(r"^/dyn-\d+$")
    h.handlers.on("connect", lambda ns, sid, environ: h.log.append(("connect", ns)), family)
    h.handlers.on("ping", lambda ns, sid, n: h.log.append(("ping", ns, n)) or n, family)
    hooks(h).add(
        CONNECT, lambda sid, environ, auth, namespace: h.log.append(("mw", namespace)), family
    )
    one = h.connect("/dyn-1", eio_sid="a")
    two = h.connect("/dyn-2", eio_sid="b")
    h.receive('2/dyn-1,7["ping",5]', eio_sid="a")
    h.engine.run_all()
    assert h.log == [
        ("mw", "/dyn-1"),
        ("connect", "/dyn-1"),
        ("mw", "/dyn-2"),
        ("connect", "/dyn-2"),
        ("ping", "/dyn-1", 5),
    ]
    assert h.engine.messages("a")[-1] == "3/dyn-1,7[5]"
    h.manager.enter_room(one, "/dyn-1", "r")
    h.manager.enter_room(two, "/dyn-2", "r")
    h.manager.emit("hi", [], "/dyn-1", to="r")  # rooms are per concrete child
    assert h.engine.messages("a")[-1] == '2/dyn-1,["hi"]'
    assert '2/dyn-2,["hi"]' not in h.engine.messages("b")
    h.open("c")
    h.receive("0/nope,", "0/dyn-x,", eio_sid="c")
    assert h.engine.messages("c") == [
        '4/nope,{"message":"Invalid namespace"}',
        '4/dyn-x,{"message":"Invalid namespace"}',
    ]


def test_a_function_family_sees_the_name_and_auth() -> None:
    h = Harness()
    asked: list[tuple[str, Any]] = []

    def family(name: str, auth: Any) -> bool:
        asked.append((name, auth))
        return name.startswith("/team-") and auth == {"ok": True}

    h.handlers.on("connect", lambda ns, sid: h.log.append(ns), family)
    h.open()
    h.receive('0/team-a,{"ok":false}')
    h.receive('0/team-a,{"ok":true}')
    h.engine.run_all()
    assert asked == [("/team-a", {"ok": False}), ("/team-a", {"ok": True})]
    assert h.log == ["/team-a"]


def test_exact_registrations_and_root_are_never_children() -> None:
    registry = HandlerRegistry()
    registry.on("x", lambda sid: None, "/dyn-9")
    key = registry.key(re.compile(".*"))
    assert registry.key(re.compile(".*")) == key  # the same pattern: the same family
    assert not registry.admit("/", None, lambda ns: False)
    assert not registry.admit("/dyn-9", None, lambda ns: False)
    assert registry.admit("/other", None, lambda ns: False)
    assert registry.family_of("/other") == key
    with pytest.raises(TypeError):
        registry.key(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------ rate limiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limit = RateLimit(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limit("s", "ev", [])
    with pytest.raises(EventRejected) as caught:
        limit("s", "ev", [])
    assert caught.value.message == EXCEEDED and not caught.value.disconnect
    assert caught.value.data == {"event": "ev", "retry_after": 0.5}
    limit("other", "ev", [])  # per client
    clock.now += 0.5
    limit("s", "ev", [])
    with pytest.raises(EventRejected):
        limit("s", "ev", [])
    clock.now += 100  # refills up to the burst only
    for _ in range(3):
        limit("s", "ev", [])
    with pytest.raises(EventRejected):
        limit("s", "ev", [])
    assert limit.tracked() == 2
    limit.forget("s")
    assert limit.tracked() == 1


def test_per_event_buckets_are_bounded_and_events_filter() -> None:
    clock = Clock()
    limit = RateLimit(rate=1, burst=1, per_event=True, max_event_buckets=2, clock=clock)
    limit("s", "a", [])
    limit("s", "b", [])
    limit("s", "c", [])  # past the bound: the shared bucket
    with pytest.raises(EventRejected):
        limit("s", "d", [])
    with pytest.raises(EventRejected):
        limit("s", "a", [])
    only = RateLimit(rate=1, burst=1, events=["chat"], on_exceed="disconnect", clock=clock)
    for _ in range(5):
        only("s", "other", [])
    only("s", "chat", [])
    with pytest.raises(EventRejected) as caught:
        only("s", "chat", [])
    assert caught.value.disconnect


@pytest.mark.parametrize("bad", [{"rate": 0}, {"burst": 0}, {"on_exceed": "ban"}, {"rate": True}])
def test_bad_rate_limit_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimitOptions(**bad)


def test_the_rate_limiter_in_the_dispatcher_drops_and_forgets_at_disconnect() -> None:
    h = Harness()
    h.record("ev")
    clock = Clock()
    limit = RateLimit(rate=1, burst=2, clock=clock)
    hooks(h).add(EVENT, limit, "/")
    assert hooks(h).forgetting
    h.connect()
    h.receive('2["ev",1]', '2["ev",2]', '2["ev",3]')
    h.engine.run_all()
    assert h.log == [("ev", 1), ("ev", 2)]
    assert events_to(h) == [
        ["error", {"message": EXCEEDED, "data": {"event": "ev", "retry_after": 1.0}}]
    ]
    assert limit.tracked() == 1
    h.receive("1")
    h.engine.run_all()
    assert limit.tracked() == 0
