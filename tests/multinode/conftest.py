"""Fixtures of the multi-node suite (real brokers, real processes).

Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest/guest) must run; a
missing broker skips the tests that need it, or fails them under ``CI=true``.
Every test uses its own bus channel, so tests never see each other's messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multinode.mn_support import Cluster, ClusterFactory, broker_url


@pytest.fixture(params=["redis", "kombu"])
def broker(request: pytest.FixtureRequest) -> str:
    """Each test runs once through Redis and once through RabbitMQ (kombu)."""
    name: str = request.param
    request.node.add_marker(getattr(pytest.mark, "redis" if name == "redis" else "rabbitmq"))
    broker_url(name)
    return name


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Factory ``make_cluster(broker, workers=[...], url=None)``; nodes die at teardown.

    :param tmp_path: for the node logs.
    """
    started: list[Cluster] = []

    def factory(broker: str, workers: list[str], url: str | None = None) -> Cluster:
        cluster = Cluster(broker, url or broker_url(broker), tmp_path, workers)
        started.append(cluster)
        return cluster.start()

    yield factory
    for cluster in started:
        cluster.stop()
