"""Hostile WebSocket: handshakes, frames, Engine.IO packets over WebSocket, upgrades,
and the cross-site WebSocket hijacking defence (Origin checked on the upgrade)."""

from __future__ import annotations

import json
import struct
import time

import pytest

from tests.hostile.hostile_clients import (
    HOST,
    RawWS,
    eio_close,
    eio_get,
    eio_open,
    eio_query,
    ws_sio_connect,
)
from tests.hostile.hostile_support import HostileServer, assert_json_error, assert_session_gone

pytestmark = pytest.mark.timeout(60)

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


def connected(srv: HostileServer) -> tuple[RawWS, str]:
    """A WebSocket Socket.IO client on ``/``; returns ``(ws, sio_sid)``."""
    ws, _, sid = ws_sio_connect(srv.port)
    return ws, sid


def assert_protocol_close(
    srv: HostileServer, ws: RawWS, sid: str, codes: tuple[int, ...], reason: str = "parse error"
) -> None:
    """The server closed ``ws`` with one of ``codes`` and ran the disconnect handler."""
    kind, code = ws.expect_end()
    assert kind == "close" and code in codes, (kind, code)
    ws.close()
    assert srv.wait_disconnect(sid)["reason"] == reason


# ---------------------------------------------------------------- handshake


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Key": None}, 400),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"}, 400),
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Version": None}, 400),
    ],
    ids=["no-key", "short-key", "bad-base64-key", "version-8", "no-version"],
)
def test_bad_handshake_is_4xx_json(
    srv: HostileServer, headers: dict[str, str | None], status: int
) -> None:
    with RawWS(srv.port, headers=headers) as ws:
        assert ws.status == status, (ws.status, ws.body)
        body = json.loads(ws.body)
        assert body["code"] == 3, body
        if status == 426:
            assert ("sec-websocket-version", "13") in ws.headers


def test_upgrade_header_missing_is_not_a_websocket(srv: HostileServer) -> None:
    with RawWS(srv.port, headers={"Upgrade": None, "Connection": "keep-alive"}) as ws:
        assert 400 <= ws.status < 500, ws.status


@pytest.mark.parametrize("origin", ["http://evil.example", "null", f"http://{HOST}:1"])
def test_cross_site_websocket_hijacking_refused(srv: HostileServer, origin: str) -> None:
    with RawWS(srv.port, headers={"Origin": origin}) as ws:
        assert ws.status == 403, ws.status
        assert json.loads(ws.body) == {"code": 4, "message": "Forbidden"}
    # an existing polling session cannot be upgraded cross-site either
    sid, _, _ = eio_open(srv.port)
    with RawWS(srv.port, eio_query(sid, "websocket"), headers={"Origin": origin}) as ws:
        assert ws.status == 403, ws.status
    eio_close(srv.port, sid)


def test_same_origin_websocket_allowed(srv: HostileServer) -> None:
    with RawWS(srv.port, headers={"Origin": f"http://{HOST}:{srv.port}"}) as ws:
        assert ws.status == 101
        assert ws.recv_text().startswith("0{")
        ws.send_text("1")
        ws.expect_end()


# ---------------------------------------------------------------- frames


@pytest.mark.parametrize(
    ("frame", "codes"),
    [
        (RawWS.frame(TEXT, b'42["echo"]', mask=False), (1002,)),
        (RawWS.frame(TEXT, b'42["echo"]', rsv=4), (1002,)),
        (RawWS.frame(3, b"x"), (1002,)),
        (RawWS.frame(0x0B, b"x"), (1002,)),
        (RawWS.frame(CONT, b"x"), (1002,)),
        (RawWS.frame(PING, b"p" * 126), (1002,)),
        (RawWS.frame(PING, b"p", fin=False), (1002,)),
        (RawWS.frame(CLOSE, b"\x03"), (1002,)),
        (RawWS.frame(CLOSE, struct.pack("!H", 999)), (1002,)),
        (RawWS.frame(TEXT, b'42["\xff"]'), (1007,)),
        (RawWS.frame(TEXT, b"4\xed\xa0\x80"), (1007,)),
        (RawWS.frame(TEXT, b"4" + b"\xc0\xaf"), (1007,)),
        (RawWS.frame(TEXT, b"x", length=1 << 63), (1002,)),
        (RawWS.frame(TEXT, b"", fin=False) + RawWS.frame(BINARY, b"x"), (1002,)),
    ],
    ids=[
        "unmasked",
        "rsv-bits",
        "opcode-3",
        "opcode-0xb",
        "orphan-continuation",
        "long-ping",
        "fragmented-ping",
        "close-1-byte",
        "close-code-999",
        "bad-utf8",
        "utf8-surrogate",
        "overlong-utf8",
        "length-top-bit",
        "interleaved-message",
    ],
)
def test_bad_frame_closes_with_code(
    srv: HostileServer, frame: bytes, codes: tuple[int, ...]
) -> None:
    ws, sid = connected(srv)
    with ws:
        ws.send_raw(frame)
        assert_protocol_close(srv, ws, sid, codes)
    srv.wait_log("protocol error")


def test_oversized_message_refused_from_its_header(srv: HostileServer) -> None:
    """A 100 MB frame is refused (1009) after its header, without the payload."""
    ws, sid = connected(srv)
    with ws:
        ws.send_raw(RawWS.frame(TEXT, b"", length=100_000_000)[:14])
        assert_protocol_close(srv, ws, sid, (1009,))


def test_oversized_fragmented_message_refused(srv: HostileServer) -> None:
    ws, sid = connected(srv)
    with ws:
        part = b"4" + b"x" * 30_000
        ws.send_frame(TEXT, part, fin=False)
        ws.send_frame(CONT, b"x" * 30_000, fin=False)
        ws.send_frame(CONT, b"x" * 30_000, fin=True)  # 90 KB > 64 KB
        assert_protocol_close(srv, ws, sid, (1009,))


def test_message_at_the_limit_is_accepted(srv: HostileServer) -> None:
    ws, _ = connected(srv)
    with ws:
        payload = '42["echo","' + "y" * (64_000 - 16) + '"]'
        assert len(payload.encode()) <= 64_000
        ws.send_text(payload[:2] + "1" + payload[2:])
        assert ws.wait_text("431").endswith('y"]')
        ws.send_text("1")
        ws.expect_end()


def test_fragmented_and_control_interleaved_still_work(srv: HostileServer) -> None:
    """Control: fragments with pings between them are reassembled."""
    ws, _ = connected(srv)
    with ws:
        ws.send_frame(TEXT, b'425["ec', fin=False)
        ws.send_frame(PING, b"hi")
        ws.send_frame(CONT, b'ho","', fin=False)
        ws.send_frame(PONG, b"")
        ws.send_frame(CONT, "\u00e9".encode()[:1], fin=False)  # UTF-8 split across fragments
        ws.send_frame(CONT, "\u00e9".encode()[1:] + b'"]', fin=True)
        assert ws.wait_text("435") == '435["\u00e9"]'
        ws.send_text("1")
        ws.expect_end()


def test_client_close_frame_ends_session(srv: HostileServer) -> None:
    ws, sid = connected(srv)
    with ws:
        ws.send_frame(CLOSE, struct.pack("!H", 1000) + b"bye")
        kind, _ = ws.expect_end()
        assert kind in ("close", "eof")
    assert srv.wait_disconnect(sid)["reason"] == "transport close"


# ---------------------------------------------------------------- Engine.IO packets


@pytest.mark.parametrize(
    "text",
    ["", "9", "x", "0", "0{}", "5", "\x1e", "42\x1e42"],
    ids=["empty", "type-9", "letter", "open", "open-json", "upgrade", "separator", "payload-in-ws"],
)
def test_bad_engineio_packet_over_websocket(srv: HostileServer, text: str) -> None:
    ws, sid = connected(srv)
    with ws:
        ws.send_text(text)
        kind, code = ws.expect_end()
        assert kind == "close", (kind, code)
    assert srv.wait_disconnect(sid)["reason"] == "parse error"


def test_engineio_ping_from_client_is_answered(srv: HostileServer) -> None:
    """Control: a client ping gets a pong with the same data."""
    ws, _ = connected(srv)
    with ws:
        ws.send_text("2hello")
        assert ws.wait_text("3") == "3hello"
        ws.send_text("1")
        ws.expect_end()


# ---------------------------------------------------------------- upgrades


def test_upgrade_of_websocket_session_refused(srv: HostileServer) -> None:
    """A second WebSocket for a WebSocket session is accepted and closed at once
    (as the Node server does); the first one goes on."""
    ws, eio_sid, _ = ws_sio_connect(srv.port)
    with ws, RawWS(srv.port, eio_query(eio_sid, "websocket")) as second:
        assert second.status == 101, second.status
        assert second.recv()[0] in ("close", "eof")
        ws.send_text('421["echo",1]')
        assert ws.wait_text("431") == "431[1]"
        ws.send_text("1")
        ws.expect_end()


def test_second_concurrent_upgrade_refused(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    with RawWS(srv.port, eio_query(sid, "websocket")) as first:
        assert first.status == 101
        with RawWS(srv.port, eio_query(sid, "websocket")) as second:
            assert second.status == 101
            assert second.recv()[0] in ("close", "eof")
        first.send_text("2probe")
        assert first.recv_text() == "3probe"
        first.send_text("5")
        first.send_text("1")
        first.expect_end()
    assert_session_gone(srv, sid)


@pytest.mark.parametrize(
    "first",
    [b"", RawWS.frame(TEXT, b"5"), RawWS.frame(TEXT, b"2nope"), RawWS.frame(BINARY, b"2probe")],
    ids=["silent", "upgrade-without-probe", "bad-probe", "binary-probe"],
)
def test_bad_or_stalled_upgrade_leaves_polling_working(srv: HostileServer, first: bytes) -> None:
    """A failed or stalled upgrade is dropped (within ``upgrade_timeout``) and the
    session goes on over polling."""
    sid, _ = sio_connect_polling(srv)
    started = time.monotonic()
    with RawWS(srv.port, eio_query(sid, "websocket")) as ws:
        assert ws.status == 101
        if first:
            ws.send_raw(first)
        kind, _ = ws.expect_end(timeout=5)
        assert kind in ("close", "eof")
    assert time.monotonic() - started < 4.0
    r = http_echo_over_polling(srv, sid)
    assert r == '431["after"]', r
    eio_close(srv.port, sid)


def test_polling_get_during_upgrade_gets_noop(srv: HostileServer) -> None:
    sid, _ = sio_connect_polling(srv)
    with RawWS(srv.port, eio_query(sid, "websocket")) as ws:
        ws.send_text("2probe")
        assert ws.recv_text() == "3probe"
        r = eio_get(srv.port, sid)
        assert r.status == 200 and r.text in ("6", "2", "2\x1e6"), r
        ws.send_text("5")
        ws.send_text('421["echo","upgraded"]')
        assert ws.wait_text("431") == '431["upgraded"]'
        assert_json_error(eio_get(srv.port, sid), 400, 3)  # polling is over for this sid
        ws.send_text("1")
        ws.expect_end()


def sio_connect_polling(srv: HostileServer) -> tuple[str, str]:
    from tests.hostile.hostile_clients import sio_polling_connect

    return sio_polling_connect(srv.port)


def http_echo_over_polling(srv: HostileServer, sid: str) -> str:
    from tests.hostile.hostile_clients import eio_post

    assert eio_post(srv.port, sid, '421["echo","after"]').status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pkt in eio_get(srv.port, sid).text.split("\x1e"):
            if pkt.startswith("43"):
                return pkt
            if pkt == "2":
                eio_post(srv.port, sid, "3")
    return ""
