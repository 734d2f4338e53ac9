"""Broker faults in the middle of a run: the nodes notice, report, reconnect, recover.

- Redis: the test runs its *own* redis-server on a free port, SIGKILLs it and
  starts it again on the same port (the shared Redis is never touched).
- RabbitMQ: a second broker is impractical, so the nodes' AMQP connections are
  closed by the broker (``rabbitmqctl close_connection``), selected by the
  connection name KombuManager gives them (it contains the test's channel).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.multinode.mn_support import (
    Cluster,
    ClusterFactory,
    RedisServer,
    broker_url,
    running,
)
from tests.support import skip_or_fail, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORKERS = ["gevent", "threading", "eventlet"]


def _chat_works(cluster: Cluster, text: str) -> None:
    clients = [cluster.client(i) for i in range(len(cluster.nodes))]
    assert clients[0].call("say", None, text) == "sent"
    for client in clients:
        assert client.wait("said", where=lambda args: args[0]["text"] == text)
    for client in clients:
        client.close()


@pytest.mark.redis
def test_redis_restart(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed")
    redis = RedisServer(tmp_path)
    redis.start()
    with running(redis):
        cluster = make_cluster("redis", WORKERS, url=redis.url)
        a, b = cluster.client(0), cluster.client(2)
        _chat_works(cluster, "before")

        redis.kill()
        down = lambda: all(not (n.health() or {"connected": 1})["connected"] for n in cluster.nodes)  # noqa: E731
        wait_until(down, 10, "every node reports the broker down")
        reply = a.call("say", None, "while down")
        assert "error" in reply and "unreachable" in reply["error"]
        assert b.quiet("said", 0.3, where=lambda args: args[0]["text"] == "while down")

        redis.start()
        recovered = cluster.wait_healthy(20)
        print(f"redis restart: nodes recovered {recovered:.2f}s after the broker came back")
        _chat_works(cluster, "after")
        assert b.wait("said", where=lambda args: args[0]["text"] == "after")
        for node in cluster.nodes:
            health = node.health()
            assert health is not None and health["reconnects"] >= 1
            log = node.log_path.read_text()
            assert "lost the connection" in log and "reconnected" in log


def _close_amqp_connections(tag: str) -> int:
    """Close, broker side, every AMQP connection whose client properties mention ``tag``."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    closed = 0
    for line in listed.stdout.splitlines():
        pid, _, props = line.partition("\t")
        if tag in props and pid.startswith("<"):
            done = subprocess.run(
                ["rabbitmqctl", "-q", "close_connection", pid, "test"],
                capture_output=True,
                timeout=30,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            closed += done.returncode == 0
    return closed


@pytest.mark.rabbitmq
def test_rabbitmq_connections_killed(make_cluster: ClusterFactory) -> None:
    broker_url("kombu")
    if shutil.which("rabbitmqctl") is None:
        skip_or_fail("rabbitmqctl is not installed")
    cluster = make_cluster("kombu", WORKERS)
    _chat_works(cluster, "before")
    started = time.monotonic()
    closed = _close_amqp_connections(cluster.channel)
    assert closed >= len(cluster.nodes)  # every listener (and publisher) connection
    wait_until(
        lambda: all((n.health() or {}).get("reconnects", 0) >= 1 for n in cluster.nodes),
        20,
        "every node resubscribed",
    )
    cluster.wait_healthy(20)
    print(f"rabbitmq connections killed: recovered in {time.monotonic() - started:.2f}s")
    _chat_works(cluster, "after")
    for node in cluster.nodes:
        log = node.log_path.read_text()
        assert "lost the connection" in log and "reconnected" in log
