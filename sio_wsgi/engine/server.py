"""EngineServer: the Engine.IO v4 server (session table, routing, heartbeats).

It classifies each WSGI request, hands it to the polling or WebSocket transport
(to which it is their :class:`~sio_wsgi.engine.ports.Host`), and tells its
:class:`EngineHandler` about connects, messages and disconnects. See
docs/DESIGN.md for the contract with the Socket.IO layer.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..config import ServerOptions
from ..exceptions import RemoteProtocolError
from ..protocol.eio import PROTOCOL_VERSION, Packet, PacketType, Wire, decode_text, encode_packet
from ..runtime.base import Driver
from ..runtime.scheduler import Scheduler, TimerHandle
from ..stats import Stats
from ..transports.keepalive import POLLED, PollingKeepAlive
from ..transports.polling import PollingTransport
from ..transports.websocket import WebSocketTransport
from .http import (
    TEXT_PLAIN,
    ErrorCode,
    Response,
    check_query,
    cookie_header,
    cors_headers,
    error_response,
    origin_allowed,
    parse_query,
)
from .outgoing import PING_OUT, Outgoing
from .ports import RELAYED, Connection, DisconnectReason, Environ, RelayBus, StartResponse
from .relay import Relay
from .session import EngineSession, PushResult, Transition

__all__ = ["EngineHandler", "EngineServer", "StartResponse", "new_sid"]

module_logger = logging.getLogger(__name__)
_UNKNOWN_SID_WARN_EVERY = 60.0
#: how many closed session ids a node remembers, so that a client's last request after
#: its own close (python-engineio polls once more) is not taken for a missing sticky session
_CLOSED_SIDS_KEPT = 1024


Headers = list[tuple[str, str]]


class EngineHandler(Protocol):
    """What the layer above the engine implements."""

    def on_connect(self, sid: str, environ: Environ) -> bool: ...

    def on_message(self, sid: str, data: Wire) -> None: ...

    def on_disconnect(self, sid: str, reason: DisconnectReason) -> None: ...


def new_sid() -> str:
    """A new session id from a cryptographically secure source (120 bits, 20 url-safe chars)."""
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
        self.on_message: Callable[[str, Wire], None] = handler.on_message
        self.scheduler = Scheduler(driver)
        self.sessions: dict[str, EngineSession] = {}
        #: requests for other processes' sessions go there (see enable_relay)
        self.relay: Relay | None = None
        #: this process's host id when relaying: the start of its session ids
        self.sid_prefix = ""
        #: the counters (sio_wsgi.stats) when metrics are on
        self.metrics: Stats | None = None
        self._shutting_down = False
        self._unknown_sid_warned = -_UNKNOWN_SID_WARN_EVERY
        #: the ids of the sessions closed last here, oldest first (bounded)
        self._closed_sids: OrderedDict[str, None] = OrderedDict()
        #: per transport, the OPEN packet's JSON after its sid (the options are frozen)
        self._open_tails = {name: self._open_tail(name) for name in ("polling", "websocket")}
        self._polling = PollingTransport(self)
        self._websocket = WebSocketTransport(self)
        self._inline = self._websocket.handover is not None
        #: serves gunicorn's keep-alive polling connections for turns (None: off)
        self._keepalive = (
            PollingKeepAlive(
                self._answer, options.max_http_buffer_size, threads=driver.name == "threading"
            )
            if options.polling_keepalive
            else None
        )
        self._on_packet: dict[PacketType, Callable[[EngineSession, Packet], None]] = {
            PacketType.MESSAGE: self._on_message_packet,
            PacketType.PONG: self._on_pong,
            PacketType.CLOSE: self._on_close,
            PacketType.PING: self._on_ping,
            PacketType.NOOP: self._on_noop,
        }

    # ----------------------------------------------------------------- public API

    def send(self, sid: str, out: Outgoing, volatile: bool = False) -> bool:
        """Queue packets to one session, atomically and in order; safe from any thread.

        Hand a broadcast's :class:`Outgoing` to every recipient: its frames and
        polling text are then built once for all of them.

        :returns: False when dropped (volatile and not writable now, or unknown sid).
        """
        session = self.sessions.get(sid)
        if session is None:
            return False
        if self.driver.in_foreign_thread():
            # a plain OS thread under eventlet/gevent: hand the push to the loop
            self.driver.call_soon_threadsafe(self._push, session, out, volatile)
            return True
        return self._push(session, out, volatile)

    def dispatch(self, sid: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in another task soon; in threading mode right here
        when called by the WebSocket reader of ``sid`` (no thread handoff: if
        ``fn`` blocks, the reading moves to a new thread, see
        :class:`~sio_wsgi.transports.websocket.ReaderHandover`)."""
        if self._inline:
            session = self.sessions.get(sid)
            conn = None if session is None else session.connection
            if conn is not None and conn.run_inline(fn, args):
                return
        self.driver.submit(fn, *args)

    def enable_relay(self, bus: RelayBus) -> None:
        """Serve sessions owned by other processes through ``bus`` (and prefix this
        process's session ids with its host id, so that the others find it)."""
        self.relay = Relay(self, bus, self.driver, self.options, self.scheduler.call_later)
        self.sid_prefix = bus.host_id

    def release_reader(self) -> None:
        """Called before a handler waits (``call()``, ``sleep()``): if it runs
        inline on a WebSocket reader, move the reading to a new thread now."""
        if self._inline:
            self._websocket.release_reader()

    def close(
        self, sid: str, reason: DisconnectReason = DisconnectReason.SERVER_DISCONNECT
    ) -> None:
        """Close a session after flushing what is queued for it."""
        session = self.sessions.get(sid)
        if session is None:
            return
        if self.driver.in_foreign_thread():
            self.driver.call_soon_threadsafe(self.close_session, session, reason, True)
        else:
            self.close_session(session, reason, send_close_packet=True)

    def environ(self, sid: str) -> Environ | None:
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
            self.close_session(
                session, DisconnectReason.SERVER_SHUTTING_DOWN, send_close_packet=True
            )
        self.scheduler.stop()

    # ------------------------------------------------------------ request routing

    def handle_request(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for requests under the Engine.IO path."""
        result = self._answer(environ, start_response)
        if isinstance(result, Response):
            if self._keepalive is not None and POLLED in environ:
                return self._keepalive.serve(environ, start_response, result)
            start_response(result.status_line, result.wsgi_headers())
            return [result.body]
        return result

    def _answer(
        self, environ: Environ, start_response: StartResponse
    ) -> Response | Iterable[bytes]:
        """Route one request; a 500 answer when that fails unexpectedly."""
        try:
            return self._route(environ, start_response)
        except Exception:
            self.logger.exception("internal error handling %s", environ.get("QUERY_STRING"))
            return error_response(ErrorCode.BAD_REQUEST, status=500, message="Internal error")

    def _route(self, environ: Environ, start_response: StartResponse) -> Response | Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        origin = environ.get("HTTP_ORIGIN")
        options = self.options
        if not origin_allowed(
            origin,
            options.cors_allowed_origins,
            environ.get("HTTP_HOST"),
            environ.get("wsgi.url_scheme", "http"),
        ):
            self.logger.info("refused request from origin %s", origin)
            return error_response(ErrorCode.FORBIDDEN, detail="Not an accepted origin")
        cors = cors_headers(
            origin,
            options.cors_allowed_origins,
            options.cors_credentials,
            preflight=method == "OPTIONS",
            request_headers=environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"),
        )
        if method == "OPTIONS":
            return Response(204, cors)
        query = parse_query(environ.get("QUERY_STRING", ""))
        checked = check_query(query, options.transports, PROTOCOL_VERSION)
        if isinstance(checked, Response):
            return _with(checked, cors)
        transport, sid = checked
        if sid is None:
            if method != "GET":
                return _with(error_response(ErrorCode.BAD_HANDSHAKE_METHOD), cors)
            if transport == "websocket":
                return self._websocket.open(environ, start_response, cors)
            return _with(self._open_polling(environ), cors)
        return self._route_session(sid, transport, method, environ, start_response, cors)

    def _route_session(
        self,
        sid: str,
        transport: str,
        method: str,
        environ: Environ,
        start_response: StartResponse,
        cors: Headers,
    ) -> Response | Iterable[bytes]:
        session = self.sessions.get(sid)
        if session is not None and self._pong_overdue(session):
            # the timer may lag on a loaded machine: the deadline alone decides
            self._ping_timed_out(session)
            session = None
        if session is None:
            relay = self.relay
            if relay is not None and RELAYED not in environ:
                owner = relay.owner_of(sid)
                if owner is not None:
                    return relay.forward(owner, environ, start_response, cors)
            self._log_unknown_sid(sid)
            return _with(error_response(ErrorCode.UNKNOWN_SID), cors)
        if transport == "websocket":
            return self._websocket.upgrade(session, environ, start_response, cors)
        if session.transport != "polling":
            response = error_response(
                ErrorCode.BAD_REQUEST, detail="session uses another transport"
            )
        elif method == "GET":
            environ[POLLED] = True
            response = self._polling.get(session, environ)
        elif method == "POST":
            environ[POLLED] = True
            response = self._polling.post(session, environ, start_response)
        else:
            response = error_response(ErrorCode.BAD_REQUEST, detail=f"method {method} not allowed")
        return _with(response, cors)

    def _remember_closed(self, sid: str) -> None:
        """Keep ``sid`` among the last :data:`_CLOSED_SIDS_KEPT` closed session ids."""
        closed = self._closed_sids
        closed[sid] = None
        if len(closed) > _CLOSED_SIDS_KEPT:  # one in, one out (each closing thread its own)
            closed.popitem(last=False)

    def _log_unknown_sid(self, sid: str) -> None:
        """Say that sticky sessions are probably missing: at WARNING on the module
        logger (seen even with ``logger=False``) at most once a minute, else at INFO.
        A session closed here a moment ago is only logged at DEBUG: its client may
        still ask once more after its own close."""
        if sid in self._closed_sids:
            self.logger.debug("request for session %s, which is closed", sid)
            return
        now = self.driver.monotonic()
        level = logging.INFO
        if now - self._unknown_sid_warned >= _UNKNOWN_SID_WARN_EVERY:
            self._unknown_sid_warned = now
            level = logging.WARNING
        module_logger.log(
            level,
            "unknown session id %s: it expired or was closed, or it lives on another "
            "node (with several workers, long-polling needs sticky sessions or a client "
            "manager to relay requests: see docs/multinode.md)",
            sid,
        )

    # ----------------------------------------------------------- Host (transports)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` in the timer task after ``delay`` seconds."""
        return self.scheduler.call_later(delay, fn, *args)

    def open_packet(self, sid: str, transport: str) -> str:
        """The OPEN packet text for a new session."""
        return encode_packet(
            PacketType.OPEN, '{"sid":' + json.dumps(sid) + self._open_tails[transport]
        )

    def _open_tail(self, transport: str) -> str:
        """What follows the sid in the OPEN packet: it depends on the options and the
        transport only, so it is encoded once (a JSON encoder with compact separators
        is built per call)."""
        options = self.options
        offers_upgrade = (
            transport == "polling" and options.allow_upgrades and "websocket" in options.transports
        )
        rest = {
            "upgrades": ["websocket"] if offers_upgrade else [],
            "pingInterval": int(options.ping_interval * 1000),
            "pingTimeout": int(options.ping_timeout * 1000),
            "maxPayload": options.max_http_buffer_size,
        }
        # '{"upgrades":...}' becomes ',"upgrades":...}', to follow the sid
        return "," + json.dumps(rest, separators=(",", ":"))[1:]

    def create_session(
        self, transport: str, environ: Environ, connection: Connection | None = None
    ) -> EngineSession | None:
        """Register a new session and ask the handler; None when refused."""
        if self._shutting_down:
            return None
        session = EngineSession(
            self.sid_prefix + new_sid(),
            transport,
            environ,
            self.driver,
            self.options.max_pending_bytes,
            connection,
        )
        self.sessions[session.sid] = session
        try:
            accepted = self.handler.on_connect(session.sid, environ)
        except Exception:
            self.logger.exception("connect handler failed")
            accepted = False
        if accepted is False:
            self.sessions.pop(session.sid, None)
            session.transition(Transition.REFUSE)
            return None
        session.transition(Transition.ACCEPT)
        if self.metrics is not None:
            self.metrics.opened(transport)
        self._schedule_ping(session)
        return session

    def close_session(
        self,
        session: EngineSession,
        reason: DisconnectReason,
        send_close_packet: bool,
        notify_in_task: bool = False,
    ) -> None:
        """Close ``session`` once: drop it from the table and tell the handler."""
        if not session.close(reason):
            return
        if self.metrics is not None:
            self.metrics.closed(reason)
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
        self._remember_closed(session.sid)
        conn = session.connection
        if conn is not None:
            conn.session_closed(send_close_packet)
        if notify_in_task:
            self.driver.spawn(self._notify_disconnect, session.sid, reason)
        else:
            self._notify_disconnect(session.sid, reason)

    def handle_packet(self, session: EngineSession, packet: Packet) -> None:
        """Act on one packet received from the client of ``session``.

        :raises RemoteProtocolError: from the handler's decoding, or for a packet
            the client may not send here.
        """
        on_packet = self._on_packet.get(packet.type)
        if on_packet is None:
            raise RemoteProtocolError(f"unexpected {packet.type.name} packet")
        on_packet(session, packet)

    def handle_text(self, session: EngineSession, text: str) -> None:
        """:meth:`handle_packet` for one encoded text packet (a WebSocket frame)."""
        self.handle_packet(session, decode_text(text))

    # ------------------------------------------------------------------ internals

    def _open_polling(self, environ: Environ) -> Response:
        session = self.create_session("polling", environ, self._polling.connection())
        if session is None:
            return error_response(ErrorCode.FORBIDDEN, detail="connection refused by the server")
        headers = [("Content-Type", TEXT_PLAIN)]
        cookie = cookie_header(self.options.cookie, session.sid)
        if cookie:
            headers.append(cookie)
        return Response(200, headers, self.open_packet(session.sid, "polling").encode())

    def _push(self, session: EngineSession, out: Outgoing, volatile: bool) -> bool:
        if self.metrics is not None:
            self.metrics.sent(len(out.items), out.size)
        conn = session.connection
        if conn is not None and conn.write(out):
            return True  # written now: nobody was writing and nothing was queued
        result = session.push(out, volatile)
        if result is PushResult.QUEUED:
            conn = session.connection  # the upgrade may have switched it meanwhile
            if conn is not None:
                conn.kick()
            return True
        if result is PushResult.OVERFLOW:
            self.logger.warning(
                "session %s has over %d bytes queued: the client is not reading; closing it",
                session.sid,
                self.options.max_pending_bytes,
            )
            self.close_session(session, DisconnectReason.TRANSPORT_ERROR, send_close_packet=False)
        return False

    def _notify_disconnect(self, sid: str, reason: DisconnectReason) -> None:
        try:
            self.handler.on_disconnect(sid, reason)
        except Exception:
            self.logger.exception("disconnect handler failed for %s", sid)

    # ------------------------------------------------------------ packet handlers

    def _on_message_packet(self, session: EngineSession, packet: Packet) -> None:
        self.on_message(session.sid, packet.data)

    def _on_close(self, session: EngineSession, packet: Packet) -> None:
        self.close_session(session, DisconnectReason.CLIENT_DISCONNECT, send_close_packet=False)

    def _on_ping(self, session: EngineSession, packet: Packet) -> None:
        pong = encode_packet(PacketType.PONG, str(packet.data))
        self._push(session, Outgoing((pong,)), False)

    def _on_noop(self, session: EngineSession, packet: Packet) -> None:
        pass

    # ------------------------------------------------------------------- heartbeat

    def _schedule_ping(self, session: EngineSession) -> None:
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
        timer = session.ping_timer
        due = timer.when if timer is not None else self.driver.monotonic()
        session.pong_deadline = due + self.options.ping_timeout
        session.pong_timer = self.scheduler.call_later(
            self.options.ping_timeout, self._ping_timed_out, session
        )
        self._push(session, PING_OUT, False)

    def _on_pong(self, session: EngineSession, packet: Packet) -> None:
        timer = session.pong_timer
        if timer is None:
            return
        timer.cancel()
        session.pong_timer = None
        session.pong_deadline = None
        if session.ping_timer is not None:
            session.ping_timer.cancel()
        self._schedule_ping(session)

    def _ping_timed_out(self, session: EngineSession) -> None:
        if session.closed:
            return
        self.logger.info("session %s: no pong within ping_timeout", session.sid)
        self.close_session(
            session, DisconnectReason.PING_TIMEOUT, send_close_packet=False, notify_in_task=True
        )


def _with(response: Response, headers: Headers) -> Response:
    response.headers.extend(headers)
    return response
