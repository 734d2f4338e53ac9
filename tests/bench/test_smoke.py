"""Seconds-long smoke run of every benchmark scenario (the full suite is ``python -m bench``).

One sio_wsgi server (gunicorn ``-k gthread``) and the Node load generator with a handful of
clients per scenario: proves the load generator speaks the protocol, the app answers, and the
CPU / memory readings and the Markdown writer work. Figures are not checked. The cross-node
fanout (two sio_wsgi nodes on a Redis channel) and the session relay's scenarios (one ``-w 2``
vs two ``-w 1`` nodes, and the relayed round trip's latency) need Redis on 127.0.0.1:6379 and
are skipped without it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import run

__all__: list[str] = []

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is required"),
]

SMOKE = [
    run.Scenario(
        "storm1000",
        "connect storm",
        {"scenario": "storm", "clients": 20, "hold": 0.2, "concurrency": 10},
        "conn/s",
    ),
    run.Scenario(
        "echo50",
        "echo",
        {"scenario": "echo", "clients": 5, "duration": 0.5, "warmup": 0.2},
        "acks/s",
    ),
    run.Scenario(
        "echo50_4k",
        "echo 4 KB",
        {"scenario": "echo", "clients": 5, "duration": 0.5, "warmup": 0.2, "payload_bytes": 4096},
        "acks/s",
    ),
    run.Scenario(
        "echo50_4k_deflate",
        "echo 4 KB, deflate",
        {
            "scenario": "echo",
            "clients": 5,
            "duration": 0.5,
            "warmup": 0.2,
            "payload_bytes": 4096,
            "deflate": 1,
        },
        "acks/s",
    ),
    run.Scenario(
        "poll50",
        "polling echo",
        {"scenario": "poll", "clients": 3, "duration": 0.5, "warmup": 0.2},
        "acks/s",
    ),
    run.Scenario(
        "binary64k",
        "binary",
        {"scenario": "binary", "clients": 2, "size": 65536, "duration": 0.5, "warmup": 0.2},
        "MB/s",
    ),
    run.Scenario(
        "fanout1000",
        "fanout",
        {"scenario": "fanout", "clients": 20, "rounds": 3, "gap": 0.01},
        "ms",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A sio_wsgi bench app under gunicorn gthread.

    :param tmp_path_factory: pytest's temp dirs (server log).
    :returns: ``(pid, url)``.
    """
    run.check_tools()
    spec = next(s for s in run.SERVERS if s.name == "sio_wsgi-gthread")
    port = run.free_port()
    old = run.GTHREAD_THREADS
    run.GTHREAD_THREADS = 50
    try:
        proc = run.start_server(spec, port, tmp_path_factory.mktemp("bench-logs"))
    finally:
        run.GTHREAD_THREADS = old
    try:
        yield proc.pid, f"http://127.0.0.1:{port}"
    finally:
        run.stop_server(proc)


@pytest.mark.parametrize("sc", SMOKE, ids=[s.name for s in SMOKE])
def test_scenario_runs(server: tuple[int, str], sc: run.Scenario) -> None:
    pid, url = server
    rec = run.run_scenario(sc, pid, url, timeout=60)
    res = run._result(run.SERVERS[4], sc, 0, rec)
    assert res.ok, rec
    assert res.connected == sc.args["clients"]
    assert res.cpu_us is not None and res.cpu_us >= 0
    if sc.args["scenario"] == "fanout":
        assert res.p50_ms is not None and res.p50_ms > 0
    else:
        assert res.rate and res.rate > 0
    if sc.args["scenario"] == "storm":
        assert res.rss_kib_per_conn is not None
    if sc.args.get("payload_bytes"):
        assert rec["bad_acks"] == 0
        assert 3900 <= rec["payload_json_bytes"][0] <= rec["payload_json_bytes"][1] <= 4096
        assert res.wire_bytes is not None
        if sc.args.get("deflate"):  # the bench app's sio_wsgi has per_message_deflate=True
            assert res.deflate is True
            assert rec["extensions"] == (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            )
            assert res.wire_bytes < 2 * 4096 / 3  # both ways compressed
        else:
            assert res.deflate is None
            assert res.wire_bytes > 2 * 4096 * 0.95


def _kind(sc: run.Scenario) -> tuple[Any, ...]:
    return tuple(sc.args.get(k) for k in ("scenario", "payload_bytes", "deflate"))


def test_smoke_covers_every_kind_of_scenario() -> None:
    # every single-node scenario's kind, payload and deflate flag are run above (with fewer
    # clients and seconds); echo500 and fanout5000 only differ from echo50 / fanout1000 in size
    assert {_kind(s) for s in run.SCENARIOS if not s.shared} == {_kind(s) for s in SMOKE}
    assert {"echo50_4k", "echo50_4k_deflate"} <= {s.name for s in SMOKE}


REDIS_SMOKE = run.Scenario(
    "fanout_redis1000",
    "fanout via Redis",
    {"scenario": "fanout", "clients": 20, "rounds": 3, "gap": 0.01},
    "ms",
    nodes=2,
)


@pytest.mark.redis
def test_fanout_redis_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not run.redis_available():
        pytest.skip("needs Redis on 127.0.0.1:6379")
    run.check_tools()
    monkeypatch.setattr(run, "GTHREAD_THREADS", 50)
    spec = next(s for s in run.SERVERS if s.name == "sio_wsgi-gthread")
    res = run.run_multinode(spec, REDIS_SMOKE, 0, tmp_path)
    assert res.ok, res.raw or res.error
    assert res.connected == 20
    assert res.raw["connected_per_url"] == [10, 10]  # half the receivers on the second node
    assert res.raw["redis_channel"].startswith("sio-bench-")
    assert res.p50_ms is not None and res.p50_ms > 0
    assert res.cpu_us is not None and res.cpu_us >= 0


def test_node_server_skips_multinode(tmp_path: Path) -> None:
    node = next(s for s in run.SERVERS if s.impl == "node")
    assert run.run_server(node, [REDIS_SMOKE], 0, tmp_path) == []
    assert [s.name for s in run.SCENARIOS if s.shared] == [
        "fanout_redis1000",
        "relay_poll50",
        "sticky_poll50",
        "relay_echo50",
        "sticky_echo50",
    ]


# the session relay's scenarios, tiny: 4 clients, half a second
RELAY_SMOKE = run.relay_scenarios(0.5, clients=4, warmup=0.2)


def test_relay_scenarios_only_for_sio_wsgi(tmp_path: Path) -> None:
    full = {s.name: s for s in run.SCENARIOS if s.relay_role}
    assert {s.name for s in RELAY_SMOKE} == {
        "relay_poll4",
        "sticky_poll4",
        "relay_echo4",
        "sticky_echo4",
    }
    for sc in full.values():
        assert sc.impls == ("sio_wsgi",)
        assert (sc.nodes, sc.workers) == ((1, 2) if sc.relay_role == "relay" else (2, 1))
        assert sc.args["clients"] == 50
    assert full["relay_poll50"].args["keepalive"] == 0  # every request on a new connection
    assert full["relay_echo50"].args["upgrade"] == 1  # polling, then the WebSocket upgrade
    for spec in run.SERVERS:
        if spec.impl != "sio_wsgi":  # not started at all
            assert run.run_server(spec, list(full.values()), 0, tmp_path) == []


@pytest.mark.redis
@pytest.mark.timeout(60)
def test_relay_scenarios_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not run.redis_available():
        pytest.skip("needs Redis on 127.0.0.1:6379")
    run.check_tools()
    monkeypatch.setattr(run, "GTHREAD_THREADS", 50)
    spec = next(s for s in run.SERVERS if s.name == "sio_wsgi-gevent")
    results = {sc.name: run.run_multinode(spec, sc, 0, tmp_path) for sc in RELAY_SMOKE}
    for name, res in results.items():
        assert res.ok, (name, res.error, res.raw)
        assert res.connected == 4
        assert res.rate and res.rate > 0
        assert res.cpu_us is not None and res.cpu_us > 0
        delta = res.raw["relay_delta"]
        assert delta["workers"] == 2 and delta["failed"] == 0
        assert delta["forwarded"] == delta["served"]
        if name.startswith("sticky_"):
            assert res.raw["connected_per_url"] == [2, 2]
            assert res.relayed == 0
        else:
            assert "connected_per_url" not in res.raw
            assert res.relayed is not None
    poll = results["relay_poll4"].raw
    # the clients sent every request on its own connection: the workers counted them all
    assert poll["relay_delta"]["requests"] == poll["http_requests"]
    assert 0.05 < results["relay_poll4"].relayed < 0.95  # type: ignore[operator]
    echo = results["relay_echo4"].raw["relay_delta"]
    assert echo["requests"] == 8  # a polling handshake and a WebSocket per client
    assert echo["streams"] == echo["forwarded"]  # only WebSockets are relayed
    cells = run.aggregate(list(results.values()))
    md = tmp_path / "b.md"
    run.write_markdown(
        md, cells, RELAY_SMOKE, [spec], {"date": "now", "cpus": 2, "reps": 1, "duration": 0.5}
    )
    text = md.read_text()
    assert "## Session relay: gunicorn `-w 2` without sticky sessions" in text
    assert (
        "| sio_wsgi-gevent | long-polling echo, 4 clients, new connection per request (acks/s) |"
        in text
    )


@pytest.mark.redis
@pytest.mark.timeout(30)
def test_relay_round_trips(tmp_path: Path) -> None:
    if not run.redis_available():
        pytest.skip("needs Redis on 127.0.0.1:6379")
    from bench import relay

    spec = next(s for s in run.SERVERS if s.name == "sio_wsgi-gevent")
    rec = relay.measure(spec, tmp_path, pairs=10, echoes=20)
    assert "error" not in rec, rec
    assert rec["owner"]["n"] == rec["relayed"]["n"] == 10
    assert rec["relayed"]["pair_p50"] > 0 and rec["owner"]["cpu_us"] is not None
    ws = rec["websocket"]
    assert ws["owner"]["n"] == ws["relayed"]["n"] == 20
    assert ws["relayed"]["p50"] > 0 and ws["relayed"]["cpu_us"] is not None
    assert "WebSocket echo" in relay.describe(rec)
    text = run._latency_text([rec, {"error": "boom"}])
    assert text.startswith("p50 ") and "(1 runs, 10 relayed round trips)" in text
    assert "(20 relayed echoes)" in text


def _cell(rate: float, p50: float = 1.0) -> dict[str, Any]:
    return {
        "rate": (rate, rate, rate),
        "p50": (p50, p50, p50),
        "p99": (p50, p50, p50),
        "cpu": (10.0, 9.0, 11.0),
        "rss": (20.0, 20.0, 20.0),
        "n": 3,
        "runs": 3,
        "errors": [],
    }


def test_declined_deflate_is_marked(tmp_path: Path) -> None:
    sc = next(s for s in run.SCENARIOS if s.name == "echo50_4k_deflate")
    rec = {
        "connected": 50,
        "count": 1000,
        "rate": 250.0,
        "server_cpu_s": 0.1,
        "wire_in_bytes": 4_000_000,
        "wire_out_bytes": 4_100_000,
        "deflate_clients": 0,
        "extensions": "",
        "bad_acks": 0,
    }
    declined = run._result(run.SERVERS[1], sc, 0, rec)
    assert declined.ok and declined.deflate is False
    assert declined.wire_bytes == 8100.0
    agreed = run._result(
        run.SERVERS[0], sc, 0, {**rec, "deflate_clients": 50, "extensions": "permessage-deflate"}
    )
    assert agreed.deflate is True
    cells = run.aggregate([declined, agreed])
    b = cells[("socketio-gevent", sc.name)]
    a = cells[("sio_wsgi-gevent", sc.name)]
    assert run._fmt(b, "echo").endswith("8100 B/ack, no deflate (offer declined)")
    assert "no deflate" not in run._fmt(a, "echo")
    assert run.ratio(a, b, "echo") == "-"
    note = run.deflate_note([declined, agreed])
    assert note == (
        "permessage-deflate agreed in this run: sio_wsgi-gevent: `permessage-deflate`; "
        "socketio-gevent: `(none)`"
    )
    assert run.deflate_note([]) is None
    short = run._result(run.SERVERS[0], sc, 0, {**rec, "bad_acks": 3})
    assert not short.ok and "wrong length" in short.error


def test_aggregate_ratio_and_docs(tmp_path: Path) -> None:
    results = [
        run.Result("sio_wsgi-gevent", "echo50", i, True, rate=float(r), cpu_us=10.0)
        for i, r in enumerate((100, 300, 200))
    ]
    results.append(run.Result("socketio-gevent", "echo50", 0, False, error="boom"))
    cells = run.aggregate(results)
    assert cells[("sio_wsgi-gevent", "echo50")]["rate"] == (200.0, 100.0, 300.0)
    assert cells[("socketio-gevent", "echo50")]["n"] == 0
    assert run.ratio(_cell(300), _cell(100), "echo") == "3.0x"
    assert run.ratio(_cell(1, p50=5), _cell(1, p50=10), "fanout") == "2.0x"
    md = tmp_path / "b.md"
    scs = [s for s in run.SCENARIOS if s.name == "echo50"]
    run.write_markdown(
        md, cells, scs, run.SERVERS[:2], {"date": "now", "cpus": 2, "reps": 3, "duration": 1}
    )
    text = md.read_text()
    assert "| echo, 50 WebSocket clients (acks/s) | 200 [100-300] (10 µs)" in text
    assert "failed: boom" in text


def test_hot_spots(tmp_path: Path) -> None:
    from bench.profile import hot_spots

    raw = tmp_path / "p.txt"
    raw.write_text("a (x/m.py:1);b (x/m.py:2) 3\na (x/m.py:1) 1\n")
    total, own, incl = hot_spots(raw)
    assert total == 4
    assert own[0] == ("b (x/m.py:2)", 75.0)
    assert incl[0] == ("a (x/m.py:1)", 100.0)


def test_relay_counters_and_checks() -> None:
    def rec(requests: int, forwarded: int, streams: int = 0) -> dict[str, Any]:
        relay = {"forwarded": forwarded, "served": 0, "streams": streams, "failed": 0}
        return {"requests": requests, "relay": relay}

    before = {1: rec(10, 2), 2: rec(5, 0)}
    after = {1: rec(110, 42), 2: rec(105, 30)}
    delta = run.counters_delta(before, after)
    assert delta == {
        "requests": 200,
        "forwarded": 70,
        "served": 0,
        "streams": 0,
        "failed": 0,
        "workers": 2,
    }
    poll, sticky, echo = (
        next(s for s in RELAY_SMOKE if s.name == n)
        for n in ("relay_poll4", "sticky_poll4", "relay_echo4")
    )
    line = {"connected": 4, "count": 100, "rate": 200.0, "server_cpu_s": 0.1, "redis_cpu_s": 0.01}
    res = run._result(run.SERVERS[0], poll, 0, {**line, "relay_delta": delta})
    assert res.ok and res.relayed == 0.35 and res.redis_cpu_us == 100.0
    res = run._result(run.SERVERS[0], sticky, 0, {**line, "relay_delta": delta})
    assert not res.ok and "relayed with sticky routing" in res.error
    nothing = {**delta, "forwarded": 0}
    res = run._result(run.SERVERS[0], poll, 0, {**line, "relay_delta": nothing})
    assert not res.ok and res.error == "nothing was relayed"
    res = run._result(run.SERVERS[0], echo, 0, {**line, "relay_delta": nothing})
    assert res.ok and res.relayed == 0.0  # WebSockets: whatever share the kernel gave
    res = run._result(run.SERVERS[0], echo, 0, {**line, "relay_delta": {**nothing, "streams": 1}})
    assert res.relayed == 0.25
    res = run._result(run.SERVERS[0], poll, 0, line)
    assert not res.ok and res.error == "no relay counters"
    failed = {**delta, "failed": 3}
    res = run._result(run.SERVERS[0], poll, 0, {**line, "relay_delta": failed})
    assert not res.ok and res.error == "3 relayed requests failed"


def test_relay_ratio_within_repetitions() -> None:
    relayed = [
        run.Result("s", "relay_poll50", i, True, rate=r, cpu_us=c, relayed=0.5)
        for i, (r, c) in enumerate(((500.0, 20.0), (900.0, 12.0), (600.0, 16.0)))
    ]
    sticky = [
        run.Result("s", "sticky_poll50", i, True, rate=r, cpu_us=c, relayed=0.0)
        for i, (r, c) in enumerate(((1000.0, 10.0), (1000.0, 10.0), (2000.0, 8.0)))
    ]
    cells = run.aggregate(relayed + sticky)
    a, b = cells[("s", "relay_poll50")], cells[("s", "sticky_poll50")]
    # per repetition 0.5, 0.9, 0.3 (not 600 / 1000 from the medians) and 2.0, 1.2, 2.0
    assert run._relay_ratio(a, b) == "0.50x rate [0.30-0.90], 2.00x CPU/ack [1.20-2.00]"
    assert run._pct(a) == "50% [50-50]" and run._pct(b) == "0% [0-0]"


def test_metrics_servers_get_their_cost_section(tmp_path: Path) -> None:
    results = [
        run.Result("sio_wsgi-gevent", "echo50", 0, True, rate=1000.0, cpu_us=50.0),
        run.Result("sio_wsgi+metrics-gevent", "echo50", 0, True, rate=1000.0, cpu_us=51.0),
    ]
    servers = [run.SERVERS[0], run.METRICS_SERVERS[0]]
    assert servers[1].metrics and servers[1].family == "gevent"
    md = tmp_path / "b.md"
    scs = [s for s in run.SCENARIOS if s.name == "echo50"]
    run.write_markdown(
        md,
        run.aggregate(results),
        scs,
        servers,
        {"date": "now", "cpus": 2, "reps": 1, "duration": 1},
    )
    text = md.read_text()
    assert "## Metrics: what they cost" in text
    assert "| sio_wsgi-gevent | 1.0k [1.0k-1.0k] (50 µs)" in text and "1.02x CPU/message" in text
