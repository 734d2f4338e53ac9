"""HTTP long-polling transport: GET drains the outbox, POST delivers packets."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from ..engine.http import TEXT_PLAIN, ErrorCode, Response, compress, error_response
from ..engine.session import EngineSession, State
from ..exceptions import RemoteProtocolError
from ..protocol.eio import decode_payload, encode_payload
from .hijack import request_socket

if TYPE_CHECKING:
    from ..engine.server import EngineServer, StartResponse

__all__ = ["handle_get", "handle_post"]

_NOOP = "6"
_UPGRADE_RACE_WAIT = 0.1
_CLOSE = "1"


def _claim(engine: EngineServer, session: EngineSession, flag: str, method: str) -> Response | None:
    """Mark a GET or POST as in progress; a second concurrent one closes the session
    (the pending request gets the close packet) and is answered 400."""
    with session.lock:
        conflict = getattr(session, flag)
        setattr(session, flag, True)
    if not conflict:
        return None
    engine.logger.info("session %s: second concurrent %s; closing", session.sid, method)
    engine.close_session(session, "transport error", send_close_packet=True)
    return error_response(ErrorCode.BAD_REQUEST, detail=f"overlapping {method} requests")


def handle_get(engine: EngineServer, session: EngineSession, environ: dict[str, Any]) -> Response:
    """Answer a long-poll GET with everything queued (waiting for something first)."""
    refused = _claim(engine, session, "polling_get", "GET")
    if refused is not None:
        return refused
    try:
        if session.state is State.UPGRADING and not session.outbox:
            # the upgrade's "5" may be in flight on the WebSocket: give it a moment,
            # so a GET racing it is refused rather than answered on the old transport
            session.wake.wait(_UPGRADE_RACE_WAIT)
            if session.transport != "polling":
                return error_response(ErrorCode.BAD_REQUEST)
        elif not session.outbox and session.state is State.OPEN:
            session.wake.wait(engine.options.ping_interval + engine.options.ping_timeout)
        items = session.drain()
    finally:
        session.polling_get = False
    if session.closed:
        if session.close_packet:
            items.append(_CLOSE)
        elif not items:
            items.append(_NOOP)
    elif not items:
        items.append(_NOOP)
    body = encode_payload(items).encode("utf-8")
    headers = [("Content-Type", TEXT_PLAIN)]
    if engine.options.http_compression:
        body, encoding = compress(
            body, environ.get("HTTP_ACCEPT_ENCODING"), engine.options.compression_threshold
        )
        if encoding:
            headers.append(("Content-Encoding", encoding))
    return Response(200, headers, body)


def _read_exactly(stream: Any, length: int) -> bytes:
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


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """Read the request body; None when it is larger than ``limit``."""
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text.strip():
        length = int(length_text)
        if length < 0:  # read(-1) would read to EOF, past the limit
            raise ValueError(f"negative Content-Length {length}")
        if length > limit:
            return None
        data = _read_exactly(stream, length)
        if len(data) < length:  # a cut-off payload must not be half delivered
            raise ConnectionError(f"body ended after {len(data)} of {length} bytes")
        return data
    data = bytes(stream.read(limit + 1))
    return None if len(data) > limit else data


def handle_post(
    engine: EngineServer,
    session: EngineSession,
    environ: dict[str, Any],
    start_response: StartResponse | None = None,
) -> Response:
    """Deliver the packets of a POST body to the engine; answer ``ok``.

    The body must arrive within ``http_body_timeout`` seconds (when the WSGI
    server exposes its socket, so it can be cut): a client trickling it in
    (slowloris) gets a 408 and its session is closed.
    """
    refused = _claim(engine, session, "polling_post", "POST")
    if refused is not None:
        return refused
    try:
        return _post(engine, session, environ, start_response)
    finally:
        session.polling_post = False


class _BodyWatchdog:
    """Cuts the read side of a connection whose POST body is late."""

    def __init__(self, engine: EngineServer, session: EngineSession, sock: Any) -> None:
        self.engine = engine
        self.session = session
        self.sock = sock
        self.fired = False
        self._timer = engine.scheduler.call_later(engine.options.http_body_timeout, self._fire)

    @classmethod
    def arm(
        cls,
        engine: EngineServer,
        session: EngineSession,
        environ: dict[str, Any],
        start_response: StartResponse | None,
    ) -> _BodyWatchdog | None:
        """Watch this request's body; None when the WSGI server hides its socket."""
        sock = request_socket(environ, start_response) if start_response is not None else None
        return None if sock is None else cls(engine, session, sock)

    def disarm(self) -> None:
        """The body is read (or failed): nothing to cut any more."""
        self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        self.engine.logger.info(
            "session %s: POST body not received within %.1f s; cutting it",
            self.session.sid, self.engine.options.http_body_timeout,
        )  # fmt: skip
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:  # already gone
            pass


def _post(
    engine: EngineServer,
    session: EngineSession,
    environ: dict[str, Any],
    start_response: StartResponse | None,
) -> Response:
    limit = engine.options.max_http_buffer_size
    watchdog = _BodyWatchdog.arm(engine, session, environ, start_response)
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
    if watchdog is not None and watchdog.fired:
        return _too_slow(engine, session)
    if isinstance(failure, ValueError):
        return _reject(engine, session, "invalid Content-Length")
    if failure is not None:  # the client left mid-body
        engine.logger.info("session %s: POST body not received (%s); closing", session.sid, failure)
        return _close_with_error(engine, session, False, detail="incomplete request body")
    return _deliver_body(engine, session, environ, body, limit)


def _close_with_error(
    engine: EngineServer, session: EngineSession, send_close_packet: bool, **error: Any
) -> Response:
    """Close the session ("transport error") and answer ``error_response(BAD_REQUEST, **error)``."""
    engine.close_session(session, "transport error", send_close_packet=send_close_packet)
    return error_response(ErrorCode.BAD_REQUEST, **error)


def _too_slow(engine: EngineServer, session: EngineSession) -> Response:
    timeout = engine.options.http_body_timeout
    return _close_with_error(
        engine, session, False, status=408, message="Request timeout",
        detail=f"the body took over http_body_timeout ({timeout} s)",
    )  # fmt: skip


def _deliver_body(
    engine: EngineServer,
    session: EngineSession,
    environ: dict[str, Any],
    body: bytes | None,
    limit: int,
) -> Response:
    if body is None:
        engine.logger.info("session %s: POST body over %d bytes", session.sid, limit)
        return _close_with_error(
            engine, session, True, status=413, message="Payload too large",
            detail=f"the limit (max_http_buffer_size) is {limit} bytes",
        )  # fmt: skip
    if environ.get("CONTENT_TYPE", "").startswith("application/octet-stream"):
        return _reject(engine, session, "binary POST bodies are not part of Engine.IO v4")
    try:
        packets = decode_payload(body.decode("utf-8"))
        for packet in packets:
            if session.closed:
                break
            engine.handle_packet(session, packet)
    except (RemoteProtocolError, UnicodeDecodeError) as exc:
        return _reject(engine, session, str(exc))
    return Response(200, [("Content-Type", TEXT_PLAIN)], b"ok")


def _reject(engine: EngineServer, session: EngineSession, why: str) -> Response:
    engine.logger.info("session %s: bad POST (%s); closing", session.sid, why)
    engine.close_session(session, "parse error", send_close_packet=True)
    return error_response(ErrorCode.BAD_REQUEST, detail=why)
