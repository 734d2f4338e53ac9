"""The seam between the Engine.IO server and its transports (no I/O here).

The engine and the transports know each other only through the two protocols
of this module:

- :class:`Connection` is what the engine calls on the transport that carries a
  session now (a WebSocket, or the long-polling slot of a session);
- :class:`Host` is what a transport calls on the engine.

:class:`RelayBus` is what the session relay (:mod:`sio_wsgi.engine.relay`) needs
from a client manager to reach the process that owns a session.

:class:`DisconnectReason` names why a session ended; it is what ``disconnect``
handlers receive (a ``str`` subclass, so ``reason == "ping timeout"`` holds).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import ServerOptions
    from ..protocol.eio import Packet, Wire
    from ..runtime.base import Driver, Timer
    from .outgoing import Outgoing
    from .session import EngineSession

__all__ = [
    "DisconnectReason",
    "Connection",
    "UpgradeCandidate",
    "Host",
    "RelayBus",
    "DIRECT_MESSAGE_PREFIX",
    "RELAYED",
    "RELAY_BODY_TIMEOUT",
    "RELAY_SOCKET",
    "RELAY_ON_HEAD",
    "Environ",
    "StartResponse",
]

#: the first byte of a message sent to one process's inbox (:class:`RelayBus`);
#: the bus's broadcast messages are JSON objects and start with ``{``
DIRECT_MESSAGE_PREFIX = b"\x00"

Environ = dict[str, Any]
"""A WSGI environ."""

#: environ key of a request relayed here by another process: that process's host id
RELAYED = "sio_wsgi.relay.front"
#: environ key: the relaying process cut the POST body after ``http_body_timeout``
RELAY_BODY_TIMEOUT = "sio_wsgi.relay.body_timeout"
#: environ key: the socket a relayed WebSocket runs on (one end of a local pair)
RELAY_SOCKET = "sio_wsgi.relay.socket"
#: attribute of a relayed request's ``start_response``: called with the ``101``
#: head of a relayed WebSocket (the relaying process writes it to its client)
RELAY_ON_HEAD = "relay_on_head"

StartResponse = Callable[..., Any]
"""A WSGI ``start_response`` (``(status, headers, exc_info=None) -> write``)."""


class DisconnectReason(str, enum.Enum):
    """Why a session or a namespace connection ended.

    The values are the strings python-socketio and the Node server use.
    """

    CLIENT_DISCONNECT = "client disconnect"
    SERVER_DISCONNECT = "server disconnect"
    PING_TIMEOUT = "ping timeout"
    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"
    PARSE_ERROR = "parse error"
    SERVER_SHUTTING_DOWN = "server shutting down"

    def __str__(self) -> str:
        return str(self.value)


class Connection(Protocol):
    """What the engine calls on the transport carrying a session now.

    Calls other than :meth:`writable` come from any task; implementations
    take the session's lock where they touch the session's outbox.
    """

    def write(self, out: Outgoing) -> bool:
        """Write ``out`` at once when nothing is queued and nobody is writing.

        :returns: False when the caller must queue it (and then :meth:`kick`).
        """

    def writable(self) -> bool:
        """Could the client take a packet right now? (Caller holds the session lock.)"""

    def kick(self) -> None:
        """Something was queued: deliver it (or wake whoever delivers it)."""

    def run_inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Run ``fn(*args)`` in the calling task if it is this connection's reader.

        :returns: False when the caller must run it elsewhere.
        """

    def session_closed(self, send_close_packet: bool) -> None:
        """The session closed: flush what is queued (then the close packet, if
        asked and the transport has one) and end."""


class UpgradeCandidate(Protocol):
    """The WebSocket a polling session is being upgraded to, from its ``3probe`` on."""

    def input_pending(self) -> bool:
        """Has the client sent bytes on it that are not acted on yet (its ``5``,
        maybe)? True as well when it cannot tell."""


class Host(Protocol):
    """What a transport calls on the engine that owns it."""

    options: ServerOptions
    logger: logging.Logger
    driver: Driver

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` in the engine's timer task after ``delay`` seconds."""

    def create_session(
        self, transport: str, environ: Environ, connection: Connection | None = None
    ) -> EngineSession | None:
        """Register a new session and ask the handler; None when refused."""

    def open_packet(self, sid: str, transport: str) -> str:
        """The OPEN packet (handshake) text of a new session."""

    def close_session(
        self, session: EngineSession, reason: DisconnectReason, send_close_packet: bool
    ) -> None:
        """Close ``session`` once: drop it and tell the handler."""

    def handle_packet(self, session: EngineSession, packet: Packet) -> None:
        """Act on one packet received from the client of ``session``."""

    def handle_text(self, session: EngineSession, text: str) -> None:
        """Act on a text packet other than a MESSAGE, still encoded (a WebSocket frame).

        :raises RemoteProtocolError: not a packet the client may send.
        """

    #: ``on_message(sid, data)``: a MESSAGE packet's data, straight to the
    #: handler (the hot path, no engine frame in between)
    on_message: Callable[[str, Wire], None]


class RelayBus(Protocol):
    """A message bus with one inbox per process (a client manager that relays).

    ``host_id`` is 16 lowercase hex digits; it prefixes the ids of the sessions
    this process owns, so that any process can tell where a session lives.
    """

    host_id: str

    @property
    def healthy(self) -> bool:
        """Whether the bus connection works now."""

    def publish_direct(self, host: str, data: bytes) -> bool:
        """Send ``data`` to the inbox of process ``host``.

        :returns: False when it is known that nobody listens there (the process is gone).
        :raises BusError: when the bus is unreachable.
        """

    def ready(self, timeout: float) -> bool:
        """Whether the bus works now, waiting up to ``timeout`` seconds for a
        process that has not subscribed yet (it is starting)."""

    def knows_host(self, host: str) -> bool:
        """Whether process ``host`` was heard from recently (no broker round trip,
        except while this process may not have heard everyone yet: it just started)."""

    def host_alive(self, host: str) -> bool:
        """Whether process ``host`` still listens on the bus (asks the broker)."""

    def set_direct_handler(self, handler: Callable[[bytes], None] | None) -> None:
        """Call ``handler`` (in the listener task) with each message sent to this inbox."""

    def set_link_lost_handler(self, handler: Callable[[str], None] | None) -> None:
        """Call ``handler(host)`` when the direct connection to process ``host`` closes
        (it may be gone: waiting requests should ask at once)."""
