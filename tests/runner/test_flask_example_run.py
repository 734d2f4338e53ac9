"""The Flask chat example served the way its ``run.sh`` does, ``python -m sio_wsgi app:app``
(threads, and patched first for gevent): a WebSocket client chats, SIGTERM ends it cleanly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import socketio

from tests.examples.examples_support import ExampleServer, need_client_js
from tests.runner.test_python_m import STOP_TIMEOUT, WEBSOCKETS, close_client, serving_lines
from tests.support import ROOT, wait_until

pytestmark = [pytest.mark.timeout(120)]

EXAMPLE = ROOT / "examples" / "flask_chat"


def test_run_sh_ends_with_python_m_sio_wsgi() -> None:
    lines = (EXAMPLE / "run.sh").read_text().strip().splitlines()
    assert lines[-1] == 'exec python -m sio_wsgi app:app "$@"'


@pytest.mark.parametrize("mode", ["threading", "gevent"])
def test_python_m_sio_wsgi_serves_the_flask_chat(mode: str, tmp_path: Path) -> None:
    need_client_js(EXAMPLE)
    argv = [sys.executable, "-m", "sio_wsgi", "app:app", "--port", "{port}"]
    if mode != "threading":
        argv += ["--async-mode", mode]
    server = ExampleServer(argv, EXAMPLE, tmp_path / "flask_chat.log")
    server.stop_timeout = STOP_TIMEOUT
    client = socketio.Client(reconnection=False)
    welcome: list[dict[str, object]] = []
    client.on("welcome", welcome.append)
    with server:
        assert f"async mode {mode})" in serving_lines(server)[0], server.log_text()
        client.connect(server.url, auth={"name": "ada"}, transports=["websocket"], wait_timeout=10)
        WEBSOCKETS.setdefault(id(client), []).append(client.eio.ws)
        try:
            wait_until(lambda: welcome, timeout=10, what="the welcome event")
            assert welcome[0]["name"] == "ada"
            assert server.stop() == 0, server.log_tail()
            wait_until(lambda: not client.connected, timeout=10, what="the disconnect")
        finally:
            close_client(client)
