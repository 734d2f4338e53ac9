"""Metrics scraped over HTTP from a real gunicorn server while real clients use it:
python-socketio ``Client`` (WebSocket and long-polling) and the official JS client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.examples.examples_support import gunicorn_argv
from tests.support import ServerProcess, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(params=("gthread", "gevent", "eventlet"))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    argv = gunicorn_argv(request.param, "tests.metrics.metrics_app:app")
    with ServerProcess(argv, tmp_path / "server.log", name=f"gunicorn-{request.param}") as srv:
        yield srv


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(srv: ServerProcess) -> Samples:
    """Every sample of ``GET /metrics`` (Prometheus text), by name and sorted labels."""
    answer = requests.get(srv.url + "/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def scrape_until(srv: ServerProcess, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``check`` holds (at most 10 s); the last samples."""
    last: list[Samples] = []

    def scraped() -> bool:
        last[:] = [scrape(srv)]
        return check(last[0])

    wait_until(scraped, timeout=10, what=what)
    return last[0]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def peer() -> socketio.Client:
    peer = socketio.Client(reconnection=False, request_timeout=5)
    peer.on("question", lambda data: "yes")
    return peer


def test_python_clients_show_in_the_metrics(server: ServerProcess) -> None:
    ws, lp = peer(), peer()
    ws.connect(server.url, transports=["websocket"], wait_timeout=5)
    lp.connect(server.url, transports=["polling"], wait_timeout=5)
    try:
        assert ws.call("echo", "x" * 100, timeout=5) == "x" * 100
        assert lp.call("ask", timeout=5) == "yes"  # the server's call() to lp: an ack
        s = scrape_until(
            server,
            lambda s: value(s, "sio_handler_duration_seconds_count", namespace="/") >= 2,
            "both handlers timed",
        )
        assert value(s, "sio_connected_clients", namespace="/", transport="websocket") == 1
        assert value(s, "sio_connected_clients", namespace="/", transport="polling") == 1
        assert value(s, "sio_engine_sessions_opened_total", transport="websocket") == 1
        assert value(s, "sio_engine_sessions_opened_total", transport="polling") == 1
        assert value(s, "sio_events_received_total", namespace="/") == 2
        assert value(s, "sio_events_sent_total", namespace="/") == 1  # the question
        assert value(s, "sio_engine_received_bytes_total") > 100
        assert value(s, "sio_engine_sent_bytes_total") > 100
        assert value(s, "sio_ack_roundtrip_seconds_count") == 1
        assert value(s, "sio_ack_roundtrip_seconds_bucket", le="+Inf") == 1
        assert value(s, "sio_queued_bytes_max") >= 0
        ws.emit("boom")
        wait_until(
            lambda: value(scrape(server), "sio_handler_errors_total", namespace="/") == 1,
            timeout=10,
            what="the failing handler counted",
        )
    finally:
        ws.disconnect()
        lp.disconnect()

    def disconnects(s: Samples) -> dict[str, float]:
        return {
            dict(labels)["reason"]: n
            for (name, labels), n in s.items()
            if name == "sio_disconnects_total" and dict(labels)["namespace"] == "/"
        }

    s = scrape_until(server, lambda s: sum(disconnects(s).values()) == 2, "two disconnects")
    # the python client may close its WebSocket before the server reads its DISCONNECT
    assert set(disconnects(s)) <= {"client disconnect", "transport close"}
    assert value(s, "sio_connected_clients", namespace="/", transport="websocket") == 0
    answer = requests.get(server.url + "/metrics?format=json", timeout=5)
    data = answer.json()
    assert answer.headers["Content-Type"] == "application/json"
    closed = data["metrics"]["sio_engine_sessions_closed_total"]["samples"]
    assert sum(sample["value"] for sample in closed) == 2


def test_js_client_shows_in_the_metrics(server: ServerProcess, node_client: Any) -> None:
    scenario = {
        "url": server.url,
        "timeout_ms": 8000,
        "overall_timeout_ms": 30000,
        "options": {"transports": ["polling", "websocket"]},
        "clients": {"a": {"answers": {"question": "from js"}}},
        "steps": [
            {"op": "connect"},
            {"op": "wait_upgrade"},
            {"op": "emit", "event": "echo", "args": ["hello"], "ack": True},
            {"op": "emit", "event": "ask", "ack": True},
            {"op": "mark", "name": "ready"},
            {"op": "wait", "event": "release"},
            {"op": "disconnect"},
        ],
    }
    run = node_client.spawn(scenario)
    run.wait_for(20, type="mark", name="ready")
    s = scrape(server)
    assert value(s, "sio_connected_clients", namespace="/", transport="websocket") == 1
    assert value(s, "sio_engine_sessions_opened_total", transport="polling") == 1
    assert value(s, "sio_ack_roundtrip_seconds_count") == 1
    assert value(s, "sio_events_received_total", namespace="/") == 2
    requests.get(server.url + "/release", timeout=5)
    result = run.finish(20)
    assert result.ok, json.dumps(result.lines)
    wait_until(
        lambda: (
            value(
                scrape(server), "sio_disconnects_total", namespace="/", reason="client disconnect"
            )
            == 1
        ),
        timeout=10,
        what="the JS client's disconnect counted",
    )


def test_metrics_refuse_a_bad_format(server: ServerProcess) -> None:
    answer = requests.get(server.url + "/metrics?format=yaml", timeout=5)
    assert answer.status_code == 400
    assert answer.json()["code"] == 400
