"""nginx with plain round-robin (nothing sticky) in front of three nodes of two workers each.

Three gunicorn nodes (gevent, gthread, eventlet workers), each ``-w 2``: six
processes on one Redis channel, every request of a session free to land on any of
them. The session relay (on by default with a client manager) carries each
request to the process that owns the session. Official JS clients (polling only,
polling then WebSocket, WebSocket only) and python-socketio clients connect
through nginx, ack text and binary echoes, join a room, and hear every other
client's line, whichever process owns them.

The nginx configuration is the block of docs/multinode.md ("nginx, plain
round-robin"), read from the file: only the upstream addresses, the ``listen``
address and the log path are replaced, so the documented config is the tested one.
Its access log (``$upstream_addr``) must show: only 200 and 101, requests of one
session served by several nodes, and WebSocket upgrades answered 101 by a node
that does not own the session (relayed as a byte stream).

Without nginx, on Redis and on RabbitMQ: polling requests, a long-poll that
waits for the owner's ping, and a WebSocket, all relayed from one node to the
other.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import websocket

from tests.multinode.mn_support import (
    HERE,
    Cluster,
    ClusterFactory,
    Nginx,
    Node,
    PyClient,
    broker_url,
    running,
)
from tests.support import HOST, ROOT, skip_or_fail, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DOCS = ROOT / "docs" / "multinode.md"
#: the docs section whose ```nginx block this test runs
DOCS_SECTION = "### nginx, plain round-robin"
#: what the test replaces in that block
DOCS_SERVERS = "".join(f"    server 127.0.0.1:{port};\n" for port in (8001, 8002, 8003))
DOCS_LISTEN = "listen 80;"
DOCS_ACCESS_LOG = "access_log /var/log/nginx/socketio.log upstreams;"

#: one node per worker class (keys of mn_support.WORKERS)
MODES = ["gevent", "threading", "eventlet"]
ROOM = "lobby"
ROUNDS = 4
#: the JS clients: (name prefix, transports, how many)
JS_CLIENTS = [
    ("js-polling", ["polling"], 4),
    ("js-default", ["polling", "websocket"], 6),
    ("js-websocket", ["websocket"], 3),
]
#: the python-socketio clients
PY_CLIENTS = {
    "py-polling": ["polling"],
    "py-default": ["polling", "websocket"],
    "py-websocket": ["websocket"],
}
LOG_LINE = re.compile(
    r'^\S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<uri>\S+) [^"]*" (?P<status>\d{3}) (?P<upstream>.*)$'
)


class _TwoWorkerNode(Node):
    """A node of two gunicorn workers: two processes, each its own relay inbox."""

    processes = 2


def docs_nginx_block() -> str:
    """:returns: the ```nginx block of docs/multinode.md's round-robin section."""
    text = DOCS.read_text()
    start = text.index(DOCS_SECTION)
    match = re.compile(r"```nginx\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no nginx block after {DOCS_SECTION!r} in {DOCS}"
    return match.group(1)


def round_robin_config(upstreams: list[str], port: int, access_log: Path) -> str:
    """The docs' block with this test's upstreams, port and log path.

    :param upstreams: ``host:port`` of the nodes.
    :param port: nginx's port.
    :param access_log: the access log's path.
    """
    block = docs_nginx_block()
    directives = re.sub(r"#[^\n]*", "", block)
    for sticky in ("ip_hash", "hash", "sticky", "keepalive", "cookie"):
        assert not re.search(rf"\b{sticky}\b", directives), f"{sticky} in the docs' block"
    for old, new in (
        (DOCS_SERVERS, "".join(f"    server {u};\n" for u in upstreams)),
        (DOCS_LISTEN, f"listen {HOST}:{port};"),
        (DOCS_ACCESS_LOG, f"access_log {access_log} upstreams;"),
    ):
        assert block.count(old) == 1, f"docs/multinode.md's nginx block lost {old!r}"
        block = block.replace(old, new)
    return block


class _RoundRobinNginx(Nginx):
    """nginx running the docs' round-robin block (plus private temp paths)."""

    def config(self) -> str:
        w = self.workdir
        http = round_robin_config(self.upstreams, self.port, w / "access.log")
        return f"""
worker_processes 1;
error_log {w}/error.log warn;
pid {w}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log {w}/other.log;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;

{http}
}}
"""


def _needs_nginx_and_node() -> str:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        skip_or_fail("nginx is not installed (apt-get install -y nginx)")
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/js/node_modules/socket.io-client").is_dir():
        skip_or_fail("node or tests/js/node_modules/socket.io-client is missing")
    assert node is not None
    return node


class _JsRun:
    """tests/multinode/js/relay_chat.js in a subprocess, its stdout read line by line."""

    def __init__(self, node_bin: str, scenario: dict[str, Any], stderr: Path) -> None:
        self._stderr = open(stderr, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [node_bin, str(HERE / "js" / "relay_chat.js"), json.dumps(scenario)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str] | None) -> None:
        assert stdout is not None
        for line in stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stage(self, name: str, timeout: float) -> dict[str, Any]:
        """Wait for the JSON line of stage ``name`` (or the final one)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"relay_chat.js: no {name!r} within {timeout}s") from None
            if line is None:
                raise AssertionError(f"relay_chat.js ended before {name!r}")
            report: dict[str, Any] = json.loads(line)
            if report.get("stage") in (name, "done"):
                return report

    def go(self) -> None:
        """Let the JS clients say their lines."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """Wait a little for the exit, then kill by PID."""
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._stderr.close()


class _PyClients(dict[str, PyClient]):
    def stop(self) -> None:
        for client in self.values():
            client.close()


def _echo_rounds(name: str, client: PyClient) -> None:
    for i in range(ROUNDS):
        text = {"name": name, "i": i, "s": "é€😀" * (i + 1)}
        assert client.call("echo", text) == text
        data = bytes((j * 7 + i) & 0xFF for j in range(1000 + 97 * i))
        assert client.call("echo", {"name": name, "i": i, "bytes": data}) == {
            "name": name,
            "i": i,
            "bytes": data,
        }


def _text_is(text: str) -> Callable[[list[Any]], bool]:
    """A ``PyClient.wait`` condition: a ``said`` event with this text."""
    return lambda args: bool(args[0]["text"] == text)


def _worker_host_ids(node: Node, tries: int = 40) -> set[str]:
    """The host ids of a node's workers, from the sids of up to ``tries`` handshakes
    (the kernel hands each connection to one of them; which one is up to it)."""
    seen: set[str] = set()
    for _ in range(tries):
        url = f"{node.url}/socket.io/?EIO=4&transport=polling"
        with urllib.request.urlopen(url, timeout=5) as r:
            seen.add(json.loads(r.read().decode()[1:])["sid"][:16])
        if len(seen) == node.processes:
            break
    return seen


def _access_log(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        match = LOG_LINE.match(line)
        assert match is not None, f"unexpected access log line: {line}"
        entry: dict[str, Any] = match.groupdict()
        query = parse_qs(urlsplit(entry["uri"]).query)
        entry["sid"] = query.get("sid", [None])[0]
        entry["transport"] = query.get("transport", [None])[0]
        entry["line"] = line
        entries.append(entry)
    return entries


@pytest.mark.redis
@pytest.mark.browser
def test_round_robin_nginx_needs_no_sticky_sessions(tmp_path: Path) -> None:
    node_bin = _needs_nginx_and_node()
    cluster = Cluster("redis", broker_url("redis"), tmp_path, MODES, _TwoWorkerNode)
    nginx = _RoundRobinNginx([], tmp_path / "nginx")
    nginx.workdir.mkdir()
    py = _PyClients()
    js_specs = [
        {"name": f"{prefix}-{i}", "transports": transports}
        for prefix, transports, count in JS_CLIENTS
        for i in range(count)
    ]
    py_lines = [f"line from {name}" for name in PY_CLIENTS]
    js_lines = [f"line from {spec['name']}" for spec in js_specs]
    with running(py, nginx, cluster):
        cluster.start()
        nginx.upstreams = [f"{HOST}:{n.port}" for n in cluster.nodes]
        nginx.start()
        url = f"http://{HOST}:{nginx.port}"

        # python-socketio clients, through nginx
        for name, transports in PY_CLIENTS.items():
            py[name] = PyClient(url, transports=transports)
        engine_sids = {name: str(client.sio.eio.sid) for name, client in py.items()}
        assert py["py-default"].sio.transport() == "websocket"
        for name, client in py.items():
            assert client.call("join", ROOM) in {n.name for n in cluster.nodes}
            _echo_rounds(name, client)

        # the official JS clients, through nginx
        scenario = {
            "url": url,
            "room": ROOM,
            "rounds": ROUNDS,
            "timeout_ms": 40000,
            "expect": py_lines,
            "clients": js_specs,
        }
        js = _JsRun(node_bin, scenario, tmp_path / "relay_chat.stderr")
        try:
            ready = js.stage("ready", 30)
            assert ready["stage"] == "ready", f"{ready}\n{cluster.dump()}"
            for name, client in py.items():
                assert client.call("say", ROOM, f"line from {name}") == "sent"
            js.go()
            done = js.stage("done", 40)
        finally:
            js.stop()
        stderr = (tmp_path / "relay_chat.stderr").read_text()
        detail = f"{json.dumps(done, indent=1)}\n{stderr}\n{cluster.dump()}"
        assert done["ok"], detail
        for c in done["clients"]:
            assert c["echoes"] == 4 * ROUNDS and not c["errors"], detail
            assert c["heard"] == sorted(js_lines + py_lines), detail
            expected = "polling" if c["name"].startswith("js-polling") else "websocket"
            assert c["transport"] == expected, detail

        # the python clients heard every line too, and still answer
        for name, client in py.items():
            for line in js_lines + py_lines:
                client.wait("said", 10, where=_text_is(line))
            _echo_rounds(name, client)
        py.stop()

        # whose session is whose: Engine.IO sid (in the URLs) -> the owner's node
        port_of = {n.name: f"{HOST}:{n.port}" for n in cluster.nodes}
        owner = {c["eid"]: port_of[c["node"]] for c in done["clients"]}
        owner.update({engine_sids[name]: port_of[c.node] for name, c in py.items()})
        owners = {(c["node"], c["pid"]) for c in done["clients"]}

        # nginx logs a WebSocket when it closes: wait for all of them
        websockets = sum(count for _, t, count in JS_CLIENTS if "websocket" in t) + sum(
            1 for t in PY_CLIENTS.values() if "websocket" in t
        )
        log = nginx.workdir / "access.log"
        wait_until(
            lambda: sum(e["status"] == "101" for e in _access_log(log)) >= websockets,
            10,
            "every WebSocket in nginx's log",
        )
        entries = _access_log(log)
        text = log.read_text()
        assert {e["status"] for e in entries} <= {"200", "101"}, text  # no 400, no 503
        assert all("," not in e["upstream"] for e in entries), text  # nginx retried nothing
        assert sum(e["status"] == "101" for e in entries) == websockets, text
        with_sid = [e for e in entries if e["sid"] is not None]
        assert {e["sid"] for e in with_sid} <= set(owner), text
        upstreams_of: dict[str, set[str]] = {}
        for e in with_sid:
            upstreams_of.setdefault(e["sid"], set()).add(e["upstream"])
        # each polling-only session went through several nodes
        polling_only = [c["eid"] for c in done["clients"] if c["name"].startswith("js-polling")]
        polling_only.append(engine_sids["py-polling"])
        for sid in polling_only:
            assert len(upstreams_of[sid]) >= 2, (sid, text)
        relayed = [e for e in with_sid if e["upstream"] != owner[e["sid"]]]
        assert len(relayed) >= len(with_sid) // 3, text
        relayed_upgrades = [
            e for e in relayed if e["transport"] == "websocket" and e["status"] == "101"
        ]
        print(
            f"{len(relayed)} of {len(with_sid)} requests with a sid went to another node "
            f"than the owner's; {len(relayed_upgrades)} relayed upgrades; "
            f"owners (node, pid): {sorted(owners)}"
        )
        assert relayed_upgrades, text
        # both workers of a node own sessions (and got requests for each other's)
        workers = {n.name: _worker_host_ids(n) for n in cluster.nodes}
        print(f"worker host ids per node: {workers}")
        assert any(len(ids) == 2 for ids in workers.values()), workers


def _handshake(node: Node) -> str:
    with urllib.request.urlopen(f"{node.url}/socket.io/?EIO=4&transport=polling", timeout=5) as r:
        return str(json.loads(r.read().decode()[1:])["sid"])


def _polling(node: Node, sid: str, body: bytes | None = None, timeout: float = 5) -> bytes:
    request = urllib.request.Request(
        f"{node.url}/socket.io/?EIO=4&transport=polling&sid={sid}",
        data=body,
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as r:
        assert r.status == 200
        return bytes(r.read())


def test_each_broker_relays_polling_long_polls_and_websockets(
    broker: str, make_cluster: ClusterFactory
) -> None:
    cluster = make_cluster(broker, ["gevent", "threading"])
    owner, front = cluster.nodes
    for _ in range(5):  # a wrong answer from a wrong process would show up here
        sid = _handshake(owner)
        assert _polling(front, sid, b"40") == b"ok"
        assert _polling(front, sid).startswith(b"40{")  # the CONNECT reply, from the owner

    # a long-poll waits on the owner (liveness checks every second) for its ping
    sid = _handshake(owner)
    started = time.monotonic()
    assert _polling(front, sid, timeout=15) == b"2"
    assert time.monotonic() - started > 3  # node_app's ping_interval is 5 s

    # the upgrade of a session of the owner, through the front, and the WebSocket after it
    sid = _handshake(front)
    ws = websocket.create_connection(
        f"ws://{HOST}:{owner.port}/socket.io/?EIO=4&transport=websocket&sid={sid}", timeout=5
    )
    try:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        ws.send("5")
        ws.send("40")
        assert str(ws.recv()).startswith("40{")
        welcome = json.loads(str(ws.recv())[2:])
        assert welcome[0] == "welcome" and welcome[1]["node"] == front.name
        ws.send('421["echo","through the relay"]')
        assert ws.recv() == '431["through the relay"]'
        payload = bytes(range(256)) * 40  # a binary event: its attachment is a frame of its own
        ws.send('451-3["echo",{"_placeholder":true,"num":0}]')
        ws.send_binary(payload)
        assert ws.recv() == '461-3[{"_placeholder":true,"num":0}]'
        assert ws.recv() == payload
    finally:
        ws.close()
    stats = [(node.health() or {}).get("relay") or {} for node in cluster.nodes]
    assert stats[0].get("forwarded", 0) >= 1 and stats[0].get("streams", 0) == 0, stats
    assert stats[1].get("streams", 0) >= 1 and stats[1].get("served", 0) >= 1, stats
