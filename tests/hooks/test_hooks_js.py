"""Hooks end to end with the official JS client (socket.io-client v4, tests/js/driver.js):
CONNECT_ERROR data from a connect middleware, the ``error`` event of an event
middleware, rate-limit drops and disconnects, and a dynamic namespace family with rooms."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import ServerProcess

pytestmark = pytest.mark.browser

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"]}


@pytest.fixture(params=sorted(TRANSPORTS))
def transports(request: pytest.FixtureRequest) -> list[str]:
    """The client's transports."""
    return TRANSPORTS[request.param]


def run(
    node_client: Any,
    server: ServerProcess,
    transports: list[str],
    steps: list[dict[str, Any]],
    clients: dict[str, dict[str, Any]] | None = None,
) -> Any:
    result = node_client(
        {
            "url": server.url,
            "timeout_ms": 4000,
            "overall_timeout_ms": 15000,
            "options": {"transports": transports},
            "clients": clients or {"a": {}},
            "steps": steps,
        }
    )
    assert result.ok, f"{result.dump()}\n--- server log ---\n{server.log_tail()}"
    return result


def test_connect_error_data_from_a_middleware(
    hooks_server: ServerProcess, transports: list[str], node_client: Any
) -> None:
    res = run(
        node_client,
        hooks_server,
        transports,
        [{"op": "connect", "expect": "connect_error"}, {"op": "connect", "client": "b"}],
        {"a": {"auth": {"token": "bad"}}, "b": {"auth": {"user": "zoe"}}},
    )
    (err,) = res.of("connect_error", "a")
    assert err["message"] == "unauthorized" and err["data"] == {"code": 401}
    assert not res.events("a", "welcome")
    assert res.of("connect", "b")


def test_an_error_event_from_an_event_middleware(
    hooks_server: ServerProcess, transports: list[str], node_client: Any
) -> None:
    res = run(
        node_client,
        hooks_server,
        transports,
        [
            {"op": "connect"},
            {"op": "emit", "event": "forbidden", "args": []},
            {"op": "wait", "event": "error"},
            {"op": "emit", "event": "shout", "args": ["hi"], "ack": True},
        ],
    )
    assert res.events("a", "error") == [
        [{"message": "forbidden event", "data": {"event": "forbidden"}}]
    ]
    assert res.ack("shout") == [["HI"]]


def test_rate_limit_drops_then_disconnects(
    hooks_server: ServerProcess, transports: list[str], node_client: Any
) -> None:
    burst = [{"op": "emit", "event": "hit", "args": [n], "client": "a"} for n in range(6)]
    strict = [{"op": "emit", "event": "hit", "args": [n], "client": "s"} for n in range(5)]
    res = run(
        node_client,
        hooks_server,
        transports,
        [
            {"op": "connect"},
            *burst,
            {"op": "wait", "event": "error", "count": 2},
            {"op": "connect", "client": "s"},
            *strict,
            {"op": "wait", "event": "disconnect", "client": "s"},
        ],
        {"a": {"namespace": "/limited"}, "s": {"namespace": "/strict"}},
    )
    assert res.events("a", "hit_ok")[:3] == [[0], [1], [2]]
    errors = res.events("a", "error")
    assert errors and all(e[0]["message"] == "rate limit exceeded" for e in errors)
    assert res.events("s", "hit_ok") == [[0], [1]]
    assert res.events("s", "error")[0][0]["message"] == "rate limit exceeded"
    (gone,) = res.of("disconnect", "s")
    assert gone["reason"] == "io server disconnect"


def test_a_dynamic_namespace_family_with_rooms(
    hooks_server: ServerProcess, transports: list[str], node_client: Any
) -> None:
    res = run(
        node_client,
        hooks_server,
        transports,
        [
            {"op": "connect", "client": "a"},
            {"op": "connect", "client": "b"},
            {"op": "connect", "client": "c"},
            {"op": "connect", "client": "d", "expect": "connect_error"},
            {"op": "emit", "client": "a", "event": "broadcast", "args": ["x"], "ack": True},
            {"op": "wait", "client": "a", "event": "said"},
            {
                "op": "emit",
                "client": "c",
                "event": "broadcast",
                "args": ["y"],
                "ack": True,
                "label": "c",
            },
            {"op": "wait", "client": "c", "event": "said"},
            {
                "op": "emit",
                "client": "a",
                "event": "broadcast",
                "args": ["z"],
                "ack": True,
                "label": "z",
            },
            {"op": "wait", "client": "a", "event": "said", "count": 2},
        ],
        {
            "a": {"namespace": "/dyn-1", "auth": {"room": "r"}},
            "b": {"namespace": "/dyn-1", "auth": {"room": "other"}},
            "c": {"namespace": "/dyn-2", "auth": {"room": "r"}},
            "d": {"namespace": "/dynamic", "auth": {"room": "r"}},
        },
    )
    assert res.ack("broadcast") == ["/dyn-1"] and res.ack("c") == ["/dyn-2"]
    assert res.events("a", "said") == [
        [{"ns": "/dyn-1", "text": "x"}],
        [{"ns": "/dyn-1", "text": "z"}],
    ]
    assert res.events("b", "said") == []  # another room of the same child
    assert res.events("c", "said") == [[{"ns": "/dyn-2", "text": "y"}]]  # rooms per child
    (err,) = res.of("connect_error", "d")
    assert err["message"] == "Invalid namespace"
