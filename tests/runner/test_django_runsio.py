"""``python manage.py runsio`` (``sio_wsgi.django``) serving the Django chat example, WebSocket
included, in each way it runs: in-process (threading), and handed over to
``python -m sio_wsgi`` for gevent; SIGTERM ends both gracefully.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import socketio

from tests.examples import test_django_chat_browser as django_example
from tests.examples.examples_support import ExampleServer
from tests.runner.test_python_m import STOP_TIMEOUT, WEBSOCKETS, close_client, serving_lines
from tests.support import HOST, port_open, wait_until

pytestmark = [pytest.mark.timeout(180)]

EXAMPLE = django_example.EXAMPLE
login_cookie = django_example.login_cookie
#: the example tests' fixture: a fresh database with the demo users
django_env = django_example.django_env


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--noreload"], "(werkzeug, threaded, async mode threading)"),
        (["--noreload", "--async-mode", "gevent"], "(gevent.pywsgi, async mode gevent)"),
        (["--noreload", "--async-mode", "eventlet"], "(eventlet.wsgi, async mode eventlet)"),
    ],
    ids=["threading", "gevent", "eventlet"],
)
def test_runsio_serves_the_example_with_websocket(
    django_env: dict[str, str], tmp_path: Path, options: list[str], expected: str
) -> None:
    argv = [sys.executable, "manage.py", "runsio", f"{HOST}:{{port}}", *options]
    server = ExampleServer(argv, EXAMPLE, tmp_path / "runsio.log", env=django_env)
    server.stop_timeout = STOP_TIMEOUT
    client = socketio.Client(reconnection=False)
    with server:
        first = serving_lines(server)[0]
        assert first.endswith(f"serving on {server.url} {expected}"), server.log_text()
        welcome: list[dict[str, object]] = []
        client.on("welcome", welcome.append)
        client.connect(
            server.url,
            headers={"Cookie": login_cookie(server.url, "alice")},
            transports=["websocket"],
            wait_timeout=10,
        )
        try:
            assert client.transport() == "websocket"
            wait_until(lambda: welcome, timeout=10, what="the welcome event")
            assert welcome[0]["name"] == "alice"
            assert client.call("join", {"room": "python"}, timeout=10)["ok"] is True
            WEBSOCKETS.setdefault(id(client), []).append(client.eio.ws)
            assert server.stop() == 0, server.log_tail()
            wait_until(lambda: not client.connected, timeout=10, what="the disconnect")
        finally:
            close_client(client)
    assert server.log_text().rstrip().endswith("sio_wsgi stopped"), server.log_tail()


def test_runsio_with_djangos_autoreloader(django_env: dict[str, str], tmp_path: Path) -> None:
    """The default: Django's autoreloader runs the server in a child process (as runserver)."""
    argv = [sys.executable, "manage.py", "runsio", f"{HOST}:{{port}}"]
    server = ExampleServer(argv, EXAMPLE, tmp_path / "runsio.log", env=django_env)
    server.stop_timeout = STOP_TIMEOUT
    client = socketio.Client(reconnection=False)
    with server:
        assert "Watching for file changes" in server.log_text(), server.log_text()
        assert f"serving on {server.url} (werkzeug, threaded" in server.log_text()
        client.connect(
            server.url,
            headers={"Cookie": login_cookie(server.url, "bob")},
            transports=["websocket"],
            wait_timeout=10,
        )
        WEBSOCKETS.setdefault(id(client), []).append(client.eio.ws)
        try:
            assert client.transport() == "websocket"
        finally:
            close_client(client)
    assert not port_open(server.port), "still served after the stop"
