"""Hostile Socket.IO: packets, JSON, binary attachments, namespaces, ack ids, UTF-8.

Socket.IO-level protocol errors close the whole connection (reason "parse error");
what the protocol allows but the application does not expect (unknown
namespace, unknown ack id, unknown event) is answered or ignored, and the
connection stays.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.hostile.hostile_clients import (
    RawWS,
    eio_get,
    eio_post,
    sio_polling_connect,
    ws_sio_connect,
)
from tests.hostile.hostile_support import HostileServer, assert_json_error

pytestmark = pytest.mark.timeout(60)


def rejected_over_ws(srv: HostileServer, messages: list[str | bytes]) -> None:
    """Send ``messages`` on a connected WebSocket client: the server closes it
    ("parse error") and runs the disconnect handler once."""
    ws, _, sid = ws_sio_connect(srv.port)
    with ws:
        for m in messages:
            if isinstance(m, bytes):
                ws.send_binary(m)
            else:
                ws.send_text(m)
        kind, _ = ws.expect_end()
        assert kind in ("close", "eof")
    assert srv.wait_disconnect(sid)["reason"] == "parse error"
    srv.wait_log("invalid packet")


def still_connected(ws: RawWS, ack: int = 77) -> None:
    """An echo with an ack still comes back on ``ws``."""
    ws.send_text(f'42{ack}["echo","ok"]')
    assert ws.wait_text(f"43{ack}") == f'43{ack}["ok"]'


def bye(ws: RawWS) -> None:
    ws.send_text("1")
    ws.expect_end()


# ---------------------------------------------------------------- packets


@pytest.mark.parametrize(
    "text",
    [
        "4",
        "49",
        "4x",
        "47",
        "48[]",  # bad / unknown types
        '44{"message":"spoofed"}',  # CONNECT_ERROR from a client
        '42{"not":"an array"}',
        "42[]",
        "42[1]",  # bad event payloads
        '42["connect"]',
        '42["disconnect"]',
        '42["newListener"]',  # reserved names
        '41["payload"]',  # DISCONNECT with data
        '43["no id"]',
        '431{"x":1}',  # bad acks
        '40"string auth"',  # CONNECT with non-object auth
    ],
    ids=[
        "bare-4",
        "type-9",
        "letter",
        "type-7",
        "type-8",
        "connect-error",
        "event-object",
        "event-empty",
        "event-int-name",
        "reserved-connect",
        "reserved-disconnect",
        "reserved-newListener",
        "disconnect-data",
        "ack-no-id",
        "ack-object",
        "connect-str",
    ],
)
def test_bad_socketio_packet_closes(srv: HostileServer, text: str) -> None:
    rejected_over_ws(srv, [text])


def test_bad_socketio_packet_over_polling(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    assert eio_post(srv.port, sid, '42{"x":1}').status == 200  # Engine.IO-valid: accepted
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # ...then the session is closed by the Socket.IO layer
        r = eio_get(srv.port, sid)
        if r.status == 400 or r.text.endswith("1"):
            break
    assert_json_error(eio_get(srv.port, sid), 400, 1)


# ---------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "text",
    [
        '42["echo"',  # truncated
        '42["echo",NaN]',
        '42["echo",Infinity]',  # not JSON
        "42['echo']",  # single quotes
        '42["echo"]]',  # trailing garbage
        '42["echo",' + "1" * 5000 + "]",  # int beyond str-digits limit
        '42["echo",' + "[" * 17 + "]" * 17 + "]",  # depth 18 > max_json_depth 16
        '42["echo",' + '{"a":' * 40 + "1" + "}" * 40 + "]",  # deep objects
        '42["echo",' + "[" * 100_00 + "]" * 100_00 + "]",  # deep enough for RecursionError
    ],
    ids=[
        "truncated",
        "nan",
        "infinity",
        "single-quotes",
        "trailing",
        "huge-int",
        "depth-18",
        "deep-objects",
        "recursion",
    ],
)
def test_bad_json_closes(srv: HostileServer, text: str) -> None:
    rejected_over_ws(srv, [text])


def test_json_within_limits_is_fine(srv: HostileServer) -> None:
    srv.allow_tracebacks()  # the +inf ack cannot be encoded: logged with its traceback
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        nested = "[" * 14 + "]" * 14  # depth 15 with the event array
        ws.send_text(f'421["echo",{nested}]')
        assert ws.wait_text("431") == f"431[{nested}]"
        ws.send_text('422["echo",1e999]')  # a float overflow is +inf, not an error...
        ws.send_text('423["echo","\\u0000\\t"]')
        # ...but cannot be sent back as JSON: the ack is dropped (and logged), the connection stays
        assert ws.wait_text("433") == '433["\\u0000\\t"]'
        still_connected(ws)
        bye(ws)


# ---------------------------------------------------------------- binary attachments


@pytest.mark.parametrize(
    "messages",
    [
        ['454-["echo",{"_placeholder":true,"num":0}]'],  # 4 > max_attachments 3
        ['45999999-["echo"]'],  # absurd count
        ['45-1-["echo"]'],  # negative count
        ['45["echo"]'],  # no count
        ['451-["echo",{"_placeholder":true,"num":5}]'],  # placeholder out of range
        ['452-["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]'],  # dup
        ['451-["echo",{"_placeholder":true,"num":"0"}]'],  # num not an int
        [
            '451-["echo",{"_placeholder":true,"num":0}]',
            '42["text instead"]',
        ],  # text where binary expected
        [b"\x00\x01unexpected"],  # binary with no packet
        ['461-["x"]'],  # binary ack without id
    ],
    ids=[
        "over-max",
        "absurd-count",
        "negative",
        "no-count",
        "placeholder-range",
        "placeholder-dup",
        "placeholder-str",
        "text-for-attachment",
        "orphan-binary",
        "binary-ack-no-id",
    ],
)
def test_bad_attachments_close(srv: HostileServer, messages: list[str | bytes]) -> None:
    rejected_over_ws(srv, messages)


def test_attachments_at_the_limit_work(srv: HostileServer) -> None:
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        ph = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(3))
        ws.send_text(f'453-1["echo",{ph}]')
        for i in range(3):
            ws.send_binary(bytes([i]) * 10)
        header = ws.wait_text("463-1")
        assert json.loads(header[len("463-1") :]) == [
            {"_placeholder": True, "num": i} for i in range(3)
        ]
        for i in range(3):
            kind, data = ws.recv()
            assert (kind, data) == ("binary", bytes([i]) * 10)
        still_connected(ws)
        bye(ws)


def test_vanish_mid_binary_message(srv: HostileServer) -> None:
    """A client announcing 3 attachments and leaving after one leaves nothing behind."""
    ws, _, sid = ws_sio_connect(srv.port)
    ph = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(3))
    ws.send_text(f'453-["echo",{ph}]')
    ws.send_binary(b"x" * 30_000)
    ws.send_raw(RawWS.frame(2, b"y" * 30_000)[:1000])  # half a frame of the second one
    ws.close()
    assert srv.wait_disconnect(sid)["reason"] == "transport close"


# ---------------------------------------------------------------- namespaces


def test_unknown_namespace_is_refused_connection_stays(srv: HostileServer) -> None:
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        for ns in ("/nope", "/" + "n" * 5000, "/\u00e9\u202e", "/chat/../admin"):
            ws.send_text(f"40{ns},")
            reply = ws.wait_text(f"44{ns},")
            assert json.loads(reply[len(f"44{ns},") :]) == {"message": "Invalid namespace"}
        still_connected(ws)
        bye(ws)


@pytest.mark.parametrize(
    "text", ["40chat,{}", "40,", '42chat,["echo"]'], ids=["no-slash", "empty", "event-no-slash"]
)
def test_namespace_without_slash_closes(srv: HostileServer, text: str) -> None:
    rejected_over_ws(srv, [text])


def test_events_to_unconnected_namespace_ignored(srv: HostileServer) -> None:
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        ws.send_text('42/chat,5["echo","not connected"]')  # not connected to /chat: ignored
        ws.send_text('42/nope,6["echo","unknown"]')
        ws.send_text('43/chat,9["late ack"]')
        ws.send_text("41/chat,")  # disconnect from a namespace never joined
        still_connected(ws)
        bye(ws)


def test_connect_twice_and_disconnect_namespace(srv: HostileServer) -> None:
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        ws.send_text("40/chat,")
        ws.wait_text("40/chat,{")
        ws.send_text("40/chat,")  # again: logged and ignored
        ws.send_text('42/chat,3["echo","c"]')
        assert ws.wait_text("43/chat,3") == '43/chat,3["c"]'
        ws.send_text("41/chat,")
        still_connected(ws)
        bye(ws)


# ---------------------------------------------------------------- ack ids


@pytest.mark.parametrize(
    "text",
    ['421234567890123456["echo"]', "43" + "9" * 20 + "[]", '42-1["echo"]'],
    ids=["16-digit-id", "20-digit-ack", "negative-id"],
)
def test_bad_ack_id_closes(srv: HostileServer, text: str) -> None:
    rejected_over_ws(srv, [text])


def test_unknown_and_repeated_acks_ignored(srv: HostileServer) -> None:
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        for ack in ("430[]", "43999999999999999[1]", '431["x"]', '431["x"]'):
            ws.send_text(ack)
        still_connected(ws)
        ws.send_text('42123456789012345["echo",15]')  # 15 digits: the longest allowed
        assert ws.wait_text("43123456789012345") == "43123456789012345[15]"
        bye(ws)


# ---------------------------------------------------------------- UTF-8


def test_lone_surrogates_do_not_break_the_receivers(srv: HostileServer) -> None:
    """JSON may carry "\\ud800"; sending it on must not break any connection
    (a raw surrogate cannot be encoded as UTF-8 by the transports)."""
    ws, _, _ = ws_sio_connect(srv.port)
    other, _, _ = ws_sio_connect(srv.port)
    with ws, other:
        ws.send_text('421["echo","\\ud800","a\\udfffb","\\ud83d\\ude00"]')
        ack = ws.wait_text("431")
        assert json.loads(ack[3:]) == ["\ud800", "a\udfffb", "\U0001f600"]
        ws.send_text('422["bcast","\\udc00"]')
        got = other.wait_text('42["bcast"')
        assert json.loads(got[2:]) == ["bcast", "\udc00"]
        still_connected(ws)
        still_connected(other, 78)
        bye(ws)
        bye(other)


def test_lone_surrogate_over_polling(srv: HostileServer) -> None:
    sid, _ = sio_polling_connect(srv.port)
    assert eio_post(srv.port, sid, '421["echo","\\ud800"]').status == 200
    deadline = time.monotonic() + 4
    found = ""
    while not found and time.monotonic() < deadline:
        r = eio_get(srv.port, sid)
        assert r.status == 200, r
        found = next((p for p in r.text.split("\x1e") if p.startswith("43")), "")
    assert json.loads(found[3:]) == ["\ud800"]
    eio_post(srv.port, sid, "1")


def test_unicode_everywhere_round_trips(srv: HostileServer) -> None:
    ws, _, _ = ws_sio_connect(srv.port)
    with ws:
        text = "\u0000\u00e9\u4e2d\U0001f600\u202e\ufeff\uffff"
        ws.send_text("421" + json.dumps(["echo", text, {text: text}], ensure_ascii=False))
        ack = ws.wait_text("431")
        assert json.loads(ack[3:]) == [text, {text: text}]
        bye(ws)
