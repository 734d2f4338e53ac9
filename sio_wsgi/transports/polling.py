"""HTTP long-polling transport: GET drains the outbox, POST delivers packets.

A polling session's :class:`PollingConnection` is its
:class:`~sio_wsgi.engine.ports.Connection`: it holds the GET and POST slots
(one request of each kind at a time) and the event a waiting GET sleeps on.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Protocol

from ..engine.http import TEXT_PLAIN, ErrorCode, Response, compress, error_response
from ..engine.outgoing import Outgoing
from ..engine.ports import RELAY_BODY_TIMEOUT, DisconnectReason, Environ, Host, StartResponse
from ..engine.session import EngineSession, State, Transition
from ..exceptions import RemoteProtocolError
from ..protocol.eio import CLOSE, NOOP, SEPARATOR, decode_payload
from ..runtime.base import Event
from .hijack import request_socket

__all__ = ["PollingConnection", "PollingTransport", "read_exactly"]


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


#: a GET arriving while the upgrade's "5" may be in flight waits this long for it
_UPGRADE_RACE_WAIT = 0.1
#: how often such a GET looks again
_UPGRADE_POLL = 0.002


class PollingConnection:
    """The long-polling side of one session.

    ``get_active`` / ``post_active`` say a GET / POST is in progress (a second
    concurrent one closes the session); both change under the session's lock.
    """

    name = "polling"
    __slots__ = ("wake", "get_active", "post_active", "close_packet")

    def __init__(self, wake: Event) -> None:
        self.wake = wake
        self.get_active = False
        self.post_active = False
        self.close_packet = False

    def write(self, out: Outgoing) -> bool:
        return False  # always queued, for the next GET

    def writable(self) -> bool:
        return self.get_active

    def kick(self) -> None:
        self.wake.set()

    def run_inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        return False

    def session_closed(self, send_close_packet: bool) -> None:
        self.close_packet = send_close_packet
        self.wake.set()

    def claim(self, session: EngineSession, get: bool) -> bool:
        """Take the GET (or POST) slot; False when a request of that kind is in progress."""
        with session.lock:
            if get:
                busy, self.get_active = self.get_active, True
            else:
                busy, self.post_active = self.post_active, True
        return not busy

    def drain(self, session: EngineSession) -> tuple[list[Outgoing], bool]:
        """Take what is queued; also whether the session has ended."""
        with session.lock:
            items = session.take()
            ended = session.closed
            if ended:  # a later GET must not wait
                self.wake.set()
            else:
                self.wake.clear()
        return items, ended


class PollingTransport:
    """Serves the polling requests of one engine."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def connection(self) -> PollingConnection:
        """A new polling side for a session being opened."""
        return PollingConnection(self.host.driver.event())

    def _slot(self, session: EngineSession, get: bool) -> PollingConnection | Response:
        """The session's polling connection with the GET (or POST) slot taken, or the
        error: a session carried by a WebSocket now, or a second concurrent request
        (which closes the session: the pending request gets the close packet)."""
        conn = session.connection
        if not isinstance(conn, PollingConnection):
            return error_response(ErrorCode.BAD_REQUEST, detail="session uses another transport")
        if conn.claim(session, get):
            return conn
        method = "GET" if get else "POST"
        self.host.logger.info("session %s: second concurrent %s; closing", session.sid, method)
        self.host.close_session(session, DisconnectReason.TRANSPORT_ERROR, send_close_packet=True)
        return error_response(ErrorCode.BAD_REQUEST, detail=f"overlapping {method} requests")

    def get(self, session: EngineSession, environ: Environ) -> Response:
        """Answer a long-poll GET with everything queued (waiting for something first)."""
        conn = self._slot(session, get=True)
        if isinstance(conn, Response):
            return conn
        try:
            if session.state is State.UPGRADING and not session.outbox:
                self._await_upgrade(session)
                if session.transport != "polling":
                    return error_response(ErrorCode.BAD_REQUEST)
            elif not session.outbox and session.state is State.OPEN:
                options = self.host.options
                conn.wake.wait(options.ping_interval + options.ping_timeout)
            items, ended = conn.drain(session)
        finally:
            conn.get_active = False
        parts = [out.payload() for out in items]
        if ended:
            session.transition(Transition.FINISH)
            if conn.close_packet:
                parts.append(CLOSE)
        if not parts:
            parts.append(NOOP)
        return self._payload_response(SEPARATOR.join(parts).encode("utf-8"), environ)

    def _await_upgrade(self, session: EngineSession) -> None:
        """Hold a GET that came during an upgrade only while it may be racing the "5".

        Once "3probe" is out, the client pauses polling and sends "5" only after its
        GET in flight has returned: holding that GET holds the upgrade, and all the
        client writes meanwhile (a "41" included, lost if it quits). So it is answered
        at once unless bytes the client sent on the WebSocket are not acted on yet
        (then it is refused should they upgrade the session). Before "2probe" is
        answered, and when the probe cannot tell (TLS), it waits at most
        ``_UPGRADE_RACE_WAIT``.
        """
        sleep = self.host.driver.sleep
        for _ in range(round(_UPGRADE_RACE_WAIT / _UPGRADE_POLL)):
            if session.state is not State.UPGRADING or session.outbox:
                return
            probe = session.probe
            if probe is not None and not probe.input_pending():
                return
            sleep(_UPGRADE_POLL)

    def _payload_response(self, body: bytes, environ: Environ) -> Response:
        headers = [("Content-Type", TEXT_PLAIN)]
        options = self.host.options
        if options.http_compression:
            body, encoding = compress(
                body, environ.get("HTTP_ACCEPT_ENCODING"), options.compression_threshold
            )
            if encoding:
                headers.append(("Content-Encoding", encoding))
        return Response(200, headers, body)

    def post(
        self,
        session: EngineSession,
        environ: Environ,
        start_response: StartResponse | None = None,
    ) -> Response:
        """Deliver the packets of a POST body to the engine; answer ``ok``.

        The body must arrive within ``http_body_timeout`` seconds (when the WSGI
        server exposes its socket, so it can be cut): a client trickling it in
        (slowloris) gets a 408 and its session is closed.
        """
        conn = self._slot(session, get=False)
        if isinstance(conn, Response):
            return conn
        try:
            return self._post(session, environ, start_response)
        finally:
            conn.post_active = False

    def _post(
        self, session: EngineSession, environ: Environ, start_response: StartResponse | None
    ) -> Response:
        limit = self.host.options.max_http_buffer_size
        sock = request_socket(environ, start_response) if start_response is not None else None
        watchdog = None if sock is None else _BodyWatchdog(self.host, session, sock)
        body: bytes | None = None
        failure: Exception | None = None
        try:
            body = _read_body(environ, limit)
        except (ValueError, OSError) as exc:
            failure = exc
        finally:
            if watchdog is not None:
                watchdog.disarm()
        # a cut body ends however the server's reader takes it (short, OSError, even
        # ValueError from a chunked reader): the watchdog decides first
        if (watchdog is not None and watchdog.fired) or environ.get(RELAY_BODY_TIMEOUT):
            timeout = self.host.options.http_body_timeout
            detail = f"the body took over http_body_timeout ({timeout} s)"
            return self._close_with_error(
                session, False, status=408, message="Request timeout", detail=detail
            )
        if isinstance(failure, ValueError):
            return self._reject(session, "invalid Content-Length")
        if failure is not None:  # the client left mid-body
            self.host.logger.info(
                "session %s: POST body not received (%s); closing", session.sid, failure
            )
            return self._close_with_error(session, False, detail="incomplete request body")
        if body is None:
            self.host.logger.info("session %s: POST body over %d bytes", session.sid, limit)
            detail = f"the limit (max_http_buffer_size) is {limit} bytes"
            return self._close_with_error(
                session, True, status=413, message="Payload too large", detail=detail
            )
        if environ.get("CONTENT_TYPE", "").startswith("application/octet-stream"):
            return self._reject(session, "binary POST bodies are not part of Engine.IO v4")
        return self._deliver(session, body)

    def _deliver(self, session: EngineSession, body: bytes) -> Response:
        try:
            for packet in decode_payload(body.decode("utf-8")):
                if session.closed:
                    break
                self.host.handle_packet(session, packet)
        except (RemoteProtocolError, UnicodeDecodeError) as exc:
            return self._reject(session, str(exc))
        return Response(200, [("Content-Type", TEXT_PLAIN)], b"ok")

    def _close_with_error(
        self, session: EngineSession, send_close_packet: bool, **error: Any
    ) -> Response:
        """Close the session ("transport error") and answer with a 400-class error."""
        self.host.close_session(session, DisconnectReason.TRANSPORT_ERROR, send_close_packet)
        return error_response(ErrorCode.BAD_REQUEST, **error)

    def _reject(self, session: EngineSession, why: str) -> Response:
        self.host.logger.info("session %s: bad POST (%s); closing", session.sid, why)
        self.host.close_session(session, DisconnectReason.PARSE_ERROR, send_close_packet=True)
        return error_response(ErrorCode.BAD_REQUEST, detail=why)


def read_exactly(stream: _Readable, length: int) -> bytes:
    """Read ``length`` bytes (fewer only at end of stream), whatever each read returns."""
    chunks: list[bytes] = []
    got = 0
    while got < length:
        chunk = bytes(stream.read(length - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_body(environ: Environ, limit: int) -> bytes | None:
    """Read the request body; None when it is larger than ``limit``."""
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text.strip():
        length = int(length_text)
        if length < 0:  # read(-1) would read to EOF, past the limit
            raise ValueError(f"negative Content-Length {length}")
        if length > limit:
            return None
        data = read_exactly(stream, length)
        if len(data) < length:  # a cut-off payload must not be half delivered
            raise ConnectionError(f"body ended after {len(data)} of {length} bytes")
        return data
    data = bytes(stream.read(limit + 1))
    return None if len(data) > limit else data


class _BodyWatchdog:
    """Cuts the read side of a connection whose POST body is late."""

    def __init__(self, host: Host, session: EngineSession, sock: socket.socket) -> None:
        self.host = host
        self.session = session
        self.sock = sock
        self.fired = False
        self._timer = host.call_later(host.options.http_body_timeout, self._fire)

    def disarm(self) -> None:
        """The body is read (or failed): nothing to cut any more."""
        self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        self.host.logger.info(
            "session %s: POST body not received within %.1f s; cutting it",
            self.session.sid,
            self.host.options.http_body_timeout,
        )
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:  # already gone
            pass
