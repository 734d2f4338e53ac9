"""Take over the client socket of a WSGI request, for a WebSocket upgrade.

WSGI has no standard way to leave HTTP, so each server is handled by a small
:class:`_Adapter` that knows three things about it: where the raw socket is,
how to put the ``101 Switching Protocols`` head on the wire, and what the
application must return afterwards so that the server writes nothing more,
logs no error and does not reuse the connection for another request.

Per server:

- **gunicorn** (gthread, gevent, ``sio_wsgi.gunicorn.EventletWorker``): the socket is
  ``environ['gunicorn.socket']``; gunicorn must know the status and that the head is
  out, or it writes its own head afterwards: its ``Response`` is told both, and the
  head goes on the socket together with the first frames (one write); afterwards
  ``Response.force_close()``. A response object without those attributes gets the
  head through ``start_response`` and its ``write`` instead.
- **eventlet.wsgi**: ``environ['eventlet.input'].get_socket()``; afterwards
  ``eventlet.wsgi.WSGI_LOCAL.already_handled`` is set.
- **werkzeug** dev server: ``environ['werkzeug.socket']``; afterwards a ``101``
  status, whose head werkzeug then fails to write (EPIPE, a dropped client to it).
- **gevent.pywsgi** (also gunicorn's ``gevent_pywsgi`` worker): the handler's
  ``socket`` (``start_response.__self__``, or under ``wsgi.input``); afterwards
  ``handler.close_connection = True`` and a ``101`` status, as for werkzeug.
- **wsgiref**: ``wsgi.input`` is the socket's ``makefile('rb')``; afterwards as werkzeug.

The transport gets a :func:`os.dup` of the server's socket (``Hijacked.sock``) and
closes it when it is done. The server keeps its own descriptor open, so whatever
it does after the application returns (select, recv, send, close) acts on a live
descriptor; :meth:`Hijacked.finish` shuts that one down, so to the server the
client simply went away: reads see EOF, writes see ``EPIPE``, and every server
treats that as an ordinary disconnect. TLS sockets cannot be duplicated; they
are handed over as they are.

With ``detach=True`` (the transport parks idle WebSockets, see
:mod:`sio_wsgi.transports.websocket`), gunicorn's socket gives its descriptor up
instead (``socket.detach()``): the transport's socket is then the only one, the
request can end while the WebSocket goes on, and gunicorn frees what it holds
for the request (its greenlet, parser and buffers).

The gunicorn ``sync`` worker is refused (``None``): one WebSocket would hold
its only thread past the worker timeout.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..engine.ports import RELAY_ON_HEAD, RELAY_SOCKET, Environ, StartResponse

__all__ = [
    "Hijacked",
    "gunicorn_read_ahead",
    "hijack",
    "parse_response_head",
    "request_socket",
    "SWITCHING_PROTOCOLS",
]

logger = logging.getLogger(__name__)

SWITCHING_PROTOCOLS = "101 Switching Protocols"

#: Most bytes taken from a server's read-ahead buffer (it holds less).
_PEEK_LIMIT = 65536


@dataclass
class Hijacked:
    """A client connection taken over from the WSGI server.

    :param sock: the connection, in blocking mode (a green socket under eventlet
        or gevent). The caller owns it and closes it when the WebSocket is over.
    :param buffered: bytes the server had already read past the request head
        (usually ``b''``); feed them to the frame parser first.
    """

    sock: socket.socket
    buffered: bytes = b""
    _release: Callable[[], Iterable[bytes]] = field(default=list, repr=False)
    _finished: bool = field(default=False, repr=False)
    #: ``sock`` is the connection's only descriptor (taken from the server, not
    #: duplicated): :meth:`finish` may come before the WebSocket is over, and the
    #: server then forgets the connection without touching it (see :func:`hijack`)
    detached: bool = False

    def finish(self) -> Iterable[bytes]:
        """End the hijack; return what the application hands back to its server.

        Call it from the request's own thread or greenlet once the WebSocket is
        over (``sock`` closed or not: it is closed here if still open). The
        server then writes nothing more, logs no error and closes the connection.
        When :attr:`detached`, it may be called while the WebSocket goes on: the
        server's request ends, and ``sock`` stays the caller's to close.

        :returns: the WSGI response iterable (empty).
        """
        if self._finished:
            return []
        self._finished = True
        release, self._release = self._release, list  # it holds the server's request
        return release()


@dataclass(frozen=True)
class _Adapter:
    """How one WSGI server exposes its socket and ends a hijacked request."""

    name: str
    matches: Callable[[Environ, StartResponse], bool]
    raw_socket: Callable[[Environ, StartResponse], socket.socket | None]
    #: the server's buffered reader over the socket (whatever its class), or None
    reader: Callable[[Environ, StartResponse], object]
    #: ``send_head(raw, start_response, head, first)``: the head, then ``first``
    send_head: Callable[[socket.socket, StartResponse, bytes, bytes], None]
    release: Callable[[Environ, StartResponse], Iterable[bytes]]
    take_buffered: Callable[[object, socket.socket], bytes] | None = None


def parse_response_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Split a raw HTTP/1.1 response head into a WSGI status and header list.

    :param head: ``b'HTTP/1.1 101 Switching Protocols\\r\\nName: value\\r\\n\\r\\n'``.
    :returns: ``('101 Switching Protocols', [('Name', 'value')])``.
    :raises ValueError: if the status line is malformed.
    """
    lines = head.decode("latin-1").split("\r\n")
    version, _, status = lines[0].partition(" ")
    if not version.startswith("HTTP/") or not status[:3].isdigit():
        raise ValueError(f"not an HTTP response head: {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return status, headers


# ---------------------------------------------------------------- helpers


def _handler_of(start_response: StartResponse) -> object:
    """The object a bound ``start_response`` belongs to (servers' handler/response)."""
    return getattr(start_response, "__self__", None)


def _instance_of(obj: object, module: str, cls: str) -> bool:
    """``isinstance(obj, module.cls)`` without importing ``module``."""
    mod = sys.modules.get(module)
    kind = getattr(mod, cls, None) if mod is not None else None
    return isinstance(kind, type) and isinstance(obj, kind)


def _makefile_socket(reader: object) -> socket.socket | None:
    """The socket under a ``socket.makefile('rb')`` reader, or None."""
    raw = getattr(reader, "raw", None)
    if isinstance(raw, socket.SocketIO):
        return getattr(raw, "_sock", None)
    return None


def _peek_buffered(reader: object, raw: socket.socket | None) -> bytes:
    """Take what a buffered socket reader holds past the request head, never blocking.

    :param reader: an :class:`io.BufferedReader` over the socket, or None.
    :param raw: the socket under it (its timeout is set to 0 for the peek).
    :returns: the bytes removed from the reader's buffer.
    """
    if not isinstance(reader, io.BufferedReader) or raw is None:
        return b""
    timeout = raw.gettimeout()
    try:
        raw.settimeout(0.0)
        data = reader.peek(_PEEK_LIMIT)
        if data:
            data = reader.read(len(data))
    except (OSError, ValueError) as exc:
        logger.debug("could not read the buffered bytes: %s", exc)
        data = b""
    finally:
        raw.settimeout(timeout)
    return bytes(data)


def _sendall(raw: socket.socket, start_response: StartResponse, head: bytes, first: bytes) -> None:
    """Write the response head and the first frames straight on the socket, in one write."""
    raw.sendall(head + first)


def _empty(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return []


def _status_101(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Give the server a 101 status to log; its own write then fails with EPIPE."""
    try:
        start_response(SWITCHING_PROTOCOLS, [])
    except (AssertionError, ValueError, TypeError) as exc:
        logger.debug("start_response after hijack refused: %s", exc)
    return []


# ---------------------------------------------------------------- gunicorn


def _gunicorn_matches(environ: Environ, start_response: StartResponse) -> bool:
    if "gunicorn.socket" not in environ:
        return False
    if not environ.get("wsgi.multithread", False):
        logger.warning(
            "gunicorn's sync worker cannot hold a WebSocket; use -k gthread, gevent "
            "or sio_wsgi.gunicorn.EventletWorker"
        )
        return False
    return True


def _gunicorn_buffered(body: object, raw: socket.socket) -> bytes:
    return gunicorn_read_ahead(body)


def gunicorn_read_ahead(body: object) -> bytes:
    """Take the read-ahead held by gunicorn's parser (``wsgi.input.reader.unreader``),
    never blocking: the bytes the client sent past the current request.

    :param body: the request's ``wsgi.input`` (anything else gives ``b''``).
    """
    unreader: Any = getattr(getattr(body, "reader", None), "unreader", None)
    take = getattr(unreader, "take_buffered", None)
    if callable(take):  # gunicorn 27+
        return bytes(take())
    buf = getattr(unreader, "buf", None)
    if not isinstance(buf, io.BytesIO):
        return b""
    unreader.buf = io.BytesIO()  # older gunicorn: the same buffer, without the method
    return buf.getvalue()


def _gunicorn_send_head(
    raw: socket.socket, start_response: StartResponse, head: bytes, first: bytes
) -> None:
    """gunicorn must know the 101 status and that the head went out, or it writes
    its own head afterwards.

    Its ``Response`` (status, code, no chunked framing, head sent: the fields its
    ``close()``, keep-alive check and access log read) is told so directly, and the
    head and ``first`` go out in one write: gunicorn's own head (``start_response``'s
    checks, its Server and Date lines) and a second system call cost a connection
    more than the rest of the handshake. Anything else that calls itself gunicorn's
    response gets the head through ``start_response`` and ``write``.
    """
    response = _handler_of(start_response)
    if getattr(response, "headers_sent", None) is False and getattr(response, "status", 0) is None:
        target: Any = response
        target.status = SWITCHING_PROTOCOLS
        target.status_code = 101
        target.upgrade = True
        target.chunked = False
        target.headers_sent = True
        raw.sendall(head + first)
        return
    status, headers = parse_response_head(head)
    write = start_response(status, headers)
    write(b"")
    if first:
        raw.sendall(first)


def _gunicorn_release(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    response = _handler_of(start_response)
    force_close = getattr(response, "force_close", None)
    if callable(force_close):
        force_close()
    return []


_GUNICORN = _Adapter(
    name="gunicorn",
    matches=_gunicorn_matches,
    raw_socket=lambda environ, sr: environ["gunicorn.socket"],
    reader=lambda environ, sr: environ.get("wsgi.input"),
    send_head=_gunicorn_send_head,
    release=_gunicorn_release,
    take_buffered=_gunicorn_buffered,
)

# ---------------------------------------------------------------- eventlet.wsgi


def _eventlet_release(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    wsgi = sys.modules.get("eventlet.wsgi")
    local = getattr(wsgi, "WSGI_LOCAL", None)
    if local is not None:
        local.already_handled = True
    return []


_EVENTLET = _Adapter(
    name="eventlet",
    matches=lambda environ, sr: hasattr(environ.get("eventlet.input"), "get_socket"),
    raw_socket=lambda environ, sr: environ["eventlet.input"].get_socket(),
    reader=lambda environ, sr: getattr(environ["eventlet.input"], "rfile", None),
    send_head=_sendall,
    release=_eventlet_release,
)

# ---------------------------------------------------------------- werkzeug

_WERKZEUG = _Adapter(
    name="werkzeug",
    matches=lambda environ, sr: environ.get("werkzeug.socket") is not None,
    raw_socket=lambda environ, sr: environ["werkzeug.socket"],
    reader=lambda environ, sr: environ.get("wsgi.input"),
    send_head=_sendall,
    release=_status_101,
)

# ---------------------------------------------------------------- gevent.pywsgi


def _gevent_matches(environ: Environ, start_response: StartResponse) -> bool:
    if _instance_of(_handler_of(start_response), "gevent.pywsgi", "WSGIHandler"):
        return True
    software = str(environ.get("SERVER_SOFTWARE", ""))
    return software.startswith("gevent/") and _gevent_reader(environ, start_response) is not None


def _gevent_reader(environ: Environ, start_response: StartResponse) -> object:
    """gevent passes the raw ``rfile`` as ``wsgi.input`` on upgrade requests."""
    handler = _handler_of(start_response)
    reader = getattr(handler, "rfile", None)
    if reader is None:
        wsgi_input = environ.get("wsgi.input")
        reader = getattr(wsgi_input, "rfile", wsgi_input)
    return reader if _makefile_socket(reader) is not None else None


def _gevent_socket(environ: Environ, start_response: StartResponse) -> socket.socket | None:
    sock = getattr(_handler_of(start_response), "socket", None)
    return sock if sock is not None else _makefile_socket(_gevent_reader(environ, start_response))


def _gevent_release(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A 101 status for the access log (gunicorn's gevent_pywsgi worker needs one)."""
    handler: Any = _handler_of(start_response)  # a gevent.pywsgi.WSGIHandler, not imported
    if _instance_of(handler, "gevent.pywsgi", "WSGIHandler"):
        handler.close_connection = True
    return _status_101(environ, start_response)


_GEVENT = _Adapter(
    name="gevent",
    matches=_gevent_matches,
    raw_socket=_gevent_socket,
    reader=_gevent_reader,
    send_head=_sendall,
    release=_gevent_release,
)

# ---------------------------------------------------------------- wsgiref


def _wsgiref_input(environ: Environ, start_response: StartResponse | None = None) -> object:
    """``wsgi.input``, unwrapped from Django runserver's ``LimitedStream`` when needed."""
    wsgi_input = environ.get("wsgi.input")
    if _makefile_socket(wsgi_input) is None:
        inner = getattr(getattr(wsgi_input, "_read", None), "__self__", None)
        if _makefile_socket(inner) is not None:
            return inner
    return wsgi_input


def _wsgiref_matches(environ: Environ, start_response: StartResponse) -> bool:
    return _instance_of(_handler_of(start_response), "wsgiref.handlers", "BaseHandler") and (
        _makefile_socket(_wsgiref_input(environ)) is not None
    )


_WSGIREF = _Adapter(
    name="wsgiref",
    matches=_wsgiref_matches,
    raw_socket=lambda environ, sr: _makefile_socket(_wsgiref_input(environ)),
    reader=_wsgiref_input,
    send_head=_sendall,
    release=_status_101,
)


#: Tried in order; the first whose ``matches`` is true handles the request.
def _relay_socket(environ: Environ, start_response: StartResponse) -> socket.socket | None:
    sock: socket.socket = environ[RELAY_SOCKET]
    return sock


def _relay_send_head(
    raw: socket.socket, start_response: StartResponse, head: bytes, first: bytes
) -> None:
    # the relaying process puts the head on its client's connection, then relays
    # what comes through the pair
    on_head = getattr(start_response, RELAY_ON_HEAD, None)
    if on_head is None:
        raise OSError("relayed request without its head callback")
    on_head(head)
    if first:
        raw.sendall(first)


#: a WebSocket relayed from another process (sio_wsgi.engine.relay): the
#: socket is one end of a local pair, the head goes back to that process
_RELAY = _Adapter(
    name="relay",
    matches=lambda environ, start_response: RELAY_SOCKET in environ,
    raw_socket=_relay_socket,
    reader=lambda environ, start_response: None,
    send_head=_relay_send_head,
    release=_empty,
    take_buffered=lambda reader, raw: b"",
)


_ADAPTERS: tuple[_Adapter, ...] = (_RELAY, _GUNICORN, _EVENTLET, _WERKZEUG, _GEVENT, _WSGIREF)


# ---------------------------------------------------------------- hijack


def _find_adapter(environ: Environ, start_response: StartResponse) -> _Adapter | None:
    # Only HTTP/2+ is refused: eventlet.wsgi always says HTTP/1.0 here.
    if not str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")).upper().startswith("HTTP/1"):
        return None
    for adapter in _ADAPTERS:
        if adapter.matches(environ, start_response):
            return adapter
    return None


def _own_copy(raw: socket.socket) -> tuple[socket.socket, bool]:
    """A duplicate of ``raw`` for the transport, in blocking mode.

    :returns: ``(sock, duplicated)``; TLS sockets cannot be duplicated and come back as is.
    """
    sock, duplicated = raw, False
    if not isinstance(raw, ssl.SSLSocket):
        try:
            sock, duplicated = raw.dup(), True
        except (OSError, NotImplementedError, AttributeError) as exc:
            logger.debug("cannot dup() the client socket, handing it over: %s", exc)
    sock.settimeout(None)
    return sock, duplicated


def _detachable(raw: socket.socket, start_response: StartResponse) -> bool:
    """Whether gunicorn would leave this connection alone once forgotten: a plain
    socket of gunicorn's async or gthread worker whose 101 head went out without chunked
    framing (an older gunicorn would write a last chunk at the end of the request)."""
    if isinstance(raw, ssl.SSLSocket) or not callable(getattr(raw, "detach", None)):
        return False
    response = _handler_of(start_response)
    return getattr(response, "chunked", True) is False and callable(
        getattr(response, "force_close", None)
    )


def _take_descriptor(raw: socket.socket) -> socket.socket | None:
    """A socket object of the same class over ``raw``'s descriptor, which ``raw``
    gives up (closing ``raw`` is then a no-op); None when that fails."""
    try:
        fd = raw.detach()
    except OSError as exc:
        logger.debug("cannot detach the client socket: %s", exc)
        return None
    try:
        sock = type(raw)(fileno=fd)
    except OSError:
        os.close(fd)
        raise
    sock.settimeout(None)
    return sock


def _close_quietly(sock: socket.socket, how: int | None) -> None:
    try:
        if how is not None:
            sock.shutdown(how)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _make_release(
    adapter: _Adapter,
    raw: socket.socket,
    sock: socket.socket,
    duplicated: bool,
    environ: Environ,
    start_response: StartResponse,
) -> Callable[[], Iterable[bytes]]:
    def release() -> Iterable[bytes]:
        if duplicated:
            _close_quietly(sock, None)
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return adapter.release(environ, start_response)

    return release


def request_socket(environ: Environ, start_response: StartResponse) -> socket.socket | None:
    """The socket of this request's client connection, left with the WSGI server.

    For watching a request (say, to cut a body that arrives too slowly), not for
    taking it over: that is :func:`hijack`. None when the server hides its socket.
    """
    if "gunicorn.socket" in environ:  # every gunicorn worker, sync included
        sock: socket.socket = environ["gunicorn.socket"]
        return sock
    for adapter in _ADAPTERS:
        if adapter is _GUNICORN:
            continue
        try:
            if adapter.matches(environ, start_response):
                return adapter.raw_socket(environ, start_response)
        except Exception:  # an unexpected server shape: no socket, no watchdog
            logger.debug("no socket from the %s adapter", adapter.name, exc_info=True)
            return None
    return None


def hijack(
    environ: Environ,
    start_response: StartResponse,
    response_head: bytes,
    detach: bool = False,
    first: bytes = b"",
) -> Hijacked | None:
    """Send ``response_head`` and take the client connection away from the WSGI server.

    :param environ: the WSGI environ of the upgrade request.
    :param start_response: the server's ``start_response`` (gunicorn needs it to
        send the head; werkzeug, gevent and wsgiref to be told to stop).
    :param response_head: the complete ``HTTP/1.1 101 Switching Protocols`` head,
        ending with an empty line.
    :param detach: take the server's own descriptor instead of a duplicate, where
        the server can then forget the connection without closing it (gunicorn's
        async and gthread workers, plain sockets, a 101 answer gunicorn sends without chunked
        framing): the result is :attr:`Hijacked.detached`, and its request may end
        before the WebSocket does. Elsewhere the usual duplicate.
    :param first: bytes to send right after the head (the first WebSocket frames),
        in the same write where the server allows it.
    :returns: the connection, or None when this server exposes no raw socket
        (unknown server, HTTP/2, gunicorn's sync worker); nothing was sent then.
    :raises OSError: if writing the head fails (the client went away).

    Example::

        hijacked = hijack(environ, start_response, head)
        if hijacked is None:
            return bad_request(start_response, "websocket not supported by this server")
        try:
            run_websocket(hijacked.sock, hijacked.buffered)
        finally:
            hijacked.sock.close()
        return hijacked.finish()
    """
    adapter = _find_adapter(environ, start_response)
    raw = adapter.raw_socket(environ, start_response) if adapter is not None else None
    if adapter is None or raw is None:
        logger.debug("no raw socket for %s", environ.get("SERVER_SOFTWARE", "this server"))
        return None
    take_buffered = adapter.take_buffered or _peek_buffered
    buffered = take_buffered(adapter.reader(environ, start_response), raw)
    adapter.send_head(raw, start_response, response_head, first)
    if detach and adapter is _GUNICORN and _detachable(raw, start_response):
        taken = _take_descriptor(raw)
        if taken is not None:
            logger.debug("took a gunicorn connection (%d bytes read ahead)", len(buffered))
            return Hijacked(
                sock=taken,
                buffered=buffered,
                _release=lambda: adapter.release(environ, start_response),
                detached=True,
            )
    sock, duplicated = _own_copy(raw)
    logger.debug("hijacked a %s connection (%d bytes read ahead)", adapter.name, len(buffered))
    release = _make_release(adapter, raw, sock, duplicated, environ, start_response)
    return Hijacked(sock=sock, buffered=buffered, _release=release)
