"""A second WebSocket for a session that a WebSocket already carries (or is being
upgraded to) is accepted (101) and closed at once, as the Node server does; the
session's own WebSocket goes on. The Engine.IO layer alone, threading mode,
in-process werkzeug (the official suites' ports in tests/conformance run it too)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
import websocket
from werkzeug.serving import make_server

from sio_wsgi import engineio


@pytest.fixture
def port() -> Iterator[int]:
    eio = engineio.Server(async_mode="threading")
    eio.on("message", lambda sid, data: eio.send(sid, data))  # echo
    srv = make_server("127.0.0.1", 0, engineio.WSGIApp(eio), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_port
    eio.shutdown()
    srv.shutdown()
    thread.join(5)


def _polling_session(port: int) -> str:
    url = f"http://127.0.0.1:{port}/engine.io/?EIO=4&transport=polling"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    return str(json.loads(body[1:])["sid"])


def _ws(port: int, sid: str) -> websocket.WebSocket:
    url = f"ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket&sid={sid}"
    # raises WebSocketBadStatusException on anything but 101
    return websocket.create_connection(url, timeout=5)


def _closed_at_once(ws: websocket.WebSocket) -> bool:
    try:
        opcode, _ = ws.recv_data(control_frame=True)
    except (websocket.WebSocketConnectionClosedException, OSError):
        return True
    return opcode == websocket.ABNF.OPCODE_CLOSE


def test_after_the_upgrade(port: int) -> None:
    sid = _polling_session(port)
    first = _ws(port, sid)
    first.send("2probe")
    assert first.recv() == "3probe"
    first.send("5")
    second = _ws(port, sid)  # 101, not 400
    assert _closed_at_once(second)
    second.shutdown()
    first.send("4hello")
    assert first.recv() == "4hello"  # the session's own WebSocket goes on
    first.close()


def test_during_the_upgrade(port: int) -> None:
    sid = _polling_session(port)
    first = _ws(port, sid)  # the session is UPGRADING from here on
    second = _ws(port, sid)
    assert _closed_at_once(second)
    second.shutdown()
    first.send("2probe")
    assert first.recv() == "3probe"
    first.send("5")
    first.send("4still here")
    assert first.recv() == "4still here"
    first.close()
