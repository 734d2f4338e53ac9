"""Connection state recovery across processes, state in Redis (``RedisManager``): the
official JS client drops from one gunicorn node and reconnects to another, the ticks
coming from a third party (the other node); then the same with the first node killed
(SIGKILL: it saves nothing at the end, the state it kept while alive must do)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.examples.examples_support import gunicorn_argv
from tests.multinode.mn_support import RedisServer, running
from tests.support import ROOT, ServerProcess, port_open, skip_or_fail

JS = ROOT / "tests" / "js"
REDIS_URL = "redis://127.0.0.1:6379/0"

Factory = Callable[..., ServerProcess]


@pytest.fixture
def nodes(tmp_path: Any) -> Iterator[Factory]:
    if not port_open(6379):
        skip_or_fail("redis is not running on 127.0.0.1:6379")
    channel = f"recovery-{os.getpid()}-{secrets.token_hex(4)}"
    started: list[ServerProcess] = []

    def make(name: str, worker: str = "gevent", redis_url: str = REDIS_URL) -> ServerProcess:
        argv = gunicorn_argv(worker, "tests.recovery.recovery_app:app")
        env = {"RECOVERY_REDIS_URL": redis_url, "RECOVERY_CHANNEL": channel}
        proc = ServerProcess(argv, tmp_path / f"{name}.log", health="/health", env=env, attempts=3)
        started.append(proc)
        proc.start()
        return proc

    yield make
    for proc in started:
        proc.stop()


def _client(scenario: dict[str, Any]) -> subprocess.Popen[str]:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "socket.io-client").is_dir():
        skip_or_fail("node and tests/js/node_modules are needed")
    assert node is not None
    return subprocess.Popen(
        [node, str(JS / "recovery_client.js"), json.dumps(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(JS),
    )


def _line(proc: subprocess.Popen[str], kind: str | None) -> dict[str, Any]:
    """The next JSON line of the client (of ``type`` kind; None: the report)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        doc: dict[str, Any] = json.loads(line)
        if doc.get("type") == kind or (kind is None and "ok" in doc):
            return doc
    proc.kill()
    raise AssertionError(
        f"no {kind or 'report'} line; stderr: {proc.stderr.read() if proc.stderr else ''}"
    )


def _start_ticks(node: ServerProcess, count: int, interval_ms: int = 4) -> None:
    url = f"{node.url}/ticks?count={count}&interval_ms={interval_ms}"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200


def _run(
    a: ServerProcess,
    b: ServerProcess,
    transports: list[str],
    drop: str,
    kill: bool,
    before_kill: Callable[[], None] | None = None,
    interval_ms: int = 4,
) -> dict[str, Any]:
    proc = _client(
        {
            "url": a.url,
            "failover_url": b.url,
            "transports": transports,
            "drop": drop,
            "ticks": 400,
            "drop_after": 120,
            "drops": 1,
            "external_ticks": True,
            "timeout_ms": 35000,
        }
    )
    try:
        _line(proc, "connected")
        time.sleep(1.2)  # the session's state reaches Redis (written within 0.5 s)
        _start_ticks(b, 400, interval_ms)
        if kill:
            _line(proc, "drop-now")
            if before_kill is not None:
                before_kill()
            a.kill()  # SIGKILL: nothing saved at the end
        report = _line(proc, None)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return report


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
def test_reconnecting_to_another_node_recovers(nodes: Factory, transports: list[str]) -> None:
    a, b = nodes("a"), nodes("b")
    report = _run(a, b, transports, "engine-close", kill=False)
    assert report["ok"], json.dumps(report)[:3000]
    assert report["recovered"] == [False, True] and report["first_gap"] == -1, report
    assert report["me"]["recovered"] is True


@pytest.mark.parametrize("worker", ["gevent", "gthread", "eventlet"])
def test_the_first_node_killed_the_client_recovers_on_another(nodes: Factory, worker: str) -> None:
    a, b = nodes("a", worker), nodes("b", worker)
    report = _run(a, b, ["websocket"], "external", kill=True)
    assert report["ok"], json.dumps(report)[:3000]
    assert report["recovered"] == [False, True] and report["first_gap"] == -1, report
    assert report["me"]["session"] == {"name": "carol"} and "ticks" in report["me"]["rooms"]


def test_the_redis_stream_is_bounded_in_bytes_and_a_trimmed_offset_fails() -> None:
    """The Lua script drops the oldest entries past ``max_buffered_bytes``; a client
    that missed one of them gets a new connection."""
    if not port_open(6379):
        skip_or_fail("redis is not running on 127.0.0.1:6379")
    import sio_wsgi
    from sio_wsgi.managers import RedisManager
    from sio_wsgi.managers.recovery_redis import RedisRecoveryStore
    from sio_wsgi.recovery import Saved

    channel = f"recovery-bound-{secrets.token_hex(4)}"
    manager = RedisManager(REDIS_URL, channel=channel)
    sio = sio_wsgi.Server(
        client_manager=manager,
        async_mode="threading",
        connection_state_recovery={"max_buffered_bytes": 3000},
    )
    try:
        store = sio._dispatcher.recovery
        assert isinstance(store, RedisRecoveryStore)
        deadline = time.monotonic() + 5
        while not manager.healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        for n in range(100):
            sio.emit("tick", (n, "x" * 100), to="room")
        deadline = time.monotonic() + 5
        while store.head == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        total = int(manager.redis.get(f"{channel}:recovery:bytes") or 0)
        assert 0 < total <= 3000 + 400, total
        entries = manager.redis.xrange(f"{channel}:recovery")
        assert 5 < len(entries) < 20, len(entries)
        first_kept = entries[0][0].decode()
        saved = Saved("p", "s", "/", {None: 0, "s": 0, "room": 0}, None)
        assert store.missed(saved, "1-0", store.head) is None  # its first events are gone
        time.sleep(0.5)  # every event delivered here
        kept = store.missed(saved, first_kept, store.head)
        assert kept is not None and len(kept) == len(entries) - 1
    finally:
        sio.shutdown()
        manager.redis.delete(f"{channel}:recovery", f"{channel}:recovery:bytes")


def test_the_recovery_state_survives_a_redis_restart(nodes: Factory, tmp_path: Any) -> None:
    """Redis with an append-only file is restarted mid stream, then the first node is
    killed: the stream and the session written before the restart recover the client on
    the other node (and the nodes catch up on what they missed while reconnecting)."""
    redis = RedisServer(tmp_path, persistent=True)
    with running(redis):
        redis.start()
        a, b = nodes("a", redis_url=redis.url), nodes("b", redis_url=redis.url)

        def restart_redis() -> None:
            redis.stop()
            redis.start()
            time.sleep(1.5)  # the nodes subscribe again (their backoff starts at 0.1 s)

        # 400 ticks 15 ms apart: they go on during the restart and after the kill
        report = _run(
            a, b, ["websocket"], "external", kill=True, before_kill=restart_redis, interval_ms=15
        )
    assert report["ok"], json.dumps(report)[:3000]
    assert report["recovered"] == [False, True] and report["first_gap"] == -1, report
