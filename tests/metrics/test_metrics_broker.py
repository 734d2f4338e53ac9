"""Broker health in the metrics: a Server with a RedisManager (a real Redis)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import sio_wsgi
from sio_wsgi.metrics import collect, to_json
from tests.support import port_open, skip_or_fail, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

REDIS_URL = "redis://127.0.0.1:6379/0"


def _value(server: sio_wsgi.Server, name: str) -> Any:
    samples = to_json(collect(server))["metrics"].get(name, {}).get("samples", [])
    return samples[0]["value"] if samples else None


def test_broker_health_and_other_nodes_are_reported() -> None:
    if not port_open(6379):
        skip_or_fail("Redis not running on 127.0.0.1:6379")
    channel = f"metrics-{uuid.uuid4().hex[:8]}"
    servers = [
        sio_wsgi.Server(
            client_manager=sio_wsgi.RedisManager(
                REDIS_URL, channel=channel, heartbeat_interval=0.2
            ),
            async_mode="threading",
            metrics=True,
        )
        for _ in range(2)
    ]
    first = servers[0]
    try:
        wait_until(lambda: _value(first, "sio_broker_connected") == 1, 10, "connected to Redis")
        wait_until(lambda: _value(first, "sio_broker_nodes") == 1, 10, "the other node heard of")
        first.emit("hello", 1)  # published on the bus
        wait_until(lambda: _value(first, "sio_broker_published_total") >= 1, 10, "a publish")
        assert _value(first, "sio_broker_reconnects_total") == 0
        assert _value(first, "sio_broker_state_seconds") >= 0
    finally:
        for server in servers:
            server.shutdown()
