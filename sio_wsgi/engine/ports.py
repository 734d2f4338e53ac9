"""The seam between the Engine.IO server and its transports (no I/O here).

The engine and the transports know each other only through the two protocols
of this module:

- :class:`Connection` is what the engine calls on the transport that carries a
  session now (a WebSocket, or the long-polling slot of a session);
- :class:`Host` is what a transport calls on the engine.

:class:`DisconnectReason` names why a session ended; it is what ``disconnect``
handlers receive (a ``str`` subclass, so ``reason == "ping timeout"`` holds).
"""

from __future__ import annotations

import enum

__all__ = ["DisconnectReason"]


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
