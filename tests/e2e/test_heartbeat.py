"""Heartbeat timeout and plain HTTP checks with raw clients (no Socket.IO client library).

The heartbeat server runs with ping_interval 0.3 s and ping_timeout 0.2 s. A raw
client completes the Engine.IO handshake and the Socket.IO CONNECT, then never
answers a ping; the server's disconnect handler must run soon after
(``ping_interval + ping_timeout`` = 0.5 s, plus scheduling slack).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import websocket

__all__: list[str] = []

PING_INTERVAL = 0.3
PING_TIMEOUT = 0.2
#: bound on handshake -> disconnect handler (spec: 0.5 s; "~1 s" with slack for busy CI)
DEADLINE = 1.5
RS = "\x1e"


def _http(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "text/plain;charset=UTF-8")
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode(errors="replace")


def _sio_sid(packets: list[str]) -> str | None:
    for pkt in packets:
        if pkt.startswith("40{"):
            sid: str = json.loads(pkt[2:])["sid"]
            return sid
    return None


@pytest.fixture
def hb_server(live_server: Any, async_mode: str) -> Any:
    """Shared server with the fast heartbeat."""
    return live_server(async_mode, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)


def _assert_timed_out(srv: Any, sid: str, t0: float) -> float:
    """Wait for the disconnect log entry of ``sid``; check reason and delay.

    :returns: seconds from ``t0`` to seeing the entry.
    """
    entry = None
    deadline = time.monotonic() + 3.0
    while entry is None and time.monotonic() < deadline:
        found = srv.disconnects(sid)
        entry = found[0] if found else None
        if entry is None:
            time.sleep(0.02)
    elapsed = time.monotonic() - t0
    assert entry is not None, f"disconnect handler never ran for {sid}\n{srv.log_tail()}"
    accepted = ("ping timeout",) if srv.impl == "sio_wsgi" else ("ping timeout", "transport close")
    assert entry["reason"] in accepted, entry  # python-engineio/eventlet says 'transport close'
    assert elapsed < DEADLINE, f"ping timeout took {elapsed:.2f} s"
    return elapsed


def test_heartbeat_timeout_polling(hb_server: Any) -> None:
    """A polling client that stops polling and never pongs is dropped with 'ping timeout'."""
    base = hb_server.url + "/socket.io/?EIO=4&transport=polling"
    status, body = _http(base)
    assert status == 200 and body.startswith("0{"), body
    open_pkt = json.loads(body[1:])
    assert open_pkt["pingInterval"] == 300 or hb_server.impl == "socketio"
    assert open_pkt["pingTimeout"] == 200
    esid = open_pkt["sid"]
    status, body = _http(f"{base}&sid={esid}", b"40")
    assert (status, body.lower()) == (200, "ok")  # python-engineio says "OK"
    status, body = _http(f"{base}&sid={esid}")
    t0 = time.monotonic()
    assert status == 200, body
    sid = _sio_sid(body.split(RS))
    assert sid, body
    _assert_timed_out(hb_server, sid, t0)
    status, _ = _http(f"{base}&sid={esid}")
    assert status == 400, "the timed-out session must be gone"


def test_heartbeat_timeout_websocket(hb_server: Any) -> None:
    """A websocket client that reads pings but never answers is dropped with 'ping timeout'."""
    url = hb_server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=3)
    try:
        first = ws.recv()
        assert isinstance(first, str) and first.startswith("0{"), first
        assert json.loads(first[1:])["upgrades"] == []
        ws.send("40")
        seen: list[str] = []
        sid = None
        deadline = time.monotonic() + 3
        while sid is None and time.monotonic() < deadline:
            msg = ws.recv()
            seen.append(msg if isinstance(msg, str) else repr(msg))
            sid = _sio_sid(seen)
        t0 = time.monotonic()
        assert sid, seen
        closed = False
        ws.settimeout(0.2)
        while time.monotonic() - t0 < DEADLINE + 0.5 and not closed:
            try:
                msg = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, OSError):
                closed = True
                break
            if msg in ("", b""):
                closed = True
            else:
                seen.append(msg if isinstance(msg, str) else repr(msg))
        _assert_timed_out(hb_server, sid, t0)
        assert "2" in seen, f"no ping received: {seen}"
        assert closed, f"server did not close the websocket: {seen}"
    finally:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.close(timeout=0.5)
        ws.shutdown()  # closes the socket even when close() gave up early


def test_blocked_handler_does_not_stop_pongs(hb_server: Any) -> None:
    """A handler blocking its thread for 1.5 s (six ping intervals) while the client
    keeps answering pings: the client stays connected and gets the ack.

    In threading mode the handler runs on the WebSocket reader; the reading must
    move to another thread, or the pongs are not read and the client times out.
    """
    url = hb_server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=3)
    try:
        assert ws.recv().startswith("0{")
        ws.send("40")
        seen: list[str] = []
        deadline = time.monotonic() + 3
        while _sio_sid(seen) is None and time.monotonic() < deadline:
            seen.append(ws.recv())
        sid = _sio_sid(seen)
        assert sid, seen
        ws.send('421["block",1.5]')
        ws.settimeout(0.1)
        ack, pings = None, 0
        deadline = time.monotonic() + 4
        while ack is None and time.monotonic() < deadline:
            try:
                msg = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if msg == "2":
                pings += 1
                ws.send("3")
            elif isinstance(msg, str) and msg.startswith("431"):
                ack = msg
        assert ack == "431[1.5]", (ack, hb_server.log_tail())
        assert pings >= 3, pings
        assert not hb_server.disconnects(sid), hb_server.disconnects(sid)
    finally:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.close(timeout=0.5)
        ws.shutdown()


def test_http_fallthrough_and_handshake(server: Any) -> None:
    """Non-Socket.IO paths reach Flask; the Socket.IO path answers the handshake."""
    status, body = _http(server.url + "/")
    assert (status, body) == (200, "e2e flask index")
    status, body = _http(server.url + "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith("0{")
    handshake = json.loads(body[1:])
    assert set(handshake) >= {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert handshake["upgrades"] == ["websocket"]
    status, _ = _http(server.url + "/socket.io/?EIO=3&transport=polling")
    assert status == 400
    status, _ = _http(server.url + "/socket.io/?EIO=4&transport=carrier-pigeon")
    assert status == 400
    status, _ = _http(server.url + "/socket.io/?EIO=4&transport=polling&sid=nope")
    assert status == 400
