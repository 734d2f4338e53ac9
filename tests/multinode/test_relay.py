"""Several gunicorn workers without sticky routing: the session relay, end to end.

One gunicorn per test with ``-w 4`` (the kernel spreads connections over the
workers) running :mod:`node_app` on a real Redis or RabbitMQ. Clients open a new
TCP connection per HTTP request (raw polling here, ``agent: false`` for the JS
client) so that most requests of a session reach a worker that does not own
it and are relayed. Checked: polling-only, polling-then-upgrade and
WebSocket-only clients (the official JS client and python-socketio's) connect,
get acks, binary included, and hear room broadcasts from clients on other
workers, with no 400; and the faults: the owner killed, the broker restarted,
a worker recycled by ``--max-requests``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
import websocket

from sio_wsgi.engine import relay as relay_module
from tests.multinode.mn_support import (
    HERE,
    Node,
    RabbitServer,
    RedisServer,
    broker_url,
    running,
)
from tests.support import HOST, ROOT, skip_or_fail, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(180)]

WORKER_COUNT = 4
#: threads of a gthread worker
THREADS = 64
POLLING = "/socket.io/?EIO=4&transport=polling"


class Workers(Node):
    """One gunicorn with several workers (``-w``) and extra gunicorn options."""

    def __init__(
        self,
        worker: str,
        bus_url: str,
        log_dir: Path,
        *,
        broker: str = "redis",
        count: int = WORKER_COUNT,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        channel = f"relay-{os.getpid()}-{time.monotonic_ns()}"
        self.processes = count  # Node's -w
        super().__init__("relay", broker, bus_url, channel, worker, log_dir)
        self.env.update(env or {})
        at = self.argv.index("-w")
        self.argv[at + 2 : at + 2] = list(extra)
        if "--threads" in self.argv:
            # gthread: a long-poll or a WebSocket holds one of a worker's threads (relayed
            # or not), and the kernel may hand most connections to one worker
            self.argv[self.argv.index("--threads") + 1] = str(THREADS)

    def worker_pids(self) -> set[int]:
        """The worker processes now (children of the gunicorn master)."""
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return {int(p) for p in out.split()}

    def wait_workers(self, timeout: float = 20.0) -> None:
        """Wait until every worker answers (each has booted and joined the bus)."""
        wait_until(lambda: len(self.worker_pids()) == self.processes, timeout, "workers up")
        seen: set[int] = set()

        def all_seen() -> bool:
            health = self.health()
            if health is not None and health.get("connected"):
                seen.add(int(health["pid"]))
            return seen >= self.worker_pids()

        wait_until(all_seen, timeout, "every worker healthy", interval=0.02)

    def relay_totals(self, timeout: float = 10.0) -> dict[str, int]:
        """The relay counters summed over the workers (each one's /health, in turn)."""
        latest: dict[int, dict[str, int]] = {}

        def all_seen() -> bool:
            health = self.health()
            if health is not None and health.get("relay") is not None:
                latest[int(health["pid"])] = health["relay"]
            return set(latest) >= self.worker_pids()

        wait_until(all_seen, timeout, "every worker's counters", interval=0.01)
        totals: dict[str, int] = {}
        for stats in latest.values():
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value
        return totals


@pytest.fixture
def workers_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Workers] = []

    def make(worker: str, bus_url: str | None = None, **kwargs: Any) -> Workers:
        broker = kwargs.get("broker", "redis")
        node = Workers(worker, bus_url or broker_url(broker), tmp_path, **kwargs)
        started.append(node)
        node.start()
        node.wait_workers()
        return node

    yield make
    for node in started:
        node.stop()


# ---------------------------------------------------------------- raw polling


def request(
    port: int, method: str, query: str = "", body: bytes | None = None
) -> tuple[int, bytes]:
    """One HTTP request on a new connection (so on any worker)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        headers = {"Connection": "close", "Content-Type": "text/plain;charset=UTF-8"}
        conn.request(method, POLLING + query, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def polling_session(port: int) -> str:
    """Open a session and its default namespace; the sid."""
    status, body = request(port, "GET")
    assert status == 200, body
    sid = str(json.loads(body[1:])["sid"])
    assert request(port, "POST", f"&sid={sid}", b"40") == (200, b"ok")
    status, body = request(port, "GET", f"&sid={sid}")
    assert status == 200 and body.startswith(b"40{"), body
    return sid


def polling_call(port: int, sid: str, ack_id: int, event: str, *args: Any) -> Any:
    """Emit with an ack over polling (fresh connections); the ack's first argument."""
    packet = f"42{ack_id}" + json.dumps([event, *args])
    status, body = request(port, "POST", f"&sid={sid}", packet.encode())
    assert (status, body) == (200, b"ok"), (status, body)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = request(port, "GET", f"&sid={sid}")
        assert status == 200, (status, body)
        for text in body.decode().split("\x1e"):
            if text.startswith(f"43{ack_id}["):
                return json.loads(text[len(f"43{ack_id}") :])[0]
            if text == "2":  # a ping: answer it
                assert request(port, "POST", f"&sid={sid}", b"3") == (200, b"ok")
    raise AssertionError(f"no ack {ack_id} for {event}")


def owners(sids: list[str]) -> set[str]:
    return {sid[:16] for sid in sids}


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("worker", ["gevent", "threading", "eventlet"])
def test_polling_on_new_connections_reaches_every_worker(workers_factory: Any, worker: str) -> None:
    node = workers_factory(worker)
    sids = [polling_session(node.port) for _ in range(8)]
    for _ in range(50):  # the kernel may give one worker many connections in a row
        if len(owners(sids)) >= 2:
            break
        sids.append(polling_session(node.port))
    assert len(owners(sids)) >= 2, sids  # sessions of several workers
    for n, sid in enumerate(sids):
        pids = {polling_call(node.port, sid, i, "pid") for i in range(4)}
        assert len(pids) == 1, pids  # always served by its owner
        assert polling_call(node.port, sid, 9, "echo", {"n": n, "t": "é"}) == {"n": n, "t": "é"}
    log = node.log_tail(20000)
    assert "unknown session id" not in log, log
    assert "Traceback" not in log, log
    totals = node.relay_totals()
    assert totals["forwarded"] == totals["served"] > 0, totals
    assert totals["failed"] == 0, totals
    # every request and answer went over the workers' direct links, none through Redis
    assert totals["direct_sent"] >= 2 * totals["forwarded"], totals


@pytest.mark.parametrize("broker", ["redis", "kombu"])
def test_relaying_through_the_broker_only(workers_factory: Any, broker: str) -> None:
    """``relay_address=None``: no direct links; every relay message is a broker message."""
    node = workers_factory("gevent", broker=broker, env={"MN_RELAY_ADDRESS": "none"})
    sids = [polling_session(node.port) for _ in range(6)]
    for n, sid in enumerate(sids):
        assert polling_call(node.port, sid, 1, "echo", n) == n
    report = run_js(node.url, 6, ["polling", "websocket"])
    assert report["ok"], json.dumps(report)[:4000]
    totals = node.relay_totals()
    assert totals["forwarded"] == totals["served"] > 0, totals
    assert totals["failed"] == 0 and totals["direct_sent"] == 0, totals


def _py_client(url: str, transports: list[str]) -> tuple[socketio.Client, list[Any]]:
    heard: list[Any] = []
    client = socketio.Client(reconnection=False)
    client.on("said", heard.append)
    client.connect(url, transports=transports, wait_timeout=10)
    return client, heard


@pytest.mark.parametrize("worker", ["gevent", "threading", "eventlet"])
def test_python_clients_of_every_transport(workers_factory: Any, worker: str) -> None:
    node = workers_factory(worker)
    kinds = [["polling"], ["polling", "websocket"], ["websocket"]] * 3
    clients = [_py_client(node.url, t) for t in kinds]
    try:
        for n, (client, _) in enumerate(clients):
            assert client.call("echo", {"n": n}, timeout=10) == {"n": n}
            assert client.call("echo", b"\x00\xff" * n, timeout=10) == b"\x00\xff" * n
            client.call("join", "room", timeout=10)
        clients[0][0].call("say", ("room", "hello"), timeout=10)
        wait_until(lambda: all(h for _, h in clients), 10, "everyone heard the room message")
        assert all(len(h) == 1 for _, h in clients)
        upgraded = [c.transport() for c, _ in clients[1::3]]
        assert upgraded == ["websocket"] * 3, upgraded
    finally:
        for client, _ in clients:
            client.disconnect()
    assert "unknown session id" not in node.log_tail(20000)


def _node_bin() -> str:
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/js/node_modules/socket.io-client").is_dir():
        skip_or_fail("node or tests/js/node_modules/socket.io-client is missing")
    assert node is not None
    return node


def run_js(url: str, clients: int, transports: list[str], timeout_s: float = 60) -> dict[str, Any]:
    config = {
        "url": url,
        "clients": clients,
        "transports": transports,
        "echoes": 3,
        "room": "r",
        "timeout_ms": int(timeout_s * 1000),
    }
    done = subprocess.run(
        [_node_bin(), str(HERE / "js" / "relay_clients.js"), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout_s + 15,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    report: dict[str, Any] = json.loads(lines[-1])
    return report


@pytest.mark.parametrize("worker", ["gevent", "threading", "eventlet"])
@pytest.mark.parametrize(
    "transports",
    [["polling"], ["polling", "websocket"], ["websocket"]],
    ids=["polling", "upgrade", "websocket"],
)
def test_js_clients_without_sticky_routing(
    workers_factory: Any, worker: str, transports: list[str]
) -> None:
    node = workers_factory(worker)
    report = run_js(node.url, 12, transports)
    detail = json.dumps(report)[:4000] + node.log_tail(3000)
    assert report["ok"], detail
    expected = "polling" if transports == ["polling"] else "websocket"
    assert {c["transport"] for c in report["clients"]} == {expected}, detail
    totals = node.relay_totals()
    assert totals["failed"] == 0, totals
    if len({c["pid"] for c in report["clients"]}) >= 2 and transports != ["websocket"]:
        # sessions on several workers, requests on new connections: some were relayed
        assert totals["forwarded"] > 0, totals
        if transports != ["polling"]:
            assert totals["streams"] > 0, totals  # upgrades that reached another worker


@pytest.mark.parametrize("worker", ["gevent"])
def test_a_few_hundred_js_clients(workers_factory: Any, worker: str) -> None:
    node = workers_factory(worker)
    reports = [
        run_js(node.url, 100, ["polling"], timeout_s=90),
        run_js(node.url, 100, ["polling", "websocket"], timeout_s=90),
        run_js(node.url, 100, ["websocket"], timeout_s=90),
    ]
    for report in reports:
        assert report["ok"], json.dumps(report)[:4000]
    assert "unknown session id" not in node.log_tail(50000)


def test_kombu_relays_too(workers_factory: Any) -> None:
    node = workers_factory("gevent", broker="kombu")
    sids = [polling_session(node.port) for _ in range(4)]
    for n, sid in enumerate(sids):
        assert polling_call(node.port, sid, 1, "echo", n) == n
    report = run_js(node.url, 8, ["polling", "websocket"])
    assert report["ok"], json.dumps(report)[:4000]


# ---------------------------------------------------------------- checks


def _raw_post(port: int, sid: str, head_body: bytes, length: int) -> socket.socket:
    """A POST whose body is ``length`` bytes long, of which only ``head_body`` is sent."""
    sock = socket.create_connection((HOST, port), timeout=20)
    sock.sendall(
        f"POST {POLLING}&sid={sid} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n".encode()
        + head_body
    )
    return sock


def _status_of(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return int(data.split(b" ", 2)[1]) if data else 0


@pytest.mark.parametrize("worker", ["gevent", "threading"])
def test_a_relayed_request_is_checked_as_a_local_one(workers_factory: Any, worker: str) -> None:
    """Origin (403), body size (413), http_body_timeout (408), transport rules (400):
    the same answers whichever worker the request reaches; the session is closed
    (or kept) as a local request would leave it."""
    node = workers_factory(worker, env={"MN_ORIGINS": "http://ok.example", "MN_BODY_TIMEOUT": "1"})
    for _ in range(4):
        sid = polling_session(node.port)
        conn = http.client.HTTPConnection(HOST, node.port, timeout=10)
        conn.request("GET", f"{POLLING}&sid={sid}", headers={"Origin": "http://evil.example"})
        assert conn.getresponse().status == 403
        conn.close()
        # over max_http_buffer_size (1 MB): refused from Content-Length, session closed
        assert _status_of(_raw_post(node.port, sid, b"", 2_000_000)) == 413
        assert request(node.port, "GET", f"&sid={sid}")[0] == 400

        sid = polling_session(node.port)
        started = time.monotonic()
        assert _status_of(_raw_post(node.port, sid, b"4hel", 10)) == 408  # the rest never comes
        assert time.monotonic() - started < 5
        assert request(node.port, "GET", f"&sid={sid}")[0] == 400  # closed by the owner

    ws = websocket.create_connection(
        f"ws://{HOST}:{node.port}/socket.io/?EIO=4&transport=websocket",
        origin="http://ok.example",
        timeout=10,
    )
    eio_sid = json.loads(ws.recv()[1:])["sid"]
    ws.send("40")
    assert ws.recv().startswith("40{")
    for _ in range(4):  # polling for a WebSocket session: refused, the session goes on
        status, body = request(node.port, "GET", f"&sid={eio_sid}")
        assert status == 400 and json.loads(body)["code"] == 3, body
    ws.send('421["echo","still here"]')
    while (text := ws.recv()).startswith("42") or text == "2":
        if text == "2":  # a ping
            ws.send("3")
    assert text == '431["still here"]', text
    ws.close()
    totals = node.relay_totals()
    assert totals["forwarded"] > 0, totals


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("broker", ["redis", "kombu"])
def test_owner_killed_prompt_400_and_the_client_reconnects(
    workers_factory: Any, broker: str
) -> None:
    node = workers_factory("gevent", broker=broker)
    sid = polling_session(node.port)
    owner = polling_call(node.port, sid, 1, "pid")
    client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
    client.connect(node.url, transports=["polling"], wait_timeout=10)
    client.call("pid", timeout=10)
    os.kill(owner, signal.SIGKILL)
    # requests for the dead worker's session: each a prompt 400, whichever worker it reaches
    for _ in range(6):
        started = time.monotonic()
        status, body = request(node.port, "GET", f"&sid={sid}")
        if status == 200:
            continue  # gunicorn's replacement of the killed worker? never the owner
        assert status == 400, (status, body)
        assert json.loads(body)["code"] == 1
        assert time.monotonic() - started < 2.5

    def served_by_a_live_worker() -> bool:
        # its own worker died, or one of its requests was
        # fronted by the dying worker: either way it reconnects, and meanwhile calls fail
        try:
            return client.connected and client.call("pid", timeout=5) != owner
        except (socketio.exceptions.SocketIOError, TimeoutError):
            return False

    wait_until(served_by_a_live_worker, 30, "the client is connected to a live worker")
    assert client.call("echo", "alive", timeout=10) == "alive"
    client.disconnect()


def test_owner_killed_under_an_upgraded_client(workers_factory: Any) -> None:
    """A WebSocket relayed to an owner that dies is closed within seconds (the
    front checks the processes at the other end of its streams), not after the
    client's ping timeout; the client reconnects to a live worker."""
    node = workers_factory("gevent")
    client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
    dropped: list[float] = []
    client.on("disconnect", lambda *args: dropped.append(time.monotonic()))
    client.connect(node.url, transports=["polling", "websocket"], wait_timeout=10)
    wait_until(lambda: client.transport() == "websocket", 10, "the upgrade")
    owner = client.call("pid", timeout=10)
    killed = time.monotonic()
    os.kill(owner, signal.SIGKILL)
    wait_until(lambda: dropped, 8, "the client saw its connection end")
    assert dropped[0] - killed < relay_module.STREAM_CHECK_EVERY + 2.5
    wait_until(lambda: client.connected, 20, "the client reconnected")
    assert client.call("pid", timeout=10) != owner
    client.disconnect()


@pytest.mark.parametrize("broker", ["redis", "kombu"])
def test_broker_restart_503_then_relaying_resumes(
    workers_factory: Any, tmp_path: Path, broker: str
) -> None:
    """A real restart of a private broker (redis-server, or a RabbitMQ node of its own)."""
    server = RedisServer(tmp_path) if broker == "redis" else RabbitServer(tmp_path)
    with running(server):
        server.start()
        # sessions that outlive the outage (a RabbitMQ node takes seconds to start, and the
        # listeners' backoff up to 5 s more) without a GET to answer pings meanwhile
        node = workers_factory(
            "gevent", bus_url=server.url, broker=broker, env={"MN_PING": "25,20"}
        )
        sids = [polling_session(node.port) for _ in range(4)]
        local = socketio.Client(reconnection=False)
        local.connect(node.url, transports=["websocket"], wait_timeout=10)
        server.stop()
        statuses: list[int] = []
        for sid in sids:
            for _ in range(3):
                started = time.monotonic()
                status, body = request(node.port, "POST", f"&sid={sid}", b"3")
                statuses.append(status)
                assert status in (200, 503), (status, body)  # 200: it reached the owner
                assert time.monotonic() - started < 5
                if status == 503:
                    assert json.loads(body)["message"] == "Session relay unavailable"
        assert 503 in statuses
        # a WebSocket session lives in one worker: it goes on without the broker
        assert local.call("echo", "no broker", timeout=10) == "no broker"
        server.start()
        node.wait_workers(timeout=30)  # every worker subscribed again (backoff: up to 5 s)

        def relaying() -> bool:
            return all(request(node.port, "POST", f"&sid={s}", b"3")[0] == 200 for s in sids)

        wait_until(relaying, 30, "relaying resumed")
        assert polling_call(node.port, sids[0], 5, "echo", "back") == "back"
        local.disconnect()


@pytest.mark.parametrize("worker", ["gevent", "threading"])
def test_a_process_that_just_started_relays_at_once(
    workers_factory: Any, worker: str, tmp_path: Path
) -> None:
    # a new worker (a start, a recycle, a scale-up) gets requests for older sessions
    # before the older processes' replies to its hello arrive: it must relay them, not
    # answer "Session ID unknown" (a 400 the client takes as a failed connection)
    old = workers_factory(worker, count=1)
    sids = [str(json.loads(request(old.port, "GET")[1][1:])["sid"]) for _ in range(3)]
    late = Node("late", "redis", old.bus_url, old.channel, worker, tmp_path)
    try:
        late.start()  # returns as soon as it answers
        for sid in sids:
            assert request(late.port, "POST", f"&sid={sid}", b"40") == (200, b"ok")
        for sid in sids:
            status, body = request(late.port, "GET", f"&sid={sid}")
            assert status == 200 and body.startswith(b"40{"), (status, body)
    finally:
        late.stop()


def test_recycled_worker_loses_only_its_own_sessions(workers_factory: Any) -> None:
    node = workers_factory("gevent", count=2, extra=("--max-requests", "50", "--keep-alive", "10"))
    clients: list[tuple[socketio.Client, int]] = []
    for _ in range(20):  # until both workers serve WebSocket clients
        client = _py_client(node.url, ["websocket"])[0]
        clients.append((client, client.call("pid", timeout=10)))
        if len({pid for _, pid in clients}) == 2 and len(clients) >= 4:
            break
    assert len({pid for _, pid in clients}) == 2
    # requests on one keep-alive connection all reach one worker: it gets recycled
    conn = http.client.HTTPConnection(HOST, node.port, timeout=10)
    recycled: set[int] = set()
    try:
        for _ in range(200):
            conn.request("GET", "/health")
            response = conn.getresponse()
            recycled.add(int(json.loads(response.read())["pid"]))
            if response.getheader("Connection", "").lower() == "close":
                break  # gunicorn closes the connection of the worker it recycles
    finally:
        conn.close()
    assert len(recycled) == 1, recycled
    wait_until(lambda: not recycled & node.worker_pids(), 20, "the worker recycled")
    survivors = [(c, pid) for c, pid in clients if pid not in recycled]
    assert survivors and len(survivors) < len(clients)
    wait_until(
        lambda: all(not c.connected for c, pid in clients if pid in recycled),
        10,
        "the recycled worker's clients disconnected",
    )
    for client, owner in survivors:
        assert client.connected
        assert client.call("pid", timeout=10) == owner  # same session, same worker
    for client, _ in clients:
        client.disconnect()
