"""Limits (each configured small in hostile_app.LIMITS) and faults.

Limits: bytes per POST, pending outbound bytes of a client that stops reading,
time to send CONNECT, slow request bodies. (Bytes per WebSocket message, the
upgrade timeout, a second concurrent GET, attachments per packet and JSON depth
are in the other catalogue files.)

Faults: a handler that raises, a handler that blocks, clients vanishing
mid-upgrade / mid-POST / mid-poll, and ``shutdown()``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest

from tests.hostile.hostile_app import LIMITS
from tests.hostile.hostile_clients import (
    HOST,
    RawWS,
    eio_get,
    eio_open,
    eio_post,
    eio_query,
    http,
    read_response,
    sio_polling_connect,
    ws_sio_connect,
)
from tests.hostile.hostile_support import HostileServer, assert_json_error, assert_session_gone

pytestmark = pytest.mark.timeout(60)

LIMIT = LIMITS["max_http_buffer_size"]


def raw_post_head(port: int, sid: str, length: int | None, chunked: bool = False) -> socket.socket:
    """Open a connection and send a POST head (no body yet)."""
    sock = socket.create_connection((HOST, port), timeout=10)
    head = f"POST {eio_query(sid)} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: text/plain\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    sock.sendall((head + "\r\n").encode())
    return sock


# ---------------------------------------------------------------- bytes per POST


def test_post_over_limit_by_content_length_is_413(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    r = eio_post(srv.port, sid, b"4" + b"x" * LIMIT)
    body = assert_json_error(r, 413)
    assert body["message"] == "Payload too large"
    assert_session_gone(srv, sid)
    srv.wait_log("POST body over")


def test_post_over_limit_announced_only_is_refused_unread(srv: HostileServer) -> None:
    """A 1 GB Content-Length is refused from the head: nothing is buffered."""
    sid, _, _ = eio_open(srv.port)
    with raw_post_head(srv.port, sid, 1_000_000_000) as sock:
        sock.sendall(b"4" + b"x" * 1000)
        data = sock.recv(65536)
        assert data.split(b" ", 2)[1] == b"413", data[:200]
    assert_session_gone(srv, sid)


def test_post_over_limit_chunked_is_413(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    with raw_post_head(srv.port, sid, None, chunked=True) as sock:
        chunk = b"4" + b"x" * 9999
        try:
            for _ in range(LIMIT // len(chunk) + 2):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the end
        data = sock.recv(65536)
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 411, 413), data[:300]  # 411/400: a server refusing chunked bodies
    assert_session_gone(srv, sid) if status == 413 else eio_post(srv.port, sid, "1")


# ---------------------------------------------------------------- pending outbound bytes


def test_websocket_client_that_stops_reading_is_dropped(srv: HostileServer) -> None:
    ws, _, sid = ws_sio_connect(srv.port)
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with ws:
        ws.send_text('42["flood",400,20000]')  # 8 MB towards a client that never reads
        assert srv.wait_disconnect(sid, timeout=10)["reason"] == "transport error"
    srv.wait_log("not reading")


def test_polling_client_that_stops_polling_is_dropped(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    assert eio_post(srv.port, sid, '42["flood",100,20000]').status == 200  # 2 MB, never fetched
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and srv.stats()["sessions"] > 1:
        time.sleep(0.05)
    assert_session_gone(srv, sid)
    srv.wait_log("not reading")


# ---------------------------------------------------------------- time to CONNECT


def test_connect_timeout_over_websocket(srv: HostileServer) -> None:
    with RawWS(srv.port) as ws:
        assert ws.recv_text().startswith("0{")
        started = time.monotonic()
        kind, _ = ws.expect_end(timeout=LIMITS["connect_timeout"] + 3)
        assert kind in ("close", "eof")
        assert time.monotonic() - started < LIMITS["connect_timeout"] + 2
    srv.wait_log("did not connect to a namespace in time")


def test_connect_timeout_over_polling(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    deadline = time.monotonic() + LIMITS["connect_timeout"] + 3
    texts = []
    while time.monotonic() < deadline:
        r = eio_get(srv.port, sid)
        if r.status != 200:
            break
        texts.append(r.text)
        if r.text.split("\x1e")[-1] == "1":
            break
        if r.text == "2":
            eio_post(srv.port, sid, "3")
    assert texts and texts[-1].split("\x1e")[-1] == "1", texts
    assert_session_gone(srv, sid)


# ---------------------------------------------------------------- slow request bodies


def test_slowloris_body_does_not_hold_the_session(srv: HostileServer) -> None:
    """A POST body trickling in (and then abandoned) costs nobody else anything;
    its session is closed by the heartbeat and nothing is left once it goes."""
    socks = []
    for _ in range(3):
        sid, _, _ = eio_open(srv.port)
        sock = raw_post_head(srv.port, sid, 10_000)
        sock.sendall(b"4")
        socks.append(sock)
    try:
        for _ in range(8):
            time.sleep(0.25)
            for sock in socks:
                with contextlib.suppress(OSError):  # cut at http_body_timeout
                    sock.sendall(b"x")
        srv.watcher.assert_alive()  # type: ignore[union-attr]
        srv.wait_settled(1)  # the session died of its missing pongs
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_slowloris_body_is_cut_at_http_body_timeout(srv: HostileServer, framing: str) -> None:
    """A body still trickling in after ``http_body_timeout`` is answered 408 with a
    JSON body and its connection is released: it does not hold a worker."""
    budget = LIMITS["http_body_timeout"]
    other, _, _ = ws_sio_connect(srv.port)
    sid, _, _ = eio_open(srv.port)
    chunked = framing == "chunked"
    sock = raw_post_head(srv.port, sid, None if chunked else 10_000, chunked=chunked)
    started = time.monotonic()
    with other, sock:
        answer = b""
        acks = 0
        sock.settimeout(0.05)
        while time.monotonic() - started < budget + 4 and not answer:
            try:
                sock.sendall(b"1\r\nx\r\n" if chunked else b"x")
            except OSError:  # the server shut its side: read what it answered
                pass
            acks += 1  # the client alongside is served all along
            other.send_text(f'42{acks}["echo","still here"]')
            assert other.wait_text(f"43{acks}") == f'43{acks}["still here"]'
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
        elapsed = time.monotonic() - started
        assert answer, "no answer within the budget"
        sock.settimeout(3)
        response = read_response(sock, answer, method="POST")
        assert_json_error(response, 408, 3)
        assert budget - 0.2 <= elapsed <= budget + 2.5, elapsed
    assert_session_gone(srv, sid)
    srv.wait_settled(1)


# ---------------------------------------------------------------- faults


def test_handler_that_raises_keeps_the_connection(srv: HostileServer) -> None:
    srv.allow_tracebacks()
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        for i in range(3):
            ws.send_text(f'42{i}["boom"]')
        ws.send_text('429["echo","alive"]')
        assert ws.wait_text("439") == '439["alive"]'
        ws.send_text("1")
        ws.expect_end()
    line = srv.wait_log("boom: a handler failing on purpose")
    assert "RuntimeError" in line or "ERROR" in srv.new_log()


def test_blocking_handler_does_not_stop_heartbeats(srv: HostileServer) -> None:
    blocker, _, _ = ws_sio_connect(srv.port)
    other, _, _ = ws_sio_connect(srv.port)
    watcher = srv.watcher
    assert watcher is not None
    with blocker, other:
        pings, ticks = watcher.pings, watcher.ticks
        blocker.send_text('421["block",3]')
        started = time.monotonic()
        other.send_text('422["echo","meanwhile"]')
        assert other.wait_text("432") == '432["meanwhile"]'
        assert time.monotonic() - started < 1.0
        # the blocker's own heartbeat goes on too: it gets pings and its pongs count
        ack = blocker.wait_text("431", timeout=6)
        assert ack == '431["unblocked"]'
        assert time.monotonic() - started >= 2.9
        assert watcher.pings >= pings + 2, (pings, watcher.pings)
        assert watcher.ticks >= ticks + 20, (ticks, watcher.ticks)
        assert blocker.eio_pings >= 2
        for ws in (blocker, other):
            ws.send_text("1")
            ws.expect_end()


def test_vanish_mid_upgrade(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    ws = RawWS(srv.port, eio_query(sid, "websocket"))
    ws.send_text("2probe")
    assert ws.recv_text() == "3probe"
    ws.close()  # gone, and no more polling either: the heartbeat must clean up
    srv.wait_settled(1)


def test_vanish_after_upgrade_probe_with_get_pending(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(eio_get(srv.port, sid).status), daemon=True)
    t.start()
    time.sleep(0.1)
    ws = RawWS(srv.port, eio_query(sid, "websocket"))
    ws.send_text("2probe")
    assert ws.recv_text() == "3probe"
    ws.send_raw(RawWS.frame(1, b"5")[:3])  # half of the upgrade packet
    ws.close()
    t.join(5)
    assert got == [200]
    srv.wait_settled(1)


def test_vanish_mid_post(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    with raw_post_head(srv.port, sid, 5000) as sock:
        sock.sendall(b'42["echo","' + b"z" * 1000)
    srv.wait_settled(1)


def test_vanish_mid_long_poll(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    sock = socket.create_connection((HOST, srv.port), timeout=5)
    sock.sendall(f"GET {eio_query(sid)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(0.2)
    sock.close()
    srv.wait_settled(1)


def test_vanish_websocket_without_close_frame(srv: HostileServer) -> None:
    ws, _, sid = ws_sio_connect(srv.port)
    ws.send_raw(RawWS.frame(1, b'42["echo","half')[:8])
    ws.close()
    assert srv.wait_disconnect(sid)["reason"] == "transport close"


def test_many_clients_connect_and_vanish(srv: HostileServer) -> None:
    """50 WebSocket and 20 polling clients come and go abruptly."""
    for _ in range(50):
        ws, _, _ = ws_sio_connect(srv.port)
        ws.close()
    for _ in range(20):
        sio_polling_connect(srv.port)
    srv.wait_settled(1)


def test_shutdown_disconnects_everyone_with_a_reason(fresh_server: HostileServer) -> None:
    srv = fresh_server
    base_fds = srv.stats()["fds"]
    clients = [ws_sio_connect(srv.port) for _ in range(3)]
    poll_sid, _ = sio_polling_connect(srv.port)
    sids = [sid for _, _, sid in clients]
    assert srv.stats()["sessions"] == 4
    assert srv.post("/_hostile/shutdown") == {"ok": True}
    for ws, _, _ in clients:
        kind, _ = ws.expect_end(timeout=5)
        assert kind in ("close", "eof")
        ws.close()
    r = eio_get(srv.port, poll_sid)
    assert r.status == 400 or r.text.split("\x1e")[-1] == "1", r
    stats = srv.stats()
    assert stats["sessions"] == 0 and stats["clients"] == 0, stats
    reasons = {e["sid"]: e["reason"] for e in srv.disconnects()}
    assert all(reasons.get(sid) == "server shutting down" for sid in sids), reasons
    assert len(reasons) == 4, reasons
    refused = http(srv.port, "GET", eio_query())
    assert refused.status in (400, 403), refused
    json.loads(refused.body)
    # every client socket is released; a reading can count the previous stats request's
    # own socket, which the server closes just after its answer: judge the last reading
    deadline = time.monotonic() + 8
    stats = srv.stats()
    while stats["fds"] > base_fds and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = srv.stats()
    assert stats["fds"] <= base_fds, (base_fds, stats)
    assert "Traceback" not in srv.log_text(), srv.log_tail()


def test_inbound_backlog_behind_a_blocked_handler_is_bounded(
    fresh_server: HostileServer,
) -> None:
    srv = fresh_server
    before = srv.stats()["rss"]
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        ws.send_text('421["block",3]')
        payload = '42["echo","' + "q" * 30_000 + '"]'
        try:
            for _ in range(3000):  # 90 MB of events queued behind the blocked handler
                ws.send_text(payload)
        except OSError:
            pass  # disconnected for flooding: what a bounded queue may do
        growth = srv.stats()["rss"] - before
    assert growth < 50 * 1024 * 1024, f"RSS grew by {growth / 1e6:.0f} MB"
