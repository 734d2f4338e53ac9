"""Serve a keep-alive connection's polling requests without gunicorn's per-request path.

A long-polling client sends its requests one after the other on the same
keep-alive connections. Under gunicorn (gevent, ``sio_wsgi.gunicorn.EventletWorker``,
gthread) each of them costs gunicorn's full request path: its parser, environ,
``Response`` object and two ``send()`` calls, about two thirds of a polling
worker's CPU (bench/profiles). :class:`PollingKeepAlive`
takes over from there:

1. a polling request gunicorn parsed is answered through gunicorn as usual
   (``start_response`` and its ``write``: gunicorn sees the status, logs it and
   decides keep-alive);
2. if gunicorn keeps the connection open, the same request then serves the next
   requests on the connection itself, for a *turn*: each one whose head
   :func:`~sio_wsgi.protocol.http1.parse_request` finds plain (``GET``/``POST``
   to the same path, HTTP/1.1, a ``Content-Length`` body within
   ``max_http_buffer_size``) goes straight to the engine, and its answer goes out
   in one ``sendall``;
3. the turn ends at the first request that is anything else (another path, an
   upgrade, a chunked body, ``Connection: close``, other forwarding headers than
   the first request's), when no complete request arrives within
   :data:`IDLE_WAIT`, at EOF, or after :data:`TURN_REQUESTS` requests or
   :data:`TURN_SECONDS`. The bytes read ahead go back into gunicorn's buffer
   (``wsgi.input.reader.unreader``) and the first request returns: gunicorn reads
   the next request from there, with its own parser, limits, timeouts, access
   log and worker life cycle (``max_requests``, graceful shutdown).

A request served in a turn keeps the first request's connection-level environ
(``REMOTE_ADDR``, ``wsgi.url_scheme``, ``SCRIPT_NAME``...) and has its own method,
query, headers and body. gunicorn does not see it: its access log, ``pre_request``
/ ``post_request`` hooks and ``max_requests`` count only the first request of a
turn (``polling_keepalive=False`` turns all this off).

Under gunicorn's ``gthread`` worker (27 and later: older ones do not look for
bytes handed back to the buffer before waiting on the socket) a turn holds a pool
thread, so it is shorter: it starts from a GET only, waits
:data:`THREAD_IDLE_WAIT` for the next request, and waits for nothing after a POST
(the client's next GET comes at once; its next POST, only when it has data). The
sync worker never keeps a connection open, so it takes no turns.
"""

from __future__ import annotations

import io
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

from ..engine.http import CapturedStart, Response
from ..engine.ports import RELAYED, Environ, StartResponse
from ..protocol.http1 import INCOMPLETE, PlainRequest, parse_request, response_head
from .hijack import gunicorn_read_ahead

__all__ = [
    "IDLE_WAIT",
    "THREAD_IDLE_WAIT",
    "POLLED",
    "SERVED_HERE",
    "TURN_REQUESTS",
    "TURN_SECONDS",
    "PollingKeepAlive",
]

logger = logging.getLogger(__name__)

#: environ key the engine sets on a polling GET/POST of a session: its connection may be taken
POLLED = "sio_wsgi.keepalive.polled"
#: environ key of a request served in a turn (it never starts one of its own)
SERVED_HERE = "sio_wsgi.keepalive.served"
#: seconds a turn waits for the next request to arrive whole
IDLE_WAIT = 1.0
#: the same in threading mode, where the wait holds a thread of gunicorn's pool
THREAD_IDLE_WAIT = 0.1
#: the first gunicorn release whose gthread worker serves bytes handed back to its buffer
_GTHREAD_HANDS_BACK = (27,)
#: requests a turn serves before the connection goes back to gunicorn
TURN_REQUESTS = 1000
#: seconds after which a turn ends at its next request
TURN_SECONDS = 30.0
#: largest single recv()
_RECV_SIZE = 65536

#: environ keys a turn's requests take from the first request: what gunicorn derives
#: from the connection and its own configuration, not from the request's head
_CONNECTION_KEYS = (
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_SOFTWARE",
    "SERVER_PROTOCOL",
    "SCRIPT_NAME",
    "PATH_INFO",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.errors",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "wsgi.file_wrapper",
    "wsgi.input_terminated",
)
#: headers from which a server derives connection-level keys (scheme, client address):
#: a request whose values differ from the first request's goes to gunicorn
_FORWARDING_KEYS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PROTOCOL",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_REAL_IP",
)

Route = Callable[[Environ, StartResponse], "Response | Iterable[bytes]"]


class _HttpDate:
    """The ``Date`` header's value, formatted once a second."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second, self.text = second, formatdate(second, usegmt=True)
        return self.text


class PollingKeepAlive:
    """Takes a gunicorn worker's keep-alive polling connections for turns.

    :param route: answers one Engine.IO request (the engine's router: a
        :class:`~sio_wsgi.engine.http.Response`, or a WSGI iterable).
    :param max_body: the largest POST body served in a turn (``max_http_buffer_size``).
    :param threads: threading mode (gthread): shorter turns, see the module docstring.
    """

    def __init__(self, route: Route, max_body: int, threads: bool = False) -> None:
        self.route = route
        self.max_body = max_body
        self.threads = threads
        self._date = _HttpDate()

    def serve(
        self, environ: Environ, start_response: StartResponse, first: Response
    ) -> Iterable[bytes]:
        """Answer ``first`` through the server, then serve the connection's next
        requests for a turn when it can be taken (see the module docstring).

        :returns: the WSGI iterable of the first request (empty when sent here).
        """
        taken = _takeable(environ, start_response)
        if taken is not None and self.threads and not _threads_may_turn(environ):
            taken = None
        if taken is None:
            start_response(first.status_line, first.wsgi_headers())
            return [first.body]
        sock, unreader, response = taken
        write = start_response(first.status_line, first.wsgi_headers())
        write(first.body)
        if response.should_close():
            return []
        read_ahead = gunicorn_read_ahead(environ.get("wsgi.input"))
        timeout = sock.gettimeout()
        unserved = b""  # when the turn fails (the client left), nothing goes back
        try:
            unserved = self._turn(sock, read_ahead, environ, timeout)
        finally:
            try:
                sock.settimeout(timeout)
            except OSError:  # closed under us: gunicorn finds out on its own
                pass
            if unserved:
                unreader.unread(unserved)
        return []

    def _turn(
        self, sock: socket.socket, pending: bytes, first: Environ, timeout: float | None
    ) -> bytes:
        """Serve requests from ``pending`` and ``sock``; return the bytes not served.

        :param timeout: the socket's own timeout, for writing (reads wait :data:`IDLE_WAIT`).
        """
        buffer = bytearray(pending)  # grows at its end, is consumed from its start: no copies
        wait = THREAD_IDLE_WAIT if self.threads else IDLE_WAIT
        base = {key: first[key] for key in _CONNECTION_KEYS if key in first}
        base[SERVED_HERE] = True
        forwarding = [first.get(key) for key in _FORWARDING_KEYS]
        path = str(first.get("RAW_URI", "")).partition("?")[0]
        ends = time.monotonic() + TURN_SECONDS
        for _ in range(TURN_REQUESTS):
            request = self._next_request(sock, buffer, path, wait)
            if request is None:
                return bytes(buffer)
            headers = request.environ
            if [headers.get(key) for key in _FORWARDING_KEYS] != forwarding:
                return bytes(buffer)
            end = request.head_size + request.content_length
            with memoryview(buffer) as view:  # one copy of the body, not two
                body = bytes(view[request.head_size : end])
            del buffer[:end]
            environ = dict(base)
            environ.update(headers)
            environ["REQUEST_METHOD"] = request.method
            environ["QUERY_STRING"] = request.query
            environ["RAW_URI"] = request.target
            environ["wsgi.input"] = io.BytesIO(body)
            answer = self._answer(environ)
            sock.settimeout(timeout)  # a slow reader is gunicorn's usual case, not idleness
            sock.sendall(answer)
            if self.threads:  # after a POST, only a request already here is served
                wait = THREAD_IDLE_WAIT if request.method == "GET" else 0.0
            if time.monotonic() >= ends:
                break
        return bytes(buffer)

    def _next_request(
        self, sock: socket.socket, buffer: bytearray, path: str, wait: float
    ) -> PlainRequest | None:
        """The next plain request, once it is whole at the start of ``buffer`` (which
        collects what ``sock`` sends meanwhile); None when it is not plain or not all
        there within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        request: PlainRequest | None = None  # its head, parsed once while its body comes
        while True:
            if request is None:
                parsed = parse_request(buffer, path, self.max_body)
                if isinstance(parsed, PlainRequest):
                    request = parsed
                elif parsed is not INCOMPLETE:
                    return None
            if request is not None and len(buffer) >= request.head_size + request.content_length:
                return request
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                sock.settimeout(left)
                data = sock.recv(_RECV_SIZE)
            except (TimeoutError, OSError):  # socket.timeout is TimeoutError
                return None
            if not data:  # EOF: gunicorn reads it again and ends the connection
                return None
            buffer += data

    def _answer(self, environ: Environ) -> bytes:
        """Route one request; its whole answer, head and body."""
        captured = CapturedStart()
        result = self.route(environ, captured)
        if isinstance(result, Response):
            status, headers, body = result.status_line, result.wsgi_headers(), result.body
        else:
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            status, headers = captured.status, captured.headers
            if not any(name.lower() == "content-length" for name, _ in headers):
                headers.append(("Content-Length", str(len(body))))
        return response_head(status, headers, self._date.now()) + body


def _threads_may_turn(environ: Environ) -> bool:
    """A GET under a gunicorn whose gthread worker serves bytes handed back to its buffer."""
    if environ.get("REQUEST_METHOD") != "GET":
        return False
    gunicorn = sys.modules.get("gunicorn")
    version = getattr(gunicorn, "version_info", ())
    return isinstance(version, tuple) and version >= _GTHREAD_HANDS_BACK


def _takeable(
    environ: Environ, start_response: StartResponse
) -> tuple[socket.socket, Any, Any] | None:
    """The socket, gunicorn's buffer over it and gunicorn's response object, when
    this request's connection may be taken for a turn; None otherwise."""
    if SERVED_HERE in environ or RELAYED in environ or POLLED not in environ:
        return None
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1" or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    sock = environ.get("gunicorn.socket")
    if sock is None or not str(environ.get("RAW_URI", "")).startswith("/"):
        return None
    unreader = getattr(getattr(environ.get("wsgi.input"), "reader", None), "unreader", None)
    response = getattr(start_response, "__self__", None)
    if not callable(getattr(unreader, "unread", None)):
        return None
    if not callable(getattr(response, "should_close", None)):
        return None
    return sock, unreader, response
