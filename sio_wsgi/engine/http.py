"""Pure HTTP helpers of the Engine.IO layer: errors, CORS, cookies, compression.

Nothing here touches sockets or ``start_response``; functions take plain values
and return :class:`Response` objects or header lists.
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import json
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..config import Cookie, Origins

__all__ = [
    "ErrorCode",
    "Response",
    "CapturedStart",
    "error_response",
    "origin_allowed",
    "cors_headers",
    "cookie_header",
    "compress",
    "parse_query",
    "check_query",
    "Query",
    "TEXT_PLAIN",
]

logger = logging.getLogger(__name__)

TEXT_PLAIN = "text/plain; charset=UTF-8"
Headers = list[tuple[str, str]]


class ErrorCode(enum.IntEnum):
    """The reference server's error codes (and the HTTP status each maps to)."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


_MESSAGES = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    426: "Upgrade Required",
    500: "Internal Server Error",
}


#: statuses whose answer has no body, so no ``Content-Length`` either (1xx aside)
_NO_BODY = frozenset({204, 304})


@dataclasses.dataclass
class Response:
    """An HTTP response to hand to ``start_response``."""

    status: int
    headers: Headers
    body: bytes = b""

    @property
    def status_line(self) -> str:
        """``"200 OK"``-style WSGI status."""
        return f"{self.status} {_REASONS.get(self.status, 'Unknown')}"

    def wsgi_headers(self) -> Headers:
        """The headers to hand to ``start_response``: :attr:`headers` and the body's
        ``Content-Length`` (none for a status that has no body, 1xx, 204 and 304).
        With the length known the WSGI server sends the body as it is, not chunked:
        under gunicorn one ``send()`` less per response and no chunk framing."""
        status = self.status
        if status < 200 or status in _NO_BODY:
            return self.headers
        return [*self.headers, ("Content-Length", str(len(self.body)))]


class CapturedStart:
    """A ``start_response`` that keeps the status and headers it is given, for a
    request the server runs itself rather than through the WSGI server (a
    relayed request, a request served in a keep-alive turn). The answer is
    taken from the returned iterable; the legacy ``write()`` callable raises, so
    that no bytes are ever dropped unseen."""

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: Headers = []

    def __call__(
        self, status: str, headers: Headers, exc_info: object = None
    ) -> Callable[[bytes], object]:
        self.status, self.headers = status, list(headers)
        return _no_write


def _no_write(data: bytes) -> object:
    raise OSError("write() is not available here: the answer is taken from the returned iterable")


def error_response(
    code: ErrorCode, *, status: int | None = None, message: str | None = None, detail: str = ""
) -> Response:
    """A JSON error ``{"code": N, "message": "..."}`` (403 for FORBIDDEN, else 400).

    :param status: override the HTTP status (413 for an oversized body).
    :param message: override the reference message.
    :param detail: extra human-readable context, logged at INFO here (the body
        stays exactly the reference server's ``{"code", "message"}``).
    """
    if status is None:
        status = 403 if code == ErrorCode.FORBIDDEN else 400
    logger.info("answering %d (%s)%s", status, _MESSAGES[code], f": {detail}" if detail else "")
    body: dict[str, Any] = {"code": int(code), "message": message or _MESSAGES[code]}
    return Response(
        status,
        [("Content-Type", "application/json")],
        json.dumps(body, separators=(",", ":")).encode(),
    )


#: the Engine.IO parameters a request may carry once only
SINGLE_PARAMETERS = ("EIO", "transport", "sid")


@dataclasses.dataclass(frozen=True)
class Query:
    """The Engine.IO parameters of a request's query string.

    A parameter given more than once is ambiguous: it is in ``repeated`` and
    its value is None, so it fails its check (a repeated ``sid`` does not make
    a handshake: callers test ``repeated`` first).
    """

    eio: str | None
    transport: str | None
    sid: str | None
    repeated: frozenset[str]


#: the usual ``Query.repeated``, shared (an empty frozenset is 216 bytes, and a WebSocket
#: request's query stays with its connection)
_NONE_REPEATED: frozenset[str] = frozenset()


def parse_query(query_string: str) -> Query:
    """Read ``EIO``, ``transport`` and ``sid`` from a query string (others are ignored)."""
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name in SINGLE_PARAMETERS:
            if name in values:
                repeated.add(name)
            values[name] = value
    for name in repeated:
        del values[name]
    return Query(
        values.get("EIO"),
        values.get("transport"),
        values.get("sid"),
        frozenset(repeated) if repeated else _NONE_REPEATED,
    )


def check_query(
    query: Query, transports: Sequence[str], version: str
) -> Response | tuple[str, str | None]:
    """The request's transport and sid (None: a handshake), or the error answer
    (400 JSON) when its Engine.IO parameters are missing, unknown or repeated."""
    transport = query.transport
    if transport is None or transport not in transports:
        return error_response(ErrorCode.UNKNOWN_TRANSPORT)
    if query.eio != version:
        return error_response(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
    if "sid" in query.repeated:
        return error_response(ErrorCode.UNKNOWN_SID, detail="sid given more than once")
    return transport, query.sid


def _same_origin(origin: str, host: str | None, scheme: str) -> bool:
    if not host:
        return False
    try:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            return False
        default = {"http": "80", "https": "443"}
        o_host = parts.hostname or ""
        o_port = str(parts.port) if parts.port else default[parts.scheme]
        h = urlsplit(f"//{host}")
        h_port = str(h.port) if h.port else default.get(scheme, "80")
    except ValueError:  # malformed Origin or Host (bad port, unbalanced IPv6 bracket)
        return False
    return o_host == (h.hostname or "") and o_port == h_port


def origin_allowed(
    origin: str | None, allowed: Origins, host: str | None, scheme: str = "http"
) -> bool:
    """Decide whether a request from ``origin`` may proceed.

    :param origin: the request's Origin header (None: not a browser, allowed).
    :param allowed: ``cors_allowed_origins``: None (same origin only), ``'*'``,
        a string, a list of strings, or a callable taking the origin.
    :param host: the request's Host header, for the same-origin rule.
    """
    if origin is None:
        return True
    if allowed is None:
        return _same_origin(origin, host, scheme)
    if allowed == "*":
        return True
    if isinstance(allowed, str):
        return origin == allowed
    if callable(allowed):
        return bool(allowed(origin))
    return origin in allowed


def cors_headers(
    origin: str | None,
    allowed: Origins,
    credentials: bool,
    *,
    preflight: bool = False,
    request_headers: str | None = None,
) -> Headers:
    """CORS headers for an allowed request (none when there is no Origin)."""
    if origin is None:
        return []
    headers: Headers = []
    if allowed == "*" and not credentials:
        headers.append(("Access-Control-Allow-Origin", "*"))
    else:
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Vary", "Origin"))
    if credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    if preflight:
        headers.append(("Access-Control-Allow-Methods", "OPTIONS, GET, POST"))
        if request_headers:
            headers.append(("Access-Control-Allow-Headers", request_headers))
        headers.append(("Access-Control-Max-Age", "86400"))
    return headers


def cookie_header(cookie: Cookie, sid: str) -> tuple[str, str] | None:
    """The sticky-session ``Set-Cookie`` header, or None when no cookie is configured.

    :param cookie: a cookie name, or a dict with ``name`` and optional
        ``path``, ``domain``, ``secure``, ``samesite``, ``httponly``, ``max_age``.
    """
    if not cookie:
        return None
    attrs: Mapping[str, object] = {"name": cookie} if isinstance(cookie, str) else cookie
    parts = [f"{attrs.get('name', 'io')}={sid}", f"Path={attrs.get('path', '/')}"]
    if attrs.get("domain"):
        parts.append(f"Domain={attrs['domain']}")
    max_age = attrs.get("max_age")
    if isinstance(max_age, (int, float, str)):
        parts.append(f"Max-Age={int(max_age)}")
    if attrs.get("httponly", True):
        parts.append("HttpOnly")
    if attrs.get("secure"):
        parts.append("Secure")
    samesite = attrs.get("samesite", "Lax")
    if samesite:
        parts.append(f"SameSite={samesite}")
    return ("Set-Cookie", "; ".join(parts))


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 6)


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": _gzip, "deflate": _deflate}


def compress(
    body: bytes,
    accept_encoding: str | None,
    threshold: int,
    encoders: Sequence[str] = ("gzip", "deflate"),
) -> tuple[bytes, str | None]:
    """Compress ``body`` with the first encoding the client accepts, when over ``threshold``.

    :returns: the (possibly) compressed body and the Content-Encoding used, or None.
    """
    if len(body) < threshold or not accept_encoding:
        return body, None
    accepted = {
        token.split(";")[0].strip().lower()
        for token in accept_encoding.split(",")
        if "q=0" not in token.replace(" ", "").split(";")[1:]
    }
    for name in encoders:
        if name in accepted:
            return _ENCODERS[name](body), name
    return body, None
