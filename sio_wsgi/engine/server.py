"""EngineServer: the Engine.IO v4 server (session table, routing, heartbeats).

It classifies each WSGI request, hands it to the polling or WebSocket transport,
and tells its :class:`EngineHandler` about connects, messages and disconnects.
See docs/DESIGN.md for the contract with the Socket.IO layer.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl

from ..config import ServerOptions
from ..protocol.eio import Packet, PacketType, Wire
from ..runtime.base import Driver
from ..runtime.scheduler import Scheduler
from ..transports import polling, websocket
from ..transports.websocket import HANDOVER_AFTER, inline_connection
from .http import (
    TEXT_PLAIN,
    ErrorCode,
    Response,
    cookie_header,
    cors_headers,
    error_response,
    origin_allowed,
)
from .session import EngineSession, State

__all__ = ["EngineHandler", "EngineServer", "StartResponse"]

StartResponse = Callable[..., Any]

module_logger = logging.getLogger(__name__)
_UNKNOWN_SID_WARN_EVERY = 60.0

REASON_CLIENT = "client disconnect"
REASON_SERVER = "server disconnect"
REASON_PING = "ping timeout"
REASON_TRANSPORT_CLOSE = "transport close"
REASON_TRANSPORT_ERROR = "transport error"
REASON_PARSE = "parse error"
REASON_SHUTDOWN = "server shutting down"


class EngineHandler(Protocol):
    """What the layer above the engine implements."""

    def on_connect(self, sid: str, environ: dict[str, Any]) -> bool: ...

    def on_message(self, sid: str, data: Wire) -> None: ...

    def on_disconnect(self, sid: str, reason: str) -> None: ...


def new_sid() -> str:
    """A new session id from a cryptographically secure source (20 url-safe chars)."""
    return secrets.token_urlsafe(15)


class EngineServer:
    """The Engine.IO v4 server.

    :param options: validated server options.
    :param handler: receives connect / message / disconnect notifications.
    :param driver: concurrency driver.
    :param logger: where the engine logs.
    """

    def __init__(
        self,
        options: ServerOptions,
        handler: EngineHandler,
        driver: Driver,
        logger: logging.Logger,
    ) -> None:
        self.options = options
        self.handler = handler
        self.driver = driver
        self.logger = logger
        self.scheduler = Scheduler(driver)
        self.sessions: dict[str, EngineSession] = {}
        self._shutting_down = False
        self._unknown_sid_warned = -_UNKNOWN_SID_WARN_EVERY
        #: the last broadcast's messages (a tuple, the same object for every
        #: recipient) and their Engine.IO items, prefixed once for all of them
        self._shared: tuple[Sequence[Wire], list[Wire]] = ((), [])
        #: threading mode: handlers run inline on their WebSocket reader; the
        #: readers running one now, watched by a sweep while there are any
        self.inline_handlers = driver.name == "threading"
        self.busy_readers: dict[Any, None] = {}
        self._sweeping = False
        self._sweep_lock = driver.lock()

    # ----------------------------------------------------------------- public API

    def send(self, sid: str, messages: Sequence[Wire], volatile: bool = False) -> bool:
        """Queue Engine.IO messages (str: text, bytes: binary) to one session, atomically.

        Pass a broadcast's messages as one tuple, the same object for every
        recipient: its items are built once and framed once for all of them.

        :returns: False when dropped (volatile and not writable now, or unknown sid).
        """
        session = self.sessions.get(sid)
        if session is None:
            return False
        shared = self._shared
        if shared[0] is messages:  # one broadcast: the same items (and frames) for all
            items = shared[1]
        else:
            items = [m if isinstance(m, bytes) else "4" + m for m in messages]
            if type(messages) is tuple:  # immutable: safe to reuse while it is the same
                self._shared = (messages, items)
        if self.driver.in_foreign_thread():
            # a plain OS thread under eventlet/gevent: hand the push to the loop
            self.driver.call_soon_threadsafe(self._push, session, items, volatile)
            return True
        return self._push(session, items, volatile)

    def dispatch(self, sid: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in another task soon; in threading mode right here
        when called by the WebSocket reader of ``sid`` (no thread handoff: if
        ``fn`` blocks, the reading moves to a new thread, see
        :meth:`WebSocketConnection.run_inline`)."""
        if self.inline_handlers:
            session = self.sessions.get(sid)
            if session is not None and session.ws_attached and session.extra.run_inline(fn, args):
                return
        self.driver.submit(fn, *args)

    def release_reader(self) -> None:
        """Called before a handler waits (``call()``, ``sleep()``): if it runs
        inline on a WebSocket reader, move the reading to a new thread now."""
        if self.inline_handlers:
            conn = inline_connection()
            if conn is not None:
                conn.hand_over(force=True)

    def watch_busy_readers(self) -> None:
        """Make sure a sweep runs while :attr:`busy_readers` is not empty."""
        if self._sweeping:
            return
        with self._sweep_lock:
            if self._sweeping:
                return
            self._sweeping = True
        self.scheduler.call_later(HANDOVER_AFTER, self._sweep)

    def _sweep(self) -> None:
        """Hand the reading over for readers stuck in a handler; re-arm while needed."""
        for conn in list(self.busy_readers):
            conn.hand_over(force=False)
        with self._sweep_lock:
            again = bool(self.busy_readers)
            self._sweeping = again
        if again:
            self.scheduler.call_later(HANDOVER_AFTER, self._sweep)
        elif self.busy_readers:  # one came in while stopping, and saw the sweep still on
            self.watch_busy_readers()

    def close(self, sid: str, reason: str = REASON_SERVER) -> None:
        """Close a session after flushing what is queued for it."""
        session = self.sessions.get(sid)
        if session is None:
            return
        if self.driver.in_foreign_thread():
            self.driver.call_soon_threadsafe(self.close_session, session, reason, True)
        else:
            self.close_session(session, reason, send_close_packet=True)

    def environ(self, sid: str) -> dict[str, Any] | None:
        """The handshake environ of ``sid`` (None when unknown)."""
        session = self.sessions.get(sid)
        return None if session is None else session.environ

    def is_connected(self, sid: str) -> bool:
        """True while ``sid`` is an open session."""
        session = self.sessions.get(sid)
        return session is not None and not session.closed

    def transport(self, sid: str) -> str | None:
        """The current transport of ``sid`` (``"polling"`` / ``"websocket"``)."""
        session = self.sessions.get(sid)
        return None if session is None else session.transport

    def shutdown(self) -> None:
        """Close every session (reason "server shutting down") and stop the timers."""
        self._shutting_down = True
        for session in list(self.sessions.values()):
            self.close_session(session, REASON_SHUTDOWN, send_close_packet=True)
        self.scheduler.stop()

    # ------------------------------------------------------------ request routing

    def handle_request(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """The WSGI entry point for requests under the Engine.IO path."""
        try:
            result = self._route(environ, start_response)
        except Exception:
            self.logger.exception("internal error handling %s", environ.get("QUERY_STRING"))
            result = error_response(ErrorCode.BAD_REQUEST, status=500, message="Internal error")
        if isinstance(result, Response):
            start_response(result.status_line, result.headers)
            return [result.body]
        return result

    def _route(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Response | Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        origin = environ.get("HTTP_ORIGIN")
        if not origin_allowed(
            origin,
            self.options.cors_allowed_origins,
            environ.get("HTTP_HOST"),
            environ.get("wsgi.url_scheme", "http"),
        ):
            self.logger.info("refused request from origin %s", origin)
            return error_response(ErrorCode.FORBIDDEN, detail="Not an accepted origin")
        cors = cors_headers(
            origin,
            self.options.cors_allowed_origins,
            self.options.cors_credentials,
            preflight=method == "OPTIONS",
            request_headers=environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"),
        )
        if method == "OPTIONS":
            return Response(204, cors)
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        transport = query.get("transport")
        if transport not in self.options.transports:
            return self._with(error_response(ErrorCode.UNKNOWN_TRANSPORT), cors)
        if query.get("EIO") != "4":
            return self._with(error_response(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION), cors)
        sid = query.get("sid")
        if sid is None:
            if method != "GET":
                return self._with(error_response(ErrorCode.BAD_HANDSHAKE_METHOD), cors)
            if transport == "websocket":
                return websocket.handle_open(self, environ, start_response, cors)
            return self._with(self._open_polling(environ), cors)
        return self._route_session(sid, transport, method, environ, start_response, cors)

    def _route_session(
        self,
        sid: str,
        transport: str,
        method: str,
        environ: dict[str, Any],
        start_response: StartResponse,
        cors: list[tuple[str, str]],
    ) -> Response | Iterable[bytes]:
        session = self.sessions.get(sid)
        if session is not None and self._pong_overdue(session):
            # the timer may lag on a loaded machine: the deadline alone decides
            self._ping_timed_out(session)
            session = None
        if session is None:
            self._log_unknown_sid(sid)
            return self._with(error_response(ErrorCode.UNKNOWN_SID), cors)
        if transport == "websocket":
            return websocket.handle_upgrade(self, session, environ, start_response, cors)
        if session.transport != "polling":
            response = error_response(
                ErrorCode.BAD_REQUEST, detail="session uses another transport"
            )
        elif method == "GET":
            response = polling.handle_get(self, session, environ)
        elif method == "POST":
            response = polling.handle_post(self, session, environ, start_response)
        else:
            response = error_response(ErrorCode.BAD_REQUEST, detail=f"method {method} not allowed")
        return self._with(response, cors)

    def _log_unknown_sid(self, sid: str) -> None:
        """Say that sticky sessions are probably missing: at WARNING on the module
        logger (seen even with ``logger=False``) at most once a minute, else at INFO."""
        now = self.driver.monotonic()
        level = logging.INFO
        if now - self._unknown_sid_warned >= _UNKNOWN_SID_WARN_EVERY:
            self._unknown_sid_warned = now
            level = logging.WARNING
        module_logger.log(
            level,
            "unknown session id %s: it expired or was closed, or it lives on another "
            "node (with several workers, long-polling needs sticky sessions: see "
            "docs/multinode.md)",
            sid,
        )

    @staticmethod
    def _with(response: Response, headers: list[tuple[str, str]]) -> Response:
        response.headers.extend(headers)
        return response

    # ------------------------------------------------------------------- sessions

    def handshake_packet(self, sid: str, transport: str) -> str:
        """The OPEN packet text for a new session."""
        upgrades = (
            ["websocket"]
            if transport == "polling"
            and self.options.allow_upgrades
            and "websocket" in self.options.transports
            else []
        )
        body = {
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": int(self.options.ping_interval * 1000),
            "pingTimeout": int(self.options.ping_timeout * 1000),
            "maxPayload": self.options.max_http_buffer_size,
        }
        return "0" + json.dumps(body, separators=(",", ":"))

    def create_session(self, transport: str, environ: dict[str, Any]) -> EngineSession | None:
        """Register a new session and ask the handler; None when refused."""
        if self._shutting_down:
            return None
        session = EngineSession(
            new_sid(), transport, environ, self.driver, self.options.max_pending_bytes
        )
        self.sessions[session.sid] = session
        try:
            accepted = self.handler.on_connect(session.sid, environ)
        except Exception:
            self.logger.exception("connect handler failed")
            accepted = False
        if accepted is False:
            self.sessions.pop(session.sid, None)
            session.mark_closed("refused", send_close_packet=False)
            return None
        self.schedule_ping(session)
        return session

    def _open_polling(self, environ: dict[str, Any]) -> Response:
        session = self.create_session("polling", environ)
        if session is None:
            return error_response(ErrorCode.FORBIDDEN, detail="connection refused by the server")
        headers = [("Content-Type", TEXT_PLAIN)]
        cookie = cookie_header(self.options.cookie, session.sid)
        if cookie:
            headers.append(cookie)
        return Response(200, headers, self.handshake_packet(session.sid, "polling").encode())

    def _push(self, session: EngineSession, items: Sequence[Wire], volatile: bool) -> bool:
        if session.ws_attached and session.extra.write(items):
            return True  # written now: nobody was writing and nothing was queued
        result = session.push(items, volatile)
        if result is None:
            self.logger.warning(
                "session %s has over %d bytes queued: the client is not reading; closing it",
                session.sid,
                self.options.max_pending_bytes,
            )
            self.close_session(session, REASON_TRANSPORT_ERROR, send_close_packet=False)
            return False
        if result and session.extra is not None:
            session.extra.kick()
        return result

    def close_session(
        self,
        session: EngineSession,
        reason: str,
        send_close_packet: bool,
        notify_in_task: bool = False,
    ) -> None:
        """Close ``session`` once: drop it from the table and tell the handler."""
        if not session.mark_closed(reason, send_close_packet):
            return
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
        ws = session.extra
        if ws is not None:
            ws.on_session_closed()
        if notify_in_task:
            self.driver.spawn(self._notify_disconnect, session.sid, reason)
        else:
            self._notify_disconnect(session.sid, reason)

    def _notify_disconnect(self, sid: str, reason: str) -> None:
        try:
            self.handler.on_disconnect(sid, reason)
        except Exception:
            self.logger.exception("disconnect handler failed for %s", sid)

    # ------------------------------------------------------------------- packets

    def handle_packet(self, session: EngineSession, packet: Packet) -> None:
        """Act on one packet received from the client of ``session``.

        :raises RemoteProtocolError: from the handler's decoding, or for a packet
            the client may not send here.
        """
        ptype = packet.type
        if ptype is PacketType.MESSAGE:
            self.handler.on_message(session.sid, packet.data)
        elif ptype is PacketType.PONG:
            self._on_pong(session)
        elif ptype is PacketType.CLOSE:
            self.close_session(session, REASON_CLIENT, send_close_packet=False)
        elif ptype is PacketType.PING:
            self._push(session, ["3" + str(packet.data)], False)
        elif ptype is PacketType.NOOP:
            pass
        else:
            from ..exceptions import RemoteProtocolError

            raise RemoteProtocolError(f"unexpected {ptype.name} packet")

    # ----------------------------------------------------------------- heartbeat

    def schedule_ping(self, session: EngineSession) -> None:
        """Arm the next ping of ``session`` one ``ping_interval`` from now."""
        session.ping_timer = self.scheduler.call_later(
            self.options.ping_interval, self._send_ping, session
        )

    def _pong_overdue(self, session: EngineSession) -> bool:
        deadline = session.pong_deadline
        return deadline is not None and self.driver.monotonic() >= deadline

    def _send_ping(self, session: EngineSession) -> None:
        if session.closed:
            return
        # the deadline counts from when the ping was due, so a lagging timer task
        # does not stretch the heartbeat
        due = session.ping_timer.when if session.ping_timer is not None else self.driver.monotonic()
        session.pong_deadline = due + self.options.ping_timeout
        session.pong_timer = self.scheduler.call_later(
            self.options.ping_timeout, self._ping_timed_out, session
        )
        self._push(session, ["2"], False)

    def _on_pong(self, session: EngineSession) -> None:
        timer = session.pong_timer
        if timer is None:
            return
        timer.cancel()
        session.pong_timer = None
        session.pong_deadline = None
        if session.ping_timer is not None:
            session.ping_timer.cancel()
        self.schedule_ping(session)

    def _ping_timed_out(self, session: EngineSession) -> None:
        if session.state is State.CLOSED:
            return
        self.logger.info("session %s: no pong within ping_timeout", session.sid)
        self.close_session(session, REASON_PING, send_close_packet=False, notify_in_task=True)
