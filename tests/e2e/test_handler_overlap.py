"""A slow handler does not hold up the same client's other events (issue: a "cancel"
sent while a long "start job" handler runs), in every async mode and transport, with
the official JS client; ``serial_handlers=True`` keeps the strict order."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.e2e_support import check, scenario

BLOCK_SECONDS = 3


def steps(echo_timeout_ms: int) -> list[dict[str, Any]]:
    return [
        {"op": "connect"},
        # the handler sleeps (time.sleep: blocking in threading mode, patched in green ones)
        {"op": "emit", "event": "block", "args": [BLOCK_SECONDS]},
        {"op": "sleep", "ms": 500},
        {
            "op": "emit",
            "event": "echo",
            "args": ["while blocked"],
            "ack": True,
            "timeout_ms": echo_timeout_ms,
        },
    ]


def test_an_event_is_answered_while_a_previous_handler_blocks(
    server: Any, transport: str, node_client: Any
) -> None:
    # under 1.5 s although the blocking handler runs 3 s (python-socketio and Node answer
    # at once too)
    res = node_client(scenario(server, transport, steps(echo_timeout_ms=1500)))
    check(res, server)
    assert res.ack("echo") == ["while blocked"]


@pytest.fixture
def serial_server(live_server: Any, async_mode: str, impl: str) -> Any:
    if impl != "sio_wsgi":
        pytest.skip("serial_handlers is sio_wsgi's option")
    return live_server(async_mode, serial_handlers=True)


def test_serial_handlers_keep_the_strict_order(
    serial_server: Any, transport: str, node_client: Any
) -> None:
    res = node_client(scenario(serial_server, transport, steps(echo_timeout_ms=1500)))
    assert not res.ok, res.dump()
    assert "no ack for echo within 1500 ms" in res.dump()
    # and it does come, once the blocking handler returned
    later = node_client(scenario(serial_server, transport, steps(echo_timeout_ms=6000)))
    check(later, serial_server)
    assert later.ack("echo") == ["while blocked"]
