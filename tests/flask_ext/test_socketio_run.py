"""``socketio.run(app)`` (Flask-SocketIO's entry point) end to end: a real process on a
free port, the WSGI server of its async mode, WebSocket, and a graceful SIGTERM."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support import ServerProcess, wait_until

pytestmark = [pytest.mark.timeout(120)]

#: the first words of the runner's log line per async mode: the WSGI server chosen
SERVERS = {"threading": "werkzeug, threaded", "gevent": "gevent.pywsgi"}


@pytest.mark.parametrize("mode", list(SERVERS))
def test_socketio_run_serves_websocket_and_stops_gracefully(mode: str, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tests.flask_ext.run_app", "{port}", mode]
    server = ServerProcess(
        argv, tmp_path / f"{mode}.log", name=f"socketio.run-{mode}", stop_timeout=20
    )
    client = socketio.Client(reconnection=False)
    echoed: list[Any] = []
    client.on("echo", echoed.append)
    with server:
        with urllib.request.urlopen(server.url + "/health", timeout=5) as answer:
            assert b'"async_mode":"' + mode.encode() in answer.read().replace(b" ", b"")
        assert f"({SERVERS[mode]}, async mode {mode})" in server.log_text(), server.log_text()
        client.connect(server.url, transports=["websocket"], wait_timeout=10)
        ws = client.eio.ws
        try:
            ack = client.call("echo", {"n": 1}, timeout=10)
            assert ack == {"data": {"n": 1}, "sid": client.get_sid()}
            wait_until(lambda: echoed == [{"n": 1}], timeout=10, what="the echo event")
            assert server.stop() == 0, server.log_tail()
            wait_until(lambda: not client.connected, timeout=10, what="the client disconnected")
        finally:
            if client.connected:
                client.disconnect()
            if ws is not None:
                ws.shutdown()
    assert "disconnect server shutting down" in server.log_text(), server.log_text()
