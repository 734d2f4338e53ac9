"""Sticky sessions by cookie: HAProxy (``cookie io prefix``) in front of three nodes.

The nodes run :mod:`cookie_node_app` (``Server(cookie="io")``: the polling
handshake sets ``io=<sid>; Path=/; HttpOnly; SameSite=Lax``) on one Redis bus.
HAProxy balances the handshakes ``roundrobin`` and, with ``cookie io prefix``,
rewrites that cookie to ``io=<server>~<sid>`` on the way out and strips the
prefix on the way in, so every later request of the session (polls, posts,
the WebSocket upgrade) goes back to the node that owns it. The clients share
one address and send nothing else that could identify them: only the cookie
keeps them sticky.

- official JS clients (``withCredentials: true`` turns on their cookie jar in
  node), polling-only and polling-then-WebSocket, chat across nodes;
- python-socketio clients (their ``requests.Session`` keeps cookies) do the same;
- the controls: the same balancer without the cookie rule breaks every polling
  client with ``400 Session ID unknown``, and so does the cookie rule with
  clients that do not keep cookies; so the checks above can tell.

HAProxy's request log (server, status, cookie flags, URI) shows where every
request of every session went.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.multinode.cookie_support import (
    CookieNode,
    HAProxy,
    LogLine,
    cookie_cluster,
    haproxy_binary,
)
from tests.multinode.mn_support import HERE, Cluster, PyClient, broker_url
from tests.support import ROOT, skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(90)]

WORKERS = ["gevent", "threading", "eventlet"]
UNKNOWN_SID = "unknown session id"
ROUNDS = 5
CLIENTS = [{"name": f"poll{i}", "transports": ["polling"]} for i in range(3)] + [
    {"name": f"up{i}", "transports": ["polling", "websocket"]} for i in range(4)
]

BalancerFactory = Callable[[bool], HAProxy]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three cookie-setting nodes (gevent, gthread, eventlet) on Redis, for the module."""
    if haproxy_binary() is None:
        skip_or_fail("haproxy is not installed (apt-get install -y haproxy)")
    url = broker_url("redis")
    nodes = cookie_cluster(url, tmp_path_factory.mktemp("cookie-nodes"), WORKERS)
    try:
        yield nodes.start()
    finally:
        nodes.stop()


@pytest.fixture
def balancer(cluster: Cluster, tmp_path: Path) -> Iterator[BalancerFactory]:
    """Factory ``balancer(sticky)``: a started HAProxy before the nodes; killed at teardown."""
    started: list[HAProxy] = []

    def factory(sticky: bool) -> HAProxy:
        workdir = tmp_path / f"haproxy-{len(started)}"
        workdir.mkdir()
        proxy = HAProxy([(n.name, n.port) for n in cluster.nodes], workdir, sticky=sticky)
        started.append(proxy)
        proxy.start()
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()


@pytest.fixture
def node_logs(cluster: Cluster) -> Callable[[], str]:
    """:returns: a function giving what the nodes logged since the test started."""
    nodes = [n for n in cluster.nodes if isinstance(n, CookieNode)]
    offsets = [n.log_size() for n in nodes]
    return lambda: "\n".join(n.log_since(o) for n, o in zip(nodes, offsets, strict=True))


def _node_bin() -> str:
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/js/node_modules/socket.io-client").is_dir():
        skip_or_fail("node or tests/js/node_modules/socket.io-client is missing")
    assert node is not None
    return node


def _run_js(
    url: str, serial: bool, timeout_ms: int = 20000, credentials: bool = True
) -> dict[str, Any]:
    scenario = {
        "url": url,
        "room": "lobby",
        "clients": CLIENTS,
        "serial": serial,
        "rounds": ROUNDS,
        "timeout_ms": timeout_ms,
        "credentials": credentials,
    }
    done = subprocess.run(
        [_node_bin(), str(HERE / "js" / "cookie_chat.js"), json.dumps(scenario)],
        capture_output=True,
        text=True,
        timeout=timeout_ms / 1000 + 15,
        check=False,
    )
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["stderr"] = done.stderr[-2000:]
    return report


def _by_sid(lines: list[LogLine]) -> dict[str, list[LogLine]]:
    sessions: dict[str, list[LogLine]] = defaultdict(list)
    for line in lines:
        if line.sid is not None:
            sessions[line.sid].append(line)
    return sessions


def _assert_sticky(lines: list[LogLine], sessions: int, detail: str) -> None:
    """Every request of every session carried a valid cookie and reached one node.

    :param lines: HAProxy's request log.
    :param sessions: how many sessions there must be.
    :param detail: for failure messages.
    """
    assert lines, detail
    # a session may end with a request or two answered 400: python-engineio's client can
    # poll once more right after it POSTed its close packet, and the protocol answers a
    # request for a closed session with 400 (the official suite checks exactly that).
    # Nothing may succeed after such a 400, and nothing else may fail.
    closing_400: set[int] = set()
    for requests in _by_sid(lines).values():
        tail = 0
        while tail < len(requests) and requests[-1 - tail].status == 400:
            tail += 1
        if tail <= 2:
            closing_400.update(id(r) for r in requests[len(requests) - tail :])
    assert all(line.status in (200, 101) or id(line) in closing_400 for line in lines), detail
    handshakes = [line for line in lines if line.sid is None]
    assert len(handshakes) == sessions, detail
    # the node set io=<sid>; HAProxy rewrote it to io=<server>~<sid> (4th flag R)
    assert all(line.flags[3] == "R" for line in handshakes), detail
    by_sid = _by_sid(lines)
    assert len(by_sid) == sessions, detail
    for sid, requests in by_sid.items():
        assert {r.server for r in requests} == {requests[0].server}, f"{sid} moved\n{detail}"
        assert all(r.request_cookie == "V" for r in requests), f"{sid} without cookie\n{detail}"


@pytest.mark.browser
def test_js_clients_stick_by_io_cookie_behind_haproxy(
    balancer: BalancerFactory, node_logs: Callable[[], str], cluster: Cluster
) -> None:
    _node_bin()
    proxy = balancer(True)
    report = _run_js(proxy.url, serial=False)
    lines = proxy.requests()
    detail = f"{json.dumps(report, indent=1)}\n{proxy.log_text()[-4000:]}\n{cluster.dump()}"
    assert report["ok"], detail
    clients = {c["name"]: c for c in report["clients"]}
    for spec in CLIENTS:
        c = clients[spec["name"]]
        assert c["cookie"].startswith(f"{c['node']}~"), detail  # HAProxy's prefix: the node
        if spec["transports"] == ["polling"]:
            assert c["transport"] == "polling" and not c["upgraded"], detail
            assert c["nodes_asked"] == [c["node"]] * ROUNDS, detail
        else:
            assert c["upgraded"] and c["transport"] == "websocket", detail
    assert len({c["node"] for c in clients.values()}) >= 2, detail  # the room spans nodes
    _assert_sticky(lines, len(CLIENTS), detail)
    upgrades = [line for line in lines if line.status == 101]
    assert len(upgrades) == 4 and all(u.transport == "websocket" for u in upgrades), detail
    polls = [line for line in lines if line.sid is not None and line.transport == "polling"]
    assert len(polls) >= 3 * 2 * ROUNDS, detail  # the polling-only clients lived on the cookie
    assert UNKNOWN_SID not in node_logs(), node_logs()


def test_python_clients_stick_by_io_cookie_behind_haproxy(
    balancer: BalancerFactory, node_logs: Callable[[], str], cluster: Cluster
) -> None:
    proxy = balancer(True)
    clients: list[PyClient] = []
    try:
        for transports in (["polling"], ["polling", "websocket"], ["polling"]):
            clients.append(PyClient(proxy.url, transports=transports))
        detail = f"{[(c.node, c.sid) for c in clients]}\n{cluster.dump()}"
        assert len({c.node for c in clients}) >= 2, detail
        for client in clients:
            jar = client.sio.eio.http.cookies  # the requests.Session the client polls with
            assert jar.get("io", "").startswith(f"{client.node}~"), f"{dict(jar)}\n{detail}"
            assert client.call("join", "py") == client.node
        for _ in range(ROUNDS):
            assert [c.call("node") for c in clients] == [c.node for c in clients], detail
        assert clients[0].call("say", "py", "hello from python") == "sent"
        for client in clients:
            said = client.wait("said", 5.0)
            assert said[0]["text"] == "hello from python", detail
        assert clients[1].sio.transport() == "websocket", detail
    finally:
        for client in clients:
            client.close()
    lines = proxy.requests()
    _assert_sticky(lines, 3, f"{proxy.log_text()[-4000:]}\n{cluster.dump()}")
    assert UNKNOWN_SID not in node_logs(), node_logs()


@pytest.mark.browser
def test_control_without_the_cookie_rule_polling_clients_fail(
    balancer: BalancerFactory, node_logs: Callable[[], str], cluster: Cluster
) -> None:
    _node_bin()
    proxy = balancer(False)  # plain roundrobin: the io cookie is set but nobody reads it
    report = _run_js(proxy.url, serial=True, timeout_ms=15000)
    lines = proxy.requests()
    detail = f"{json.dumps(report, indent=1)}\n{proxy.log_text()[-4000:]}"
    assert not report["ok"], detail
    # one client at a time: its handshake goes to one node, its next requests to the others
    assert all(c["failed"] and c["node"] is None for c in report["clients"]), detail
    by_sid = _by_sid(lines)
    assert len(by_sid) == len(CLIENTS), detail
    for requests in by_sid.values():
        assert any(r.status == 400 for r in requests), detail
        assert all(r.request_cookie == "-" for r in requests), detail  # no persistence at all
    assert UNKNOWN_SID in node_logs(), detail


@pytest.mark.browser
def test_control_clients_without_a_cookie_jar_fail_behind_the_cookie_rule(
    balancer: BalancerFactory, node_logs: Callable[[], str]
) -> None:
    _node_bin()
    proxy = balancer(True)
    report = _run_js(proxy.url, serial=True, timeout_ms=15000, credentials=False)
    lines = proxy.requests()
    detail = f"{json.dumps(report, indent=1)}\n{proxy.log_text()[-4000:]}"
    assert not report["ok"], detail
    assert all(c["failed"] and c["node"] is None for c in report["clients"]), detail
    by_sid = _by_sid(lines)
    assert len(by_sid) == len(CLIENTS), detail
    for requests in by_sid.values():
        assert any(r.status == 400 for r in requests), detail
        assert all(r.request_cookie == "N" for r in requests), detail  # no cookie came back
    assert UNKNOWN_SID in node_logs(), detail
