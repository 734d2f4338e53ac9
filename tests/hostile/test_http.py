"""Hostile HTTP: query strings, polling payloads, Engine.IO packets over polling,
and the HTTP security defaults (CORS, cookie, sids, static files).

Each case runs against the live server of every async mode; the ``srv`` fixture
then checks that the watcher still receives and that the session table is
back to the watcher alone (see conftest.py).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

from tests.hostile.hostile_clients import (
    EIO_PATH,
    HOST,
    HttpResponse,
    eio_close,
    eio_get,
    eio_open,
    eio_post,
    eio_query,
    http,
    sio_polling_connect,
    ws_sio_connect,
)
from tests.hostile.hostile_support import HostileServer, assert_json_error, assert_session_gone

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- HTTP query


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=4", 0),  # no transport
        ("EIO=4&transport=flashsocket", 0),  # unknown transport
        ("EIO=4&transport=POLLING", 0),  # case matters
        ("EIO=3&transport=polling", 5),  # old protocol
        ("transport=polling", 5),  # no EIO
        ("EIO=4%00&transport=polling", 5),  # NUL in the version
        ("EIO=4&transport=polling&transport=websocket&EIO=%ff%fe", 0),  # repeated, bad UTF-8
        ("EIO=4&EIO=4&transport=polling", 5),  # the version twice, even the same
        ("EIO=4&transport=polling&transport=polling", 0),  # the transport twice
    ],
    ids=[
        "no-transport",
        "unknown-transport",
        "transport-case",
        "eio3",
        "no-eio",
        "eio-nul",
        "repeated-bad-utf8",
        "repeated-eio",
        "repeated-transport",
    ],
)
def test_bad_query_is_400_json(srv: HostileServer, query: str, code: int) -> None:
    assert_json_error(http(srv.port, "GET", f"{EIO_PATH}?{query}"), 400, code)


@pytest.mark.parametrize("order", ["fake-first", "real-first", "same-twice"])
def test_repeated_sid_is_refused_and_the_session_keeps_working(
    srv: HostileServer, order: str
) -> None:
    # the real session must not be reachable through an ambiguous query
    sid, _, _ = eio_open(srv.port)
    pairs = {"fake-first": ("nope", sid), "real-first": (sid, "nope"), "same-twice": (sid, sid)}
    first, second = pairs[order]
    query = f"{EIO_PATH}?EIO=4&transport=polling&sid={first}&sid={second}"
    assert_json_error(http(srv.port, "GET", query), 400, 1)
    assert_json_error(http(srv.port, "POST", query, b"40"), 400, 1)
    assert eio_post(srv.port, sid, "40").status == 200  # a one-sid request works
    assert eio_get(srv.port, sid).body.startswith(b'40{"sid":')
    eio_close(srv.port, sid)


def test_huge_and_garbage_query(srv: HostileServer) -> None:
    junk = "&".join(f"k{i}=%zz%%{'v' * 20}" for i in range(300))  # ~9 KB of broken escapes
    r = http(srv.port, "GET", f"{EIO_PATH}?{junk}")
    assert 400 <= r.status < 500, r
    if r.status != 414:  # the WSGI server itself may refuse a long request line
        assert_json_error(r, 400, 0)


def test_post_handshake_refused(srv: HostileServer) -> None:
    r = http(srv.port, "POST", eio_query(), b"40")
    assert_json_error(r, 400, 2)


@pytest.mark.parametrize("sid", ["nope", "A" * 2000, "%00%0d%0a", "../../etc/passwd"])
def test_unknown_sid(srv: HostileServer, sid: str) -> None:
    assert_json_error(
        http(srv.port, "GET", f"{EIO_PATH}?EIO=4&transport=polling&sid={sid}"), 400, 1
    )


def test_unsupported_method_closes_nothing_else(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    assert_json_error(http(srv.port, "PUT", eio_query(sid), b"x"), 400, 3)
    assert_json_error(http(srv.port, "DELETE", eio_query(sid)), 400, 3)
    eio_close(srv.port, sid)


# ---------------------------------------------------------------- polling payloads


@pytest.mark.parametrize(
    "body",
    [
        b"",  # empty payload
        b"9hello",  # unknown packet type
        b"4a\x1e\x1e4b",  # empty packet between separators
        b"b!!!notbase64",  # bad base64 binary packet
        b"\xff\xfe\x80",  # not UTF-8
        b"\xed\xa0\x80",  # an encoded surrogate (invalid UTF-8)
        b"0{}",  # OPEN from the client
        b"5",  # UPGRADE over polling
    ],
    ids=[
        "empty",
        "type-9",
        "empty-packet",
        "bad-base64",
        "bad-utf8",
        "utf8-surrogate",
        "open-from-client",
        "upgrade-on-polling",
    ],
)
def test_bad_polling_payload_rejected_and_session_closed(srv: HostileServer, body: bytes) -> None:
    sid, _, _ = eio_open(srv.port)
    assert_json_error(eio_post(srv.port, sid, body), 400, 3)
    assert_session_gone(srv, sid)
    srv.wait_log("bad POST")


def test_binary_content_type_rejected(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    r = eio_post(srv.port, sid, b"\x00\x01", headers={"Content-Type": "application/octet-stream"})
    assert_json_error(r, 400, 3)
    assert_session_gone(srv, sid)


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "0x10"])
def test_bad_content_length(srv: HostileServer, length: str) -> None:
    sid, _, _ = eio_open(srv.port)
    r = eio_post(srv.port, sid, b"40" + b"x" * 100, headers={"Content-Length": length})
    assert 400 <= r.status < 500, r
    if r.body:  # some WSGI servers refuse it themselves with an empty 400
        assert_json_error(r, 400)
    eio_close(srv.port, sid)


def test_post_after_close_is_unknown_sid(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    assert eio_post(srv.port, sid, "1").status == 200
    assert_json_error(eio_post(srv.port, sid, "4x"), 400, 1)


def test_valid_payload_mix_still_works(srv: HostileServer) -> None:
    """Control: a payload with noop, ping and message packets is accepted."""
    sid, _ = sio_polling_connect(srv.port)
    assert eio_post(srv.port, sid, '6\x1e2probe\x1e427["echo",1]').status == 200
    got: list[str] = []
    deadline = time.monotonic() + 5
    while "437[1]" not in got and time.monotonic() < deadline:
        got += eio_get(srv.port, sid).text.split("\x1e")
    assert "3probe" in got and "437[1]" in got, got
    eio_close(srv.port, sid)


# ---------------------------------------------------------------- security defaults


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://127.0.0.1",
        "http://a:xyz",
        "http://[::1",
        "file://",
        "javascript:alert(1)",
    ],
    ids=[
        "other-host",
        "null",
        "other-port",
        "other-scheme",
        "bad-port",
        "bad-ipv6",
        "file",
        "javascript",
    ],
)
def test_cross_origin_polling_refused(srv: HostileServer, origin: str) -> None:
    r = http(srv.port, "GET", eio_query(), headers={"Origin": origin})
    assert_json_error(r, 403, 4)
    assert r.header("access-control-allow-origin") is None


def test_same_origin_allowed_with_credentials(srv: HostileServer) -> None:
    origin = f"http://{HOST}:{srv.port}"
    sid, _, r = eio_open(srv.port, headers={"Origin": origin})
    assert r.header("access-control-allow-origin") == origin
    assert r.header("access-control-allow-credentials") == "true"
    pre = http(srv.port, "OPTIONS", eio_query(), headers={"Origin": "http://evil.example"})
    assert_json_error(pre, 403, 4)
    eio_close(srv.port, sid)


def test_cookie_is_httponly_and_samesite(srv: HostileServer) -> None:
    sid, _, r = eio_open(srv.port)
    cookies = r.all("set-cookie")
    assert len(cookies) == 1, cookies
    attrs = [a.strip().lower() for a in cookies[0].split(";")]
    assert attrs[0] == f"io={sid}".lower()
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    eio_close(srv.port, sid)


def test_sids_are_unguessable(srv: HostileServer) -> None:
    sids = []
    for _ in range(40):
        sid, _, _ = eio_open(srv.port)
        sids.append(sid)
        eio_close(srv.port, sid)
    assert len(set(sids)) == len(sids)
    for sid in sids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", sid), sid
    # no shared prefix or suffix (not a counter, not a timestamp)
    assert len({s[:4] for s in sids}) > 30
    assert len({s[-4:] for s in sids}) > 30
    # roughly uniform characters: 120 bits from a CSPRNG use most of the alphabet
    assert len(set("".join(sids))) > 50


def test_sid_bound_to_transport(srv: HostileServer) -> None:
    ws, eio_sid, sio_sid = ws_sio_connect(srv.port)
    with ws:
        # the WebSocket session's sid cannot be used to poll or post
        assert_json_error(eio_get(srv.port, eio_sid), 400, 3)
        assert_json_error(eio_post(srv.port, eio_sid, '42["echo","hijack"]'), 400, 3)
        # the Socket.IO sid is not an Engine.IO sid
        assert_json_error(eio_get(srv.port, sio_sid), 400, 1)
        ws.send_text('421["echo","still mine"]')
        assert ws.wait_text("431") == '431["still mine"]'
        ws.send_text("1")
        ws.expect_end()


def _raw_get(port: int, target: str) -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize(
    "target",
    [
        "/static/../hostile_app.py",
        "/static/..%2fhostile_app.py",
        "/static/%2e%2e/hostile_app.py",
        "/static/%2e%2e%2fhostile_app.py",
        "/static/....//hostile_app.py",
        "/static//etc/passwd",
        "/static/..\\hostile_app.py",
        "/static/%00../hostile_app.py",
        "/static/../../../../../../etc/passwd",
        "/static/%252e%252e/hostile_app.py",
    ],
)
@pytest.mark.parametrize("mount", ["/static/", "/public/"])  # python-socketio's two forms
def test_static_files_no_traversal(srv: HostileServer, target: str, mount: str) -> None:
    data = _raw_get(srv.port, target.replace("/static/", mount, 1))
    status = int(data.split(b" ", 2)[1])
    assert 400 <= status < 500, data[:300]
    assert b"hostile_app" not in data.split(b"\r\n\r\n", 1)[-1]
    assert b"root:" not in data


@pytest.mark.parametrize("mount", ["/static/", "/public/"])
def test_static_files_serves_inside(srv: HostileServer, mount: str) -> None:
    """Control: files inside the mapped directory are served, the key with or
    without its trailing slash (``{"/public": dir}``, python-socketio's form)."""
    r = http(srv.port, "GET", f"{mount}public.txt")
    assert r.status == 200 and r.body == b"public file\n", r


def test_no_pickle_or_eval_in_the_package(async_mode: str) -> None:
    """No deserialisation of code anywhere in sio_wsgi (the message-queue advisory)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "sio_wsgi"
    pattern = re.compile(
        r"^\s*(import pickle|from pickle|import marshal|import shelve)|"
        r"\b(pickle\.loads?|marshal\.loads?|eval|exec)\(",
        re.M,
    )
    offenders = [
        f"{p.relative_to(root)}:{m.group(0).strip()}"
        for p in root.rglob("*.py")
        for m in pattern.finditer(p.read_text())
    ]
    assert not offenders, offenders


# ---------------------------------------------------------------- concurrency on one sid


def test_second_concurrent_get_refused(srv: HostileServer) -> None:
    sid, _, _ = eio_open(srv.port)
    first: list[HttpResponse] = []
    t = threading.Thread(target=lambda: first.append(eio_get(srv.port, sid)), daemon=True)
    t.start()
    time.sleep(0.3)  # the first GET is now waiting
    second = eio_get(srv.port, sid)
    assert_json_error(second, 400, 3)
    t.join(5)
    assert first and first[0].status == 200, first
    assert first[0].text.split("\x1e")[-1] == "1", first[0].text  # told to close
    assert_session_gone(srv, sid)
    srv.wait_log("second concurrent GET")


def test_interleaved_posts_and_gets_keep_order(srv: HostileServer) -> None:
    """Control: a legitimate burst of POSTs is delivered in order with its acks."""
    sid, _ = sio_polling_connect(srv.port)
    for i in range(20):
        assert eio_post(srv.port, sid, f'42{i}["echo",{i}]').status == 200
    acks: list[str] = []
    deadline = time.monotonic() + 5
    while len(acks) < 20 and time.monotonic() < deadline:
        for pkt in eio_get(srv.port, sid).text.split("\x1e"):
            if pkt.startswith("43"):
                acks.append(pkt)
            elif pkt == "2":
                eio_post(srv.port, sid, "3")
    assert acks == [f"43{i}[{i}]" for i in range(20)]
    eio_close(srv.port, sid)


def test_json_body_of_every_error_is_the_reference_shape(srv: HostileServer) -> None:
    r = http(srv.port, "GET", f"{EIO_PATH}?EIO=4&transport=polling&sid=x")
    assert json.loads(r.body) == {"code": 1, "message": "Session ID unknown"}
