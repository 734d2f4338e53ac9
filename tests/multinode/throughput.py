"""Messages crossing server nodes per second (Redis, RabbitMQ) and broker recovery time.

Usage (from the checkout's root)::

    python -m tests.multinode.throughput [--messages 5000] [--size 64] [--workers gevent]

Not a test and not part of ``python -m bench``: it measures the multi-node test
harness's own nodes (tests/multinode/node_app.py, whose ``/blast`` route exists for it),
so it lives next to that harness instead of copying it into bench/.

For each broker, two gunicorn nodes (one worker each) share a bus channel; a
python-socketio client connects to node n1; node n0 emits ``--messages`` events
to everyone (``GET /blast``). Reported:

- ``publish msgs/s``: how fast n0 published;
- ``cross-node msgs/s``: bus messages received by n1 per second, from the first
  publish to the last arrival (n1 decodes each and hands it to its client);
- ``client got``: how many the client on n1 actually received.

Recovery: a private redis-server is SIGKILLed and restarted on the same port;
for RabbitMQ the nodes' connections are closed broker-side (``rabbitmqctl``).
Reported is the time from the broker being back (Redis) / the connections being
closed (RabbitMQ) until a message emitted on n0 reaches the client on n1 again.

Needs Redis on 127.0.0.1:6379, RabbitMQ on 127.0.0.1:5672 (guest/guest),
redis-server and rabbitmqctl on the PATH. Everything binds 127.0.0.1; every
process started is killed by PID.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.multinode.mn_support import Cluster, PyClient, RedisServer
from tests.support import port_open, wait_until

__all__ = ["main"]

out = sys.stdout.write  # the figures are this script's output

URLS = {"redis": "redis://127.0.0.1:6379/0", "kombu": "amqp://guest:guest@127.0.0.1:5672//"}


def _received(cluster: Cluster, index: int) -> int:
    health = cluster.nodes[index].health() or {}
    return int(health.get("received", 0))


def throughput(broker: str, url: str, count: int, size: int, workers: list[str]) -> dict[str, Any]:
    """Blast ``count`` emits from n0 and time their arrival on n1.

    :returns: the figures.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(broker, url, Path(tmp), workers).start()
        try:
            client = cluster.client(1)
            got = {"n": 0}
            client.sio.on("bench", lambda *_: got.__setitem__("n", got["n"] + 1))
            base = _received(cluster, 1)
            started = time.perf_counter()
            blast = f"{cluster.nodes[0].url}/blast?n={count}&size={size}"
            with urllib.request.urlopen(blast, timeout=300) as r:
                published = json.loads(r.read())
            wait_until(lambda: _received(cluster, 1) - base >= count, 120, "all messages crossed")
            elapsed = time.perf_counter() - started
            wait_until(lambda: got["n"] >= count, 60, "client received all")
            return {
                "broker": broker,
                "messages": count,
                "size": size,
                "publish_per_s": count / published["seconds"],
                "cross_node_per_s": count / elapsed,
                "client_got": got["n"],
            }
        finally:
            cluster.stop()


def _crossing_works(cluster: Cluster, client: PyClient, text: str) -> bool:
    sender = PyClient(cluster.nodes[0].url)
    try:
        reply = sender.call("say", None, text)
        if reply != "sent":
            return False
        client.wait("said", 1.0, lambda args: args[0]["text"] == text)
        return True
    except AssertionError:
        return False
    finally:
        sender.close()


def redis_recovery(workers: list[str]) -> float:
    """Seconds from a restarted Redis accepting connections to a message crossing nodes."""
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        cluster = Cluster("redis", redis.url, Path(tmp), workers).start()
        try:
            client = cluster.client(1)
            redis.kill()
            wait_until(lambda: not (cluster.nodes[1].health() or {})["connected"], 10, "down")
            redis.start()
            back = time.perf_counter()
            attempt = iter(range(10**6))
            wait_until(
                lambda: _crossing_works(cluster, client, f"r{next(attempt)}"), 60, "recovered"
            )
            return time.perf_counter() - back
        finally:
            cluster.stop()
            redis.stop()


def rabbitmq_recovery(workers: list[str]) -> float:
    """Seconds from the nodes' AMQP connections being closed to a message crossing nodes."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster("kombu", URLS["kombu"], Path(tmp), workers).start()
        try:
            client = cluster.client(1)
            listed = subprocess.run(
                ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                stdin=subprocess.DEVNULL,
            )
            pids = [
                line.split("\t")[0]
                for line in listed.stdout.splitlines()
                if cluster.channel in line and line.startswith("<")
            ]
            for pid in pids:
                subprocess.run(
                    ["rabbitmqctl", "-q", "close_connection", pid, "bench"],
                    capture_output=True,
                    timeout=30,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            closed = time.perf_counter()
            attempt = iter(range(10**6))
            wait_until(
                lambda: _crossing_works(cluster, client, f"k{next(attempt)}"), 60, "recovered"
            )
            return time.perf_counter() - closed
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures.

    :param argv: command-line arguments.
    :returns: exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64, help="payload bytes per message")
    parser.add_argument("--workers", default="gevent", help="gevent | threading | eventlet")
    args = parser.parse_args(argv)
    workers = [args.workers, args.workers]
    for broker, port in (("redis", 6379), ("kombu", 5672)):
        if not port_open(port):
            out(f"{broker}: broker not running on 127.0.0.1:{port}, skipped\n")
            continue
        r = throughput(broker, URLS[broker], args.messages, args.size, workers)
        out(
            f"{broker:6s} {r['messages']} msgs x {r['size']} B ({args.workers} workers): "
            f"publish {r['publish_per_s']:,.0f} msgs/s, cross-node {r['cross_node_per_s']:,.0f} "
            f"msgs/s, client on the other node got {r['client_got']}\n"
        )
    seconds = redis_recovery(workers)
    out(f"redis  recovery after a broker restart (kill -9, start): {seconds:.2f} s\n")
    if port_open(5672):
        seconds = rabbitmq_recovery(workers)
        out(f"kombu  recovery after the AMQP connections were killed: {seconds:.2f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
