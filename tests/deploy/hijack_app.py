"""A tiny WSGI app for the hijack tests: ``/plain`` answers over HTTP, ``/echo``
takes the socket over and echoes raw bytes until the client half-closes (or sends
``bye``, after which the server closes first); ``/echo-first`` does the same after
sending :data:`FIRST` with the 101 head (``hijack(..., first=FIRST)``)."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

from sio_wsgi.transports.hijack import hijack

__all__ = ["app", "FIRST", "HEAD"]

logger = logging.getLogger(__name__)

HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)
#: what ``/echo-first`` sends right after the head
FIRST = b"\x81\x05first"
_MAX_ROUNDS = 10_000


def _echo(sock: socket.socket, buffered: bytes) -> None:
    """Echo ``buffered`` then every chunk read, until EOF or ``bye``."""
    if buffered:
        sock.sendall(b"[buffered]" + buffered)
    for _ in range(_MAX_ROUNDS):
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)
        if data.endswith(b"bye"):
            return


def _patched() -> dict[str, bool]:
    """Which library monkey-patched ``socket`` in this process (without importing either)."""
    patcher = sys.modules.get("eventlet.patcher")
    monkey = sys.modules.get("gevent.monkey")
    return {
        "eventlet": bool(patcher and patcher.is_monkey_patched("socket")),
        "gevent": bool(monkey and monkey.is_module_patched("socket")),
    }


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Route ``/echo``, ``/info`` and anything else (plain text).

    :param environ: the WSGI environ.
    :param start_response: the WSGI start_response.
    :returns: the response body.
    """
    path = environ.get("PATH_INFO", "")
    if path in ("/echo", "/echo-first"):
        first = FIRST if path == "/echo-first" else b""
        hijacked = hijack(environ, start_response, HEAD, first=first)
        if hijacked is None:
            body = b"websocket not supported by this server"
            start_response("400 Bad Request", [("Content-Length", str(len(body)))])
            return [body]
        try:
            _echo(hijacked.sock, hijacked.buffered)
        except OSError as exc:
            logger.info("echo ended: %s", exc)
        finally:
            try:
                hijacked.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            hijacked.sock.close()
        return hijacked.finish()
    if path == "/info":
        body = json.dumps(_patched()).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    body = b"plain:" + environ.get("SERVER_SOFTWARE", "").encode("latin-1", "replace")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
