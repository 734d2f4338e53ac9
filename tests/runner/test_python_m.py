"""``python -m sio_wsgi`` in subprocesses: the WSGI server of each async mode, WebSocket
through it, the graceful SIGTERM, the reloader, and ``--workers`` handing over to gunicorn.

The application is :mod:`tests.runner.echo_app`; every process runs on a free port and
is stopped by PID (:class:`tests.support.ServerProcess`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support import HOST, ROOT, ServerProcess, wait_until

pytestmark = [pytest.mark.timeout(120)]

APP = "tests.runner.echo_app:app"
HERE = Path(__file__).resolve().parent

#: seconds a graceful stop may take before SIGKILL (a loaded CI host is slow)
STOP_TIMEOUT = 20.0

#: the WebSocket of each client (python-socketio leaves it open when the server ends it)
WEBSOCKETS: dict[int, list[Any]] = {}

#: the first log line, per async mode: the WSGI server chosen
SERVER_NAMES = {
    "threading": "werkzeug, threaded",
    "gevent": "gevent.pywsgi",
    "eventlet": "eventlet.wsgi",
}


def sio_wsgi_argv(*args: str) -> list[str]:
    """``python -m sio_wsgi ARGS --port {port}``."""
    return [sys.executable, "-m", "sio_wsgi", *args, "--port", "{port}"]


def serving_lines(server: ServerProcess) -> list[str]:
    """The log lines of the runner itself (``sio_wsgi.run``) and Python warnings, in order."""
    return [
        line
        for line in server.log_text().splitlines()
        if line and not line.startswith("===") and "DeprecationWarning" not in line
    ]


def health(server: ServerProcess) -> dict[str, Any]:
    """``GET /health``."""
    with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


@pytest.fixture
def client() -> Iterator[socketio.Client]:
    """A python-socketio client that does not reconnect; disconnected afterwards."""
    sio = socketio.Client(reconnection=False)
    yield sio
    close_client(sio)


def close_client(sio: socketio.Client) -> None:
    """Disconnect; python-socketio leaves its WebSocket open when the server ended it."""
    if sio.connected:
        sio.disconnect()
    while WEBSOCKETS.get(id(sio)):
        WEBSOCKETS[id(sio)].pop().shutdown()  # close() skips a socket the server closed


def echo_over_websocket(client: socketio.Client, url: str) -> None:
    """Connect over WebSocket only, send ``echo`` and get the event and the ack back."""
    echoed: list[Any] = []
    client.on("echo", echoed.append)
    client.connect(url, transports=["websocket"], wait_timeout=10)
    assert client.transport() == "websocket"
    WEBSOCKETS.setdefault(id(client), []).append(client.eio.ws)
    assert client.call("echo", {"n": 1}, timeout=10) == {"n": 1}
    wait_until(lambda: echoed == [{"n": 1}], timeout=10, what="the echo event")


@pytest.mark.parametrize("mode", list(SERVER_NAMES))
def test_each_mode_gets_its_server_and_a_graceful_sigterm(
    mode: str, tmp_path: Path, client: socketio.Client
) -> None:
    # threading: no --async-mode (the Server's own, detected: nothing patched)
    args = [APP] if mode == "threading" else [APP, "--async-mode", mode]
    server = ServerProcess(
        sio_wsgi_argv(*args), tmp_path / f"{mode}.log", name=mode, stop_timeout=STOP_TIMEOUT
    )
    with server:
        first = serving_lines(server)[0]
        expected = (
            f"sio_wsgi {__import__('sio_wsgi').__version__} serving on http://{HOST}:"
            f"{server.port} ({SERVER_NAMES[mode]}, async mode {mode})"
        )
        assert first.endswith(expected), server.log_text()
        assert health(server)["async_mode"] == mode
        echo_over_websocket(client, server.url)
        code = server.stop()
        assert code == 0, server.log_tail()
    wait_until(lambda: not client.connected, timeout=10, what="the client sees the disconnect")
    log = server.log_text()
    assert "disconnect server shutting down" in log, log  # the handler ran before the exit
    assert "SIGTERM: shutting down" in log, log
    assert log.rstrip().endswith("sio_wsgi stopped"), log


@pytest.mark.parametrize(
    "args",
    [
        ["tests.runner.echo_app:sio"],
        ["tests.runner.echo_app:plain", "--server", "tests.runner.echo_app:sio"],
    ],
    ids=["server-alone", "wsgi-app-plus-server"],
)
def test_a_server_alone_or_a_wsgi_app_with_a_server(
    args: list[str], tmp_path: Path, client: socketio.Client
) -> None:
    argv = sio_wsgi_argv(*args)
    with ServerProcess(argv, tmp_path / "run.log", stop_timeout=STOP_TIMEOUT) as server:
        echo_over_websocket(client, server.url)
        client.disconnect()
        assert server.stop() == 0, server.log_tail()


def test_bad_targets_exit_2_with_a_message() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cases = {
        "tests.runner.echo_app:nothing": "has no nothing",
        "tests.runner.echo_app:RUNNER_VERSION": "cannot serve str",
    }
    for target, message in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "sio_wsgi", target, "--port", "1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr, done.stderr


def test_workers_without_a_client_manager_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sio_wsgi", APP, "--workers", "2", "--port", "1"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "workers=2 needs a client manager" in done.stderr, done.stderr
    assert "RedisManager" in done.stderr


def test_the_reloader_restarts_on_a_change(tmp_path: Path, client: socketio.Client) -> None:
    pytest.importorskip("werkzeug")
    source = tmp_path / "reload_app.py"
    shutil.copy(HERE / "echo_app.py", source)
    server = ServerProcess(
        sio_wsgi_argv("reload_app:app", "--reload"),
        tmp_path / "reload.log",
        cwd=tmp_path,
        pythonpath=[tmp_path],
        name="reloader",
        start_timeout=30,
    )
    with server:
        before = health(server)
        assert before["version"] == "1"
        assert "reloader on" in server.log_text(), server.log_text()
        echo_over_websocket(client, server.url)
        text = source.read_text().replace('RUNNER_VERSION = "1"', 'RUNNER_VERSION = "2"')
        source.write_text(text)
        later = time.time() + 2  # a new mtime even on a coarse clock
        os.utime(source, (later, later))

        def reloaded() -> bool:
            try:
                return health(server)["version"] == "2"
            except OSError:
                return False  # between the old child and the new one

        wait_until(reloaded, timeout=30, interval=0.2, what="the reloaded app")
        assert health(server)["pid"] != before["pid"]
        wait_until(lambda: not client.connected, timeout=10, what="the old child's client gone")


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["threading", "gevent", "eventlet"])
def test_workers_with_redis_run_gunicorn(mode: str, tmp_path: Path) -> None:
    from tests.multinode.mn_support import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer(tmp_path) as redis:
        args = [APP, "--workers", "2", "--log-level", "info"]
        if mode != "threading":
            args += ["--async-mode", mode]
        server = ServerProcess(
            sio_wsgi_argv(*args),
            tmp_path / "gunicorn.log",
            env={"RUNNER_MANAGER_URL": redis.url},
            name="gunicorn",
            start_timeout=30,
            stop_timeout=STOP_TIMEOUT,
        )
        with server:
            worker_class = {
                "threading": "gthread",
                "gevent": "gevent",
                "eventlet": "sio_wsgi.gunicorn.EventletWorker",
            }[mode]
            log = server.log_text()
            assert f"(gunicorn, 2 workers of class {worker_class}, async mode {mode})" in log
            wait_until(
                lambda: len(re.findall(r"Booting worker with pid", server.log_text())) == 2,
                timeout=30,
                what="two gunicorn workers",
            )
            clients = []
            try:
                for _ in range(6):
                    sio = socketio.Client(reconnection=False)
                    clients.append(sio)
                    echo_over_websocket(sio, server.url)
                polling = socketio.Client(reconnection=False)
                clients.append(polling)
                polling.connect(server.url, transports=["polling"], wait_timeout=10)
                # polling requests land on either worker: the relay carries them over Redis
                for n in range(5):
                    assert polling.call("echo", n, timeout=10) == n
            finally:
                for sio in clients:
                    close_client(sio)
            assert server.stop() == 0, server.log_tail()
