"""The one error tree of sio_wsgi.

::

    SioError
     +-- ProtocolError                 bad bytes on the wire
     |    +-- LocalProtocolError       we were asked to produce something invalid
     |    +-- RemoteProtocolError      the peer sent something invalid (has ``close_code``)
     +-- ConnectionRefusedError        raised by a connect handler to refuse a client
     +-- EventRejected                 raised by an event middleware to drop an event
     +-- TimeoutError                  ``call()`` got no ack in time (also a builtin TimeoutError)
     +-- DisconnectedError             the client left while we waited on it
     +-- BusError                      a message queue publish failed (also a ConnectionError)
     +-- ConfigError                   bad option or missing optional dependency (a ValueError)
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "SioError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ConnectionRefusedError",
    "EventRejected",
    "TimeoutError",
    "DisconnectedError",
    "ConfigError",
    "BusError",
]


#: WebSocket close code 1002, "protocol error" (RFC 6455, section 7.4.1)
_CLOSE_PROTOCOL_ERROR = 1002


class SioError(Exception):
    """Base class of every error raised by sio_wsgi."""


class ProtocolError(SioError):
    """Invalid Engine.IO / Socket.IO / WebSocket data."""


class LocalProtocolError(ProtocolError):
    """Our side was asked to encode something the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """The peer sent invalid data.

    :param message: what was wrong.
    :param close_code: WebSocket close code to use when closing because of it.
    """

    def __init__(self, message: str, close_code: int = _CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.close_code = close_code


class ConnectionRefusedError(SioError, builtins.ConnectionRefusedError):
    """Raise from a ``connect`` handler to refuse the connection.

    The first argument becomes the ``message`` of the client's ``connect_error``;
    further arguments become its ``data`` (one argument as is, several as a list).

    :param args: message and optional data.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        if not args:
            #: the ``connect_error`` payload (JSON: ``data`` is the user's)
            self.error_args: dict[str, Any] = {"message": "Connection rejected by server"}
        else:
            self.error_args = {"message": str(args[0])}
            if len(args) == 2:
                self.error_args["data"] = args[1]
            elif len(args) > 2:
                self.error_args["data"] = list(args[1:])


class EventRejected(SioError):
    """Raise from an event middleware (:meth:`Server.use_event`) to drop the event.

    The client gets an ``error`` event with ``{"message": message, "data": data}``
    and the event's acknowledgement, if it asked for one, is never sent (as with
    the Node server's ``socket.use``).

    :param message: the ``message`` of the client's ``error`` event.
    :param data: its ``data`` (anything JSON can carry; ``None`` by default).
    :param disconnect: also disconnect the client from the namespace after the
        ``error`` event (the rate limiter's ``on_exceed="disconnect"``).
    """

    def __init__(self, message: str, data: Any = None, *, disconnect: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.disconnect = disconnect

    @property
    def payload(self) -> dict[str, Any]:
        """The ``error`` event's argument: ``{"message": ..., "data": ...}``."""
        return {"message": self.message, "data": self.data}


class TimeoutError(SioError, builtins.TimeoutError):
    """``call()`` did not get its acknowledgement within ``timeout``."""


class DisconnectedError(SioError):
    """The client disconnected while the server was waiting on it."""


class ConfigError(SioError, ValueError):
    """An invalid option, or an optional dependency that is not installed."""


class BusError(SioError, ConnectionError):
    """A message could not be published to the message queue (the broker stayed unreachable)."""
