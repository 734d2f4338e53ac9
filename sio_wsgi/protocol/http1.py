"""A strict subset of HTTP/1.1 requests, for the polling keep-alive fast path.

:func:`parse_request` reads one request head from bytes and says whether it is
a *plain* HTTP/1.1 ``GET`` or ``POST`` for a given path: origin-form target, no
``Transfer-Encoding``, ``Upgrade`` or ``Expect``, at most one ``Content-Length``
of digits, each header once, names of letters, digits and ``-`` only, values
without control characters. Anything else is :data:`NOT_PLAIN`: the caller then
leaves the bytes to the WSGI server, whose own parser and limits decide (see
:mod:`sio_wsgi.transports.keepalive`). Nothing here does I/O.

:func:`response_head` writes the head of an answer with a known length.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Final

__all__ = [
    "INCOMPLETE",
    "MAX_FIELDS",
    "MAX_HEAD",
    "MAX_REQUEST_LINE",
    "NOT_PLAIN",
    "PlainRequest",
    "parse_request",
    "response_head",
]

#: the longest head accepted (gunicorn's default line and field limits are near it)
MAX_HEAD: Final = 8192
#: the longest request line and the most header fields accepted: gunicorn's defaults
#: (``limit_request_line``, ``limit_request_fields``), so that what a server left with
#: its defaults would refuse is left to it
MAX_REQUEST_LINE: Final = 4094
MAX_FIELDS: Final = 100

_END_OF_HEAD = b"\r\n\r\n"
_REQUEST_LINE = re.compile(r"(GET|POST) (/[!-~]*) HTTP/1\.1")
#: a header line: a name of letters, digits and "-", a value without controls but HTAB
_HEADER = re.compile(r"([A-Za-z0-9-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
_DIGITS = re.compile(r"[0-9]{1,10}")
#: headers whose presence means the request is not a plain one
_REFUSED = frozenset({"transfer-encoding", "upgrade", "expect", "te", "http2-settings"})
#: the only ``Connection`` value kept on the fast path (``close`` goes to the server)
_KEEP_ALIVE = "keep-alive"


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: more bytes are needed before the head can be judged
INCOMPLETE: Final = _Marker("INCOMPLETE")
#: the request is not a plain one (or not for the path): leave it to the server
NOT_PLAIN: Final = _Marker("NOT_PLAIN")


@dataclasses.dataclass(frozen=True, slots=True)
class PlainRequest:
    """One plain request head.

    :param method: ``"GET"`` or ``"POST"``.
    :param query: the raw query string (after ``?``, not decoded), ``""`` when none.
    :param target: the raw request target, as sent.
    :param environ: the headers as WSGI environ keys (``HTTP_*``, ``CONTENT_TYPE``,
        ``CONTENT_LENGTH``), values decoded as latin-1.
    :param content_length: the body's length (0 when no ``Content-Length``).
    :param head_size: bytes of the head, blank line included: the body starts there.
    """

    method: str
    query: str
    target: str
    environ: dict[str, str]
    content_length: int
    head_size: int


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key
    return "HTTP_" + key


def parse_request(
    data: bytes | bytearray, path: str, max_body: int, max_head: int = MAX_HEAD
) -> PlainRequest | _Marker:
    """Read the request head at the start of ``data``.

    :param data: bytes received on the connection, starting at a request.
    :param path: the only path accepted (the raw path of the target, before ``?``).
    :param max_body: the largest ``Content-Length`` accepted.
    :param max_head: the largest head accepted.
    :returns: the :class:`PlainRequest`; :data:`INCOMPLETE` when its head has not
        all arrived yet (and may still be plain); :data:`NOT_PLAIN` otherwise.

    >>> parse_request(b"GET /s/?a=1 HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n", "/s/", 10).query
    'a=1'
    """
    end = data.find(_END_OF_HEAD, 0, max_head)
    if end < 0:
        return INCOMPLETE if len(data) < max_head else NOT_PLAIN
    lines = data[:end].decode("latin-1").split("\r\n")
    if len(lines[0]) > MAX_REQUEST_LINE or len(lines) > MAX_FIELDS + 1:
        return NOT_PLAIN
    matched = _REQUEST_LINE.fullmatch(lines[0])
    if matched is None:
        return NOT_PLAIN
    method, target = matched.groups()
    target_path, _, query = target.partition("?")
    environ = _headers(lines) if target_path == path else None
    if environ is None:
        return NOT_PLAIN
    length_text = environ.get("CONTENT_LENGTH")
    if length_text is None:
        length = 0 if method == "GET" else -1  # a POST says how long its body is
    else:
        length = int(length_text) if _DIGITS.fullmatch(length_text) else -1
    if length < 0 or length > max_body or (method == "GET" and length):
        return NOT_PLAIN
    return PlainRequest(method, query, target, environ, length, end + len(_END_OF_HEAD))


def _headers(lines: list[str]) -> dict[str, str] | None:
    """The header lines (``lines[1:]``) as environ keys; None when one is not plain."""
    environ: dict[str, str] = {}
    for line in lines[1:]:
        header = _HEADER.fullmatch(line)
        if header is None:
            return None
        name, value = header.groups()
        lower = name.lower()
        if lower in _REFUSED or (lower == "connection" and value.lower() != _KEEP_ALIVE):
            return None
        key = _environ_key(name)
        if key in environ:
            return None
        environ[key] = value
    return environ


def response_head(status_line: str, headers: Sequence[tuple[str, str]], date: str) -> bytes:
    """The head of an HTTP/1.1 answer: status line, ``Date``, ``headers``, blank line.

    :param status_line: ``"200 OK"``.
    :param headers: the answer's headers, ``Content-Length`` included.
    :param date: the ``Date`` value (an IMF-fixdate).
    """
    parts = [f"HTTP/1.1 {status_line}\r\nDate: {date}\r\n"]
    parts.extend(f"{name}: {value}\r\n" for name, value in headers)
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")
