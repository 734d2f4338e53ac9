"""A plain WebSocket echo endpoint on sio_wsgi's own WebSocket code, for Autobahn|Testsuite.

Not part of the package: it exists so that ``wstest -m fuzzingclient`` can drive
the framing (:mod:`sio_wsgi.protocol.websocket`) and the connection code (reader
loop, direct non-blocking writes, writer task, close handling:
:class:`sio_wsgi.transports.websocket.WebSocketConnection`) with nothing of
Engine.IO in between. It mirrors ``WebSocketTransport.open`` minus the OPEN packet:

    check_handshake -> hijack(101 head) -> EngineSession (OPEN) -> conn.attach
    -> conn.read_loop -> conn.finish

:class:`EchoHost` is the connection's :class:`~sio_wsgi.engine.ports.Host`: the
connection hands it every text frame (``on_message`` for one starting with ``4``,
``handle_text`` for the others) and every binary frame; it writes each back as one
frame, exactly as ``EngineServer._push`` writes (the connection's ``write`` fast
path, else the session outbox and ``kick``).

The async mode is the one ``SIO_ECHO_MODE`` names (threading, eventlet, gevent),
else whatever the server monkey-patched. ``GET /info`` answers it as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sio_wsgi.config import ServerOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.engine.session import EngineSession, PushResult, Transition
from sio_wsgi.protocol import websocket as ws
from sio_wsgi.protocol.deflate import negotiate
from sio_wsgi.protocol.eio import MESSAGE_PREFIX, Packet, Wire
from sio_wsgi.runtime.scheduler import Scheduler, TimerHandle
from sio_wsgi.runtime.select import detect_async_mode, get_driver
from sio_wsgi.transports.hijack import hijack
from sio_wsgi.transports.websocket import WebSocketConnection

__all__ = ["EchoHost", "app", "MAX_MESSAGE"]

#: the largest message Autobahn sends is 16 MiB (cases 9.1.6, 9.2.6)
MAX_MESSAGE = 64 * 1024 * 1024

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class EchoHost:
    """The :class:`~sio_wsgi.engine.ports.Host` of the echo connections.

    :param mode: threading, eventlet or gevent.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.driver = get_driver(mode)
        self.options = ServerOptions(
            async_mode=mode,
            max_http_buffer_size=MAX_MESSAGE,
            max_pending_bytes=MAX_MESSAGE,
            per_message_deflate=True,
            deflate_threshold=0,
        )
        self.logger = logging.getLogger("sio_wsgi.autobahn.echo")
        self.scheduler = Scheduler(self.driver)
        self.sessions: dict[str, EngineSession] = {}
        self._count = 0
        self._lock = self.driver.lock()

    # ----------------------------------------------------------- Host (the port)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        return self.scheduler.call_later(delay, fn, *args)

    def create_session(
        self, transport: str, environ: Environ, connection: Any = None
    ) -> EngineSession:
        with self._lock:
            self._count += 1
            sid = f"echo{self._count}"
        session = EngineSession(
            sid, transport, environ, self.driver, self.options.max_pending_bytes, connection
        )
        session.transition(Transition.ACCEPT)  # OPENING -> OPEN: no handler to ask
        self.sessions[sid] = session
        return session

    def open_packet(self, sid: str, transport: str) -> str:
        raise NotImplementedError("the echo endpoint sends no Engine.IO OPEN packet")

    def close_session(
        self, session: EngineSession, reason: DisconnectReason, send_close_packet: bool
    ) -> None:
        if not session.close(reason):
            return
        self.sessions.pop(session.sid, None)
        conn = session.connection
        if conn is not None:
            conn.session_closed(send_close_packet)

    def handle_packet(self, session: EngineSession, packet: Packet) -> None:
        raise NotImplementedError("the echo endpoint decodes no Engine.IO packet")

    def handle_text(self, session: EngineSession, text: str) -> None:
        """A text frame not starting with ``4``: echo it as it came."""
        self._push(session, Outgoing((text,)))

    def on_message(self, sid: str, data: Wire) -> None:
        """A text frame starting with ``4`` (``data`` without it), or a binary frame."""
        session = self.sessions.get(sid)
        if session is None:
            return
        item: Wire = data if isinstance(data, bytes) else MESSAGE_PREFIX + data
        self._push(session, Outgoing((item,)))

    # ------------------------------------------------------------------ writing

    def _push(self, session: EngineSession, out: Outgoing) -> None:
        """What ``EngineServer._push`` does: write now, or queue and kick."""
        conn = session.connection
        if conn is not None and conn.write(out):
            return
        result = session.push(out)
        if result is PushResult.QUEUED:
            conn = session.connection
            if conn is not None:
                conn.kick()
        elif result is PushResult.OVERFLOW:
            self.logger.warning("session %s: outbox overflow, closing", session.sid)
            self.close_session(session, DisconnectReason.TRANSPORT_ERROR, False)

    # ------------------------------------------------------------------ serving

    def serve(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Take one WebSocket request over and echo until it ends."""
        headers = ws.headers_from_environ(environ)
        try:
            accept = ws.check_handshake(environ.get("REQUEST_METHOD", "GET"), headers)
        except ws.HandshakeError as exc:
            return _plain(start_response, f"{exc.status} Bad Request", str(exc), exc.headers)
        # permessage-deflate whenever the client offers it (sections 12-13 do), every
        # message compressed (threshold 0), as WebSocketTransport negotiates it
        offer = headers.get("sec-websocket-extensions")
        negotiated = negotiate(offer, self.options.deflate_threshold)
        agreed, deflate = negotiated if negotiated is not None else (None, None)
        extension = [] if agreed is None else [("Sec-WebSocket-Extensions", agreed)]
        hijacked = hijack(environ, start_response, ws.handshake_response(accept, extension))
        if hijacked is None:
            return _plain(start_response, "400 Bad Request", "no WebSocket on this server")
        session = self.create_session("websocket", environ)
        conn = WebSocketConnection(self, hijacked, None, deflate)
        if conn.attach(session):
            conn.read_loop(session)
        return conn.finish(session)


def _plain(
    start_response: StartResponse, status: str, text: str, headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


_host: EchoHost | None = None
_host_lock = threading.Lock()


def _get_host() -> EchoHost:
    """The process's host, made on the first request (after any monkey-patching)."""
    global _host
    if _host is None:
        with _host_lock:
            if _host is None:
                _host = EchoHost(os.environ.get("SIO_ECHO_MODE") or detect_async_mode())
    return _host


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``/info``: the mode as JSON; anything else: the WebSocket echo."""
    host = _get_host()
    if environ.get("PATH_INFO") == "/info":
        info = {"mode": host.mode, "driver": host.driver.name, "detected": detect_async_mode()}
        return _plain(start_response, "200 OK", json.dumps(info))
    return host.serve(environ, start_response)
