"""Pure HTTP helpers: error bodies, CORS decisions, cookies, compression."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from sio_wsgi.config import TRANSPORTS
from sio_wsgi.engine.http import (
    CapturedStart,
    ErrorCode,
    Response,
    check_query,
    compress,
    cookie_header,
    cors_headers,
    error_response,
    origin_allowed,
    parse_query,
)

MESSAGES = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (ErrorCode.UNKNOWN_TRANSPORT, 400, "Transport unknown"),
        (ErrorCode.UNKNOWN_SID, 400, "Session ID unknown"),
        (ErrorCode.BAD_HANDSHAKE_METHOD, 400, "Bad handshake method"),
        (ErrorCode.BAD_REQUEST, 400, "Bad request"),
        (ErrorCode.FORBIDDEN, 403, "Forbidden"),
        (ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400, "Unsupported protocol version"),
    ],
)
def test_reference_errors(code: ErrorCode, status: int, message: str) -> None:
    response = error_response(code)
    assert response.status == status
    assert ("Content-Type", "application/json") in response.headers
    assert json.loads(response.body) == {"code": int(code), "message": message}


def test_payload_too_large_is_413() -> None:
    assert error_response(ErrorCode.BAD_REQUEST, status=413).status_line == "413 Payload Too Large"


@pytest.mark.parametrize(
    ("origin", "allowed", "host", "ok"),
    [
        (None, None, "a:1", True),
        ("http://a:1", None, "a:1", True),
        ("http://evil", None, "a:1", False),
        ("http://a", None, "a:80", True),
        ("https://a", None, "a", False),
        ("null", None, "a", False),
        ("http://x", "*", "a", True),
        ("http://x", "http://x", "a", True),
        ("http://y", "http://x", "a", False),
        ("http://y", ["http://x", "http://y"], "a", True),
        ("http://y", lambda o: o.endswith("y"), "a", True),
        ("http://z", lambda o: o.endswith("y"), "a", False),
    ],
)
def test_origin_rules(origin: str | None, allowed: object, host: str, ok: bool) -> None:
    assert origin_allowed(origin, allowed, host) is ok


def test_cors_headers_echo_origin_with_credentials() -> None:
    headers = dict(cors_headers("http://x", "*", True, preflight=True, request_headers="x-a"))
    assert headers["Access-Control-Allow-Origin"] == "http://x"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Allow-Headers"] == "x-a"
    assert cors_headers(None, "*", True) == []


def test_cookie_defaults_httponly_lax() -> None:
    name, value = cookie_header("io", "abc")  # type: ignore[misc]
    assert name == "Set-Cookie"
    assert value == "io=abc; Path=/; HttpOnly; SameSite=Lax"
    assert cookie_header(None, "abc") is None
    _, custom = cookie_header({"name": "s", "secure": True, "samesite": "None"}, "x")  # type: ignore[misc]
    assert custom == "s=x; Path=/; HttpOnly; Secure; SameSite=None"


def test_compression_threshold_and_choice() -> None:
    body = b"x" * 2000
    assert compress(body, "gzip", 4096) == (body, None)
    out, enc = compress(body, "deflate, gzip", 1024)
    assert enc == "gzip" and gzip.decompress(out) == body
    out, enc = compress(body, "deflate", 1024)
    assert enc == "deflate" and zlib.decompress(out) == body
    assert compress(body, "gzip;q=0", 10) == (body, None)
    assert compress(body, "br", 10) == (body, None)


# ---------------------------------------------------------------- the query string


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        ("EIO=4&transport=polling", ("polling", None)),
        ("EIO=4&transport=websocket&sid=abc&t=Nx1&j=0", ("websocket", "abc")),
        ("EIO=4&transport=polling&sid=", ("polling", "")),
        ("EIO=4&transport=polling&t=1&t=2", ("polling", None)),  # others may repeat
    ],
)
def test_query_accepted(query_string: str, expected: tuple[str, str | None]) -> None:
    assert check_query(parse_query(query_string), TRANSPORTS, "4") == expected


@pytest.mark.parametrize(
    ("query_string", "code"),
    [
        ("EIO=4&transport=polling&sid=a&sid=b", ErrorCode.UNKNOWN_SID),
        ("EIO=4&transport=polling&sid=a&sid=a", ErrorCode.UNKNOWN_SID),
        ("EIO=4&transport=polling&transport=polling", ErrorCode.UNKNOWN_TRANSPORT),
        ("EIO=4&EIO=4&transport=polling", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION),
        ("EIO=4&transport=carrier-pigeon", ErrorCode.UNKNOWN_TRANSPORT),
        ("transport=polling", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION),
    ],
)
def test_query_refused(query_string: str, code: ErrorCode) -> None:
    query = parse_query(query_string)
    answer = check_query(query, TRANSPORTS, "4")
    assert isinstance(answer, Response) and answer.status == 400
    assert json.loads(answer.body) == {"code": int(code), "message": MESSAGES[code]}


def test_repeated_parameters_are_named() -> None:
    query = parse_query("sid=a&EIO=4&sid=b&transport=polling&transport=x")
    assert query.repeated == {"sid", "transport"} and query.sid is None and query.eio == "4"


def test_captured_start_keeps_status_and_a_copy_of_headers() -> None:
    start = CapturedStart()
    assert start.status == "500 Internal Server Error" and start.headers == []
    headers = [("Content-Type", "text/plain")]
    write = start("200 OK", headers)
    headers.append(("X-Later", "1"))  # the app's list, changed afterwards
    assert start.status == "200 OK"
    assert start.headers == [("Content-Type", "text/plain")]
    with pytest.raises(OSError, match="write"):  # never dropped unseen
        write(b"body")
