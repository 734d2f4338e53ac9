"""sio_wsgi deployed under real servers, driven by the python-socketio client.

For each server: connect over polling only, over websocket only, and with the
default polling -> websocket upgrade; emit with an ack; receive an emit made
from a Flask view; check the driver that ``async_mode=None`` picked.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio

from tests.deploy.deploy_support import DeployServer, running_server
from tests.deploy.sio_app import BODY_TIMEOUT
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

#: server kind -> the driver async_mode=None must pick there.
SERVERS = {
    "gunicorn-gthread": "threading",
    "gunicorn-gevent": "gevent",
    "gunicorn-eventlet": "eventlet",
    "gunicorn-gevent-pywsgi": "gevent",
    "eventlet": "eventlet",
    "gevent": "gevent",
    "werkzeug": "threading",
    "wsgiref": "threading",
}
TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}
WAIT = 10.0


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[DeployServer]:
    with running_server(request.param, "sio_app:app") as proc:
        yield proc


class Recorder:
    """Collects events a client receives, with a bounded wait."""

    def __init__(self) -> None:
        self.events: dict[str, list[Any]] = {}
        self.cond = threading.Condition()

    def add(self, name: str, data: Any) -> None:
        with self.cond:
            self.events.setdefault(name, []).append(data)
            self.cond.notify_all()

    def wait(self, name: str) -> Any:
        with self.cond:
            assert self.cond.wait_for(lambda: name in self.events, WAIT), (name, self.events)
            return self.events[name][0]


def _client(server: DeployServer, transports: list[str]) -> tuple[socketio.Client, Recorder]:
    client = socketio.Client(reconnection=False)
    recorder = Recorder()
    for name in ("welcome", "server_event"):
        client.on(name, lambda data, name=name: recorder.add(name, data))
    client.connect(server.url, transports=transports, wait_timeout=WAIT)
    return client, recorder


def _wait_transport(client: socketio.Client, name: str) -> str:
    deadline = time.monotonic() + WAIT
    while client.transport() != name and time.monotonic() < deadline:
        time.sleep(0.05)
    return str(client.transport())


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_emit_ack_and_flask_emit(server: DeployServer, transport: str) -> None:
    client, recorder = _client(server, TRANSPORTS[transport])
    try:
        expected = "polling" if transport == "polling" else "websocket"
        assert _wait_transport(client, expected) == expected
        assert recorder.wait("welcome") == {"sid": client.get_sid("/")}
        assert client.call("echo", {"a": [1, "2"]}, timeout=WAIT) == {"a": [1, "2"]}
        assert client.call("echo", b"\x00\x01\xff", timeout=WAIT) == b"\x00\x01\xff"
        response = requests.get(f"{server.url}/emit/{client.get_sid('/')}", timeout=WAIT)
        assert response.status_code == 200 and response.text == "ok"
        assert recorder.wait("server_event") == {"from": "flask"}
        assert client.call("whoami", timeout=WAIT) == SERVERS[server.kind]
    finally:
        client.disconnect()


def test_several_clients_at_once(server: DeployServer) -> None:
    # gthread --threads 4: each WebSocket holds a thread, a polling client up to two.
    clients = [_client(server, TRANSPORTS["websocket"])[0] for _ in range(2)]
    clients.append(_client(server, TRANSPORTS["polling"])[0])
    try:
        for i, client in enumerate(clients):
            assert client.call("echo", i, timeout=WAIT) == i
        assert requests.get(f"{server.url}/health", timeout=WAIT).text == "ok"
    finally:
        for client in clients:
            client.disconnect()


def _slow_post(server: DeployServer) -> socket.socket:
    """Open a polling session and start a POST whose body never comes in full."""
    handshake = requests.get(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=WAIT)
    sid = json.loads(handshake.text[1:])["sid"]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.sendall(
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nContent-Type: text/plain\r\n"
        "Content-Length: 100000\r\n\r\n4".encode()
    )
    return sock


def test_slow_bodies_are_cut(server: DeployServer) -> None:
    """Slowloris: more trickling POST bodies than gthread has threads. Each is cut
    with a 408 after ``http_body_timeout``, and the server serves a client after."""
    socks = [_slow_post(server) for _ in range(6)]
    started = time.monotonic()
    answers = dict.fromkeys(range(len(socks)), b"")
    try:
        for sock in socks:
            sock.settimeout(0.02)
        while time.monotonic() - started < BODY_TIMEOUT + 6 and not all(answers.values()):
            for i, sock in enumerate(socks):
                if answers[i]:
                    continue
                with contextlib.suppress(OSError):
                    sock.sendall(b"x")
                with contextlib.suppress(TimeoutError):
                    answers[i] = sock.recv(4096) or b"<eof>"
            time.sleep(0.1)
    finally:
        for sock in socks:
            sock.close()
    heads = [answer.split(b"\r\n", 1)[0] for answer in answers.values()]
    assert all(b" 408 " in head for head in heads), heads
    client, _ = _client(server, TRANSPORTS["upgrade"])
    try:
        assert client.call("echo", "after", timeout=WAIT) == "after"
    finally:
        client.disconnect()


def test_zz_no_server_errors(server: DeployServer) -> None:
    time.sleep(0.5)
    assert server.errors() == [], server.log_text()


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_a_green_mode_in_an_unpatched_worker_fails_at_start(mode: str, tmp_path: Path) -> None:
    """Server(async_mode=mode) under ``gunicorn -k gthread``: the worker does not
    boot, with an error that says what to do (it used to start and hang every session)."""
    env = {"SIO_DEPLOY_ASYNC_MODE": mode}
    server = DeployServer("gunicorn-gthread", "sio_app:app", tmp_path / "gthread.log", env)
    try:
        with contextlib.suppress(RuntimeError):  # gunicorn binds before its worker fails
            server.start()
        proc = server.proc
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, 30, what="gunicorn to give up on its worker")
        assert proc.returncode != 0
    finally:
        server.stop()
    log = server.log_text()
    assert f"ConfigError: async_mode='{mode}' needs a process that {mode} has monkey-patched" in log
    assert "-k " in log and "monkey" in log
