"""RedisManager over ``unix://`` and ``rediss://`` (TLS), against Redis and Valkey, end to end.

Each test starts its own server with ``--port 0`` (no plain TCP port at all),
two gunicorn nodes (``node_app``) whose ``RedisManager`` gets the URL, and
checks that a client on node A receives an emit made on node B and one made
by an external write-only ``RedisManager``. The TLS test generates a
throwaway CA and a certificate for 127.0.0.1 with ``openssl``; the CA file
reaches redis-py through the URL (``?ssl_ca_certs=``).

A missing ``redis-server`` or ``openssl`` skips (fails under ``CI=true``).
``valkey-server`` is optional: Debian bookworm does not package Valkey, so its
cases skip when it is not installed, in CI too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sio_wsgi.managers.pubsub import BusError
from sio_wsgi.managers.redis import RedisManager
from tests.multinode.mn_support import Cluster, running
from tests.multinode.redis_urls_support import (
    BINARIES,
    PrivateServer,
    make_certs,
    server_binary,
    short_tmpdir,
)
from tests.support import skip_or_fail

__all__: list[str] = []

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(60)]


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> str:
    """The server binary: ``redis-server``, then ``valkey-server`` when installed."""
    name: str = request.param
    path = server_binary(name)
    if path is None:
        if name == "valkey":  # not in Debian bookworm: never required
            pytest.skip("valkey-server is not installed (Debian bookworm has no valkey package)")
        skip_or_fail(f"{BINARIES[name]} is not installed")
    assert path is not None
    return path


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temporary directory (unix socket paths are limited to ~107 bytes)."""
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _emit_from_outside(
    url: str, channel: str, event: str, data: object, room: str | None, **options: Any
) -> None:
    """Publish like a plain script would: a write-only manager, then shut down.

    :param options: more :class:`RedisManager` keyword arguments.
    """
    options.setdefault("publish_timeout", 3.0)
    emitter = RedisManager(url, channel=channel, write_only=True, **options)
    try:
        emitter.emit(event, data, room=room)
    finally:
        emitter.shutdown()


def _check_cross_node(
    url: str, log_dir: Path, workers: list[str], emitter: dict[str, Any] | None = None
) -> None:
    """Two nodes on ``url``: node B's emits and an external emitter's reach node A.

    :param emitter: ``url`` and options of the external emitter (the nodes' URL by default).
    """
    emitter = emitter or {"url": url}
    cluster = Cluster("redis", url, log_dir, workers)
    with running(cluster):
        cluster.start()
        for node in cluster.nodes:
            health = node.health()
            assert health is not None and health["connected"] and health["last_error"] is None
        a, b = cluster.client(0), cluster.client(1)
        assert (a.node, b.node) == ("n0", "n1")
        assert a.call("join", "blue") == "n0"

        assert b.call("say", "blue", "from B") == "sent"  # b is not in blue itself
        assert a.wait("said")[0] == {"node": "n1", "from": b.sid, "text": "from B"}
        assert b.quiet("said", 0.2)

        _emit_from_outside(
            channel=cluster.channel, event="news", data={"to": "blue"}, room="blue", **emitter
        )
        assert a.wait("news")[0] == {"to": "blue"}
        _emit_from_outside(
            channel=cluster.channel, event="news", data={"to": "all"}, room=None, **emitter
        )
        for client in (a, b):
            assert client.wait("news", where=lambda args: args[0] == {"to": "all"})
        assert b.quiet("news", 0.2, where=lambda args: args[0] == {"to": "blue"})


def test_unix_socket(binary: str, workdir: Path) -> None:
    server = PrivateServer(binary, workdir, unix_socket=True)
    server.start()
    with running(server):
        url = server.url()
        assert url.startswith("unix://")
        _check_cross_node(url, workdir, ["threading", "gevent"])


def test_tls(binary: str, workdir: Path) -> None:
    if shutil.which("openssl") is None:
        skip_or_fail("openssl is not installed")
    certs = make_certs(workdir)
    server = PrivateServer(binary, workdir, certs=certs)
    try:
        server.start()
    except RuntimeError as exc:  # e.g. a build without TLS support
        skip_or_fail(f"{Path(binary).name} does not start with TLS: {exc}")
    with running(server):
        # the nodes pass the CA in the URL, the emitter through ``redis_options``
        url = server.url(ssl_ca_certs=certs.ca)
        emitter = {"url": server.url(), "redis_options": {"ssl_ca_certs": str(certs.ca)}}
        _check_cross_node(url, workdir, ["threading", "eventlet"], emitter)

        # really TLS, really verified: plain text and an unknown CA are both refused
        refused = {
            f"redis://127.0.0.1:{server.tls_port}/0": "unreachable",
            server.url(): "CERTIFICATE_VERIFY_FAILED",
        }
        for bad, why in refused.items():
            with pytest.raises(BusError, match=why):
                _emit_from_outside(
                    bad,
                    "unused",
                    "x",
                    None,
                    None,
                    publish_timeout=1.0,
                    redis_options={"socket_timeout": 2},
                )
