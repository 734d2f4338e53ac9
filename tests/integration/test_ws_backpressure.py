"""WebSocket writes under backpressure: order kept, nothing lost, volatile dropped,
slow readers cut off past max_pending_bytes (threading mode, in-process werkzeug)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import websocket
from werkzeug.serving import make_server

from sio_wsgi import engineio
from sio_wsgi.engine.outgoing import Outgoing


@pytest.fixture
def eio_server() -> Iterator[tuple[engineio.Server, int]]:
    eio = engineio.Server(async_mode="threading", max_pending_bytes=50_000_000)
    srv = make_server("127.0.0.1", 0, engineio.WSGIApp(eio), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield eio, srv.server_port
    eio.shutdown()
    srv.shutdown()
    thread.join(5)


def _connect(port: int) -> tuple[websocket.WebSocket, str]:
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket", timeout=10
    )
    opened = ws.recv()
    assert opened.startswith("0{")
    import json

    return ws, json.loads(opened[1:])["sid"]


def test_full_kernel_buffer_keeps_order_and_drops_volatile(
    eio_server: tuple[engineio.Server, int],
) -> None:
    eio, port = eio_server
    ws, sid = _connect(port)
    chunk = "x" * 60_000
    count = 200  # ~12 MB: far more than the socket buffers hold
    for i in range(count):
        assert eio.engine.send(sid, Outgoing.messages([f"{i}:{chunk}"])) is True
    # the client is not reading: a writer is busy, so volatile packets are dropped
    assert eio.engine.send(sid, Outgoing.messages(["volatile"]), volatile=True) is False
    received = [ws.recv() for _ in range(count)]
    assert [int(r[1:].split(":", 1)[0]) for r in received] == list(range(count))
    # caught up: volatile goes through again
    deadline = time.monotonic() + 5
    while not eio.engine.send(sid, Outgoing.messages(["late"]), volatile=True):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ws.recv() == "4late"
    ws.close()


def test_client_that_stops_reading_is_disconnected() -> None:
    eio = engineio.Server(async_mode="threading", max_pending_bytes=2_000_000)
    reasons: list[str] = []
    eio.on("disconnect", lambda sid, reason: reasons.append(reason))
    srv = make_server("127.0.0.1", 0, engineio.WSGIApp(eio), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        ws, sid = _connect(srv.server_port)
        chunk = "y" * 100_000
        for _ in range(200):  # 20 MB to a client that never reads
            if not eio.engine.send(sid, Outgoing.messages([chunk])):
                break
        assert reasons == ["transport error"]
        assert sid not in eio.engine.sessions
        ws.close()
    finally:
        eio.shutdown()
        srv.shutdown()
        thread.join(5)
