"""Three gunicorn nodes (gevent, gthread and eventlet workers) on Redis or RabbitMQ.

Each test runs twice: through ``RedisManager`` and through ``KombuManager``.
Clients are python-socketio clients connected straight to a node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.multinode.mn_support import HERE, Cluster, ClusterFactory
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORKERS = ["gevent", "threading", "eventlet"]


@pytest.fixture
def cluster(broker: str, make_cluster: ClusterFactory) -> Iterator[Cluster]:
    cluster = make_cluster(broker, WORKERS)
    yield cluster


def test_emit_crosses_nodes_and_rooms_span_nodes(cluster: Cluster) -> None:
    a, b, c = cluster.client(0), cluster.client(1), cluster.client(2)
    assert (a.node, b.node, c.node) == ("n0", "n1", "n2")
    for client in (a, b):
        client.call("join", "blue")
    assert c.call("say", None, "to everyone") == "sent"
    for client in (a, b, c):
        assert client.wait("said")[0]["text"] == "to everyone"
    assert c.call("say", "blue", "to blue") == "sent"  # c is not in blue itself
    assert a.wait("said")[0] == {"node": "n2", "from": c.sid, "text": "to blue"}
    assert b.wait("said")[0]["text"] == "to blue"
    assert c.quiet("said")
    assert sorted(a.call("members", "blue")) == sorted([a.sid, b.sid])


def test_remote_room_membership_and_queries(cluster: Cluster) -> None:
    a, b = cluster.client(0), cluster.client(1)
    assert a.call("add", b.sid, "green") == "ok"  # b lives on n1, asked on n0
    assert a.call("rooms_of", b.sid) == sorted([b.sid, "green"])
    assert a.call("say", "green", "hello green") == "sent"
    assert b.wait("said")[0]["text"] == "hello green"
    assert a.call("remove", b.sid, "green") == "ok"
    assert a.call("rooms_of", b.sid) == [b.sid]
    everyone = cluster.client(2).call("members", None)
    assert a.sid in everyone and b.sid in everyone


def test_remote_disconnect(cluster: Cluster) -> None:
    a, b = cluster.client(0), cluster.client(2)
    assert a.call("kick", b.sid) == "ok"
    import time

    deadline = time.monotonic() + 5
    while b.sio.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not b.sio.connected
    assert b.sid not in a.call("members", None)


def test_acks_across_nodes(cluster: Cluster) -> None:
    a = cluster.client(0)
    b = cluster.client(1, answer={"ok": True, "blob": "b"})
    c = cluster.client(2, answer=[1, 2])
    assert a.call("ask", b.sid, "how are you?") == {"ok": True, "blob": "b"}
    assert b.wait("question") == ["how are you?"]
    assert a.call("ask_cb", c.sid, "and you?") == "asked"
    assert a.wait("answered")[0] == {"node": "n0", "args": [[1, 2]]}


def test_binary_crosses_nodes(cluster: Cluster) -> None:
    a, b = cluster.client(0), cluster.client(1)
    assert a.call("say", None, b"\x00\x01\xfe\xff") == "sent"
    assert b.wait("said")[0]["text"] == b"\x00\x01\xfe\xff"


def test_server_side_emit(cluster: Cluster) -> None:
    a, b, c = cluster.client(0), cluster.client(1), cluster.client(2)
    assert a.call("shout", {"version": 7}) == "n0"
    heard = {b.wait("heard")[0]["node"], c.wait("heard")[0]["node"]}
    assert heard == {"n1", "n2"}
    assert a.quiet("heard")


def test_external_write_only_emitter_reaches_every_node(broker: str, cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(3)]
    clients[1].call("join", "readers")
    url = cluster.nodes[0].bus_url
    cmd = [sys.executable, str(HERE / "emitter.py"), broker, url, cluster.channel]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args in (["news", json.dumps({"title": "hi"})], ["news", '"only readers"', "readers"]):
        done = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=30, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
    for client in clients:
        assert client.wait("news") == [{"title": "hi"}]
    assert clients[1].wait("news") == ["only readers"]
    assert clients[0].quiet("news") and clients[2].quiet("news", 0.1)
