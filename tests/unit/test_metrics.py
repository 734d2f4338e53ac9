"""sio_wsgi.stats (the counters) and sio_wsgi.metrics (collection, JSON, Prometheus, the
WSGI endpoint), in-process with the test client."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import sio_wsgi
from sio_wsgi import metrics as metrics_mod
from sio_wsgi.config import METRICS_MAX_LABEL_VALUES, METRICS_OTHER_LABEL
from sio_wsgi.metrics import MetricsApp, collect, to_json
from sio_wsgi.protocol.sio import Packet, PacketType
from sio_wsgi.stats import Histogram, Stats
from sio_wsgi.testing import SocketIOTestClient

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------ the counters


def test_histogram_counts_in_buckets_and_is_cumulative() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        h.observe(value)
    assert h.counts == [2, 1, 1]  # an observation equal to a bound is in its bucket
    assert h.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert h.count == 4
    assert h.sum == pytest.approx(2.65)


def test_namespaces_past_the_cap_count_as_other() -> None:
    stats = Stats()
    for i in range(METRICS_MAX_LABEL_VALUES + 5):
        stats.event_in(f"/ns{i}")
    assert len(stats.events_in) == METRICS_MAX_LABEL_VALUES + 1
    assert stats.events_in[METRICS_OTHER_LABEL].n == 5


def test_handler_timing_counts_errors_and_reraises() -> None:
    stats = Stats()

    def boom(sid: str) -> None:
        raise ValueError(sid)

    assert stats.run_handler("/", lambda sid, x: x + 1, "s", 1) == 2
    with pytest.raises(ValueError):
        stats.run_handler("/", boom, "s")
    assert stats.handler_seconds["/"].count == 2
    assert stats.handler_errors["/"].n == 1


def test_timed_ack_records_the_round_trip_then_calls_back() -> None:
    stats = Stats()
    got: list[Any] = []
    acked = stats.timed_ack(lambda *args: got.append(args))
    acked(1, 2)
    assert got == [(1, 2)]
    assert stats.ack_seconds.count == 1


# ------------------------------------------------------------------ a server with clients


@pytest.fixture
def sio() -> Iterator[sio_wsgi.Server]:
    server = sio_wsgi.Server(async_mode="threading", metrics=True, namespaces="*")

    @server.on("echo")
    def echo(sid: str, data: Any = None) -> Any:
        return data

    @server.on("fail")
    def fail(sid: str) -> None:
        raise RuntimeError("handler failure (expected by the test)")

    @server.on("echo", namespace="/chat")
    def echo_chat(sid: str, data: Any = None) -> Any:
        server.emit("said", data, namespace="/chat")
        return data

    yield server
    server.shutdown()


def _families(server: sio_wsgi.Server) -> dict[str, Any]:
    return to_json(collect(server))["metrics"]


def _value(families: dict[str, Any], name: str, **labels: str) -> Any:
    for sample in families[name]["samples"]:
        if sample["labels"] == labels:
            return sample.get("value", sample)
    return None


def test_counts_clients_events_bytes_handlers_and_disconnects(sio: sio_wsgi.Server) -> None:
    app = sio_wsgi.WSGIApp(sio)
    a = SocketIOTestClient(app, namespace="/")
    b = SocketIOTestClient(app, namespace="/chat")
    assert a.emit("echo", "hello", callback=True) == "hello"
    assert b.emit("echo", "hi", namespace="/chat", callback=True) == "hi"
    b.wait_for("said", namespace="/chat")
    families = _families(sio)
    assert _value(families, "sio_connected_clients", namespace="/", transport="polling") == 1
    assert _value(families, "sio_connected_clients", namespace="/chat", transport="polling") == 1
    assert _value(families, "sio_engine_sessions", transport="polling") == 2
    assert _value(families, "sio_engine_sessions_opened_total", transport="polling") == 2
    assert _value(families, "sio_events_received_total", namespace="/") == 1
    assert _value(families, "sio_events_received_total", namespace="/chat") == 1
    assert _value(families, "sio_events_sent_total", namespace="/chat") == 1
    assert _value(families, "sio_engine_messages_received_total") >= 4  # 2 CONNECT, 2 EVENT
    assert _value(families, "sio_engine_received_bytes_total") > 10
    assert _value(families, "sio_engine_packets_sent_total") >= 5  # 2 CONNECT, 2 ACK, 1 said
    assert _value(families, "sio_engine_sent_bytes_total") > 10
    durations = _value(families, "sio_handler_duration_seconds", namespace="/")
    assert durations["count"] == 1 and durations["buckets"]["+Inf"] == 1
    assert _value(families, "sio_queued_bytes_max") >= 0

    # no ack id: the test client would wait for an ack a failing handler never sends
    a._send(Packet(PacketType.EVENT, "/", ["fail"]))
    a.disconnect()
    b.disconnect(namespace="/chat")

    def settled() -> dict[str, Any]:
        families = _families(sio)
        assert _value(families, "sio_handler_errors_total", namespace="/") == 1
        assert _value(families, "sio_disconnects_total", namespace="/", reason="client disconnect")
        return families

    families = _wait(settled)
    assert _value(families, "sio_connected_clients", namespace="/", transport="polling") is None


def _wait(check: Any, timeout: float = 5.0) -> Any:
    """Retry ``check`` (it asserts) until it passes; the handlers run on other threads."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_metrics_off_costs_nothing_and_collect_turns_them_on() -> None:
    server = sio_wsgi.Server(async_mode="threading")
    try:
        assert server.metrics is None
        assert server.eio.metrics is None  # type: ignore[attr-defined]
        stats = server.enable_metrics()
        assert server.enable_metrics() is stats
        assert server.manager.metrics is stats
        assert "sio_events_received_total" in _families(server)
        assert "sio_broker_connected" not in _families(server)  # no bus: no broker metrics
    finally:
        server.shutdown()


def test_per_process_adds_a_pid_label(sio: sio_wsgi.Server) -> None:
    import os

    families = to_json(collect(sio, per_process=True))["metrics"]
    assert families["sio_queued_bytes_max"]["samples"][0]["labels"] == {"pid": str(os.getpid())}


# ------------------------------------------------------------------ the endpoint


def _get(
    app: Any, path: str = "/metrics", query: str = "", remote: str = "127.0.0.1", **environ: Any
) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": remote,
        "wsgi.input": io.BytesIO(),
        **environ,
    }
    body = b"".join(app(env, start_response))
    return answer["status"], answer["headers"], body


def test_wsgiapp_serves_prometheus_text_and_json(sio: sio_wsgi.Server) -> None:
    app = sio_wsgi.WSGIApp(sio, metrics_path="/metrics")
    client = SocketIOTestClient(app)
    client.emit("echo", 1, callback=True)
    status, headers, body = _get(app)
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/plain; version=")
    parsed = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert parsed["sio_events_received"].type == "counter"
    assert parsed["sio_handler_duration_seconds"].type == "histogram"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parsed.values()
        for s in f.samples
    }
    assert samples[("sio_events_received_total", (("namespace", "/"),))] == 1
    assert samples[("sio_connected_clients", (("namespace", "/"), ("transport", "polling")))] == 1
    for query, extra in (("format=json", {}), ("", {"HTTP_ACCEPT": "application/json"})):
        status, headers, body = _get(app, query=query, **extra)
        assert status == "200 OK" and headers["Content-Type"] == "application/json"
        data = json.loads(body)
        assert data["metrics"]["sio_events_received_total"]["type"] == "counter"
    client.disconnect()


def test_endpoint_refuses_remote_bad_format_and_methods(sio: sio_wsgi.Server) -> None:
    app = MetricsApp(sio)
    status, _, body = _get(app, remote="10.1.2.3")
    assert status == "403 Forbidden" and json.loads(body)["code"] == 403
    status, _, body = _get(app, query="format=xml")
    assert status == "400 Bad Request" and "format" in json.loads(body)["message"]
    status, _, _ = _get(app, REQUEST_METHOD="POST")
    assert status == "405 Method Not Allowed"
    status, _, body = _get(app, REQUEST_METHOD="HEAD")
    assert status == "200 OK" and body == b""


def test_endpoint_auth_callable_decides(sio: sio_wsgi.Server) -> None:
    def token(environ: dict[str, Any]) -> bool:
        return environ.get("HTTP_AUTHORIZATION") == "Bearer s3cret"

    def broken(environ: dict[str, Any]) -> bool:
        raise KeyError("auth bug")

    app = sio_wsgi.WSGIApp(sio, metrics_path="/m", metrics_auth=token)
    assert _get(app, "/m", remote="10.0.0.1")[0] == "403 Forbidden"
    assert _get(app, "/m", remote="10.0.0.1", HTTP_AUTHORIZATION="Bearer s3cret")[0] == "200 OK"
    assert _get(MetricsApp(sio, auth=broken))[0] == "403 Forbidden"
    # without metrics_path nothing is served there
    assert _get(sio_wsgi.WSGIApp(sio), "/metrics")[0].startswith("404")


def test_metrics_need_a_socketio_server() -> None:
    with pytest.raises(TypeError, match=r"sio_wsgi\.Server"):
        sio_wsgi.WSGIApp(object(), metrics_path="/metrics")  # type: ignore[arg-type]


def test_without_prometheus_client_json_is_served(
    sio: sio_wsgi.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_mod, "_prom", None)
    app = MetricsApp(sio)
    status, headers, _ = _get(app)
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    status, _, body = _get(app, query="format=prometheus")
    assert status == "501 Not Implemented" and "prometheus-client" in json.loads(body)["message"]
