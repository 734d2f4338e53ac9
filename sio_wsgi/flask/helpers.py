"""Flask-SocketIO's context-bound functions: they act on the current client.

Inside a handler run by :class:`~sio_wsgi.flask.SocketIO`, ``flask.request.sid``
and ``flask.request.namespace`` name the client; these functions default to
them, and find the extension in ``current_app.extensions['socketio']``::

    @socketio.on("join")
    def on_join(room):
        join_room(room)                               # this client, this namespace
        emit("joined", room, to=room)                 # the room, sender included
        send("hello", broadcast=True, include_self=False)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import flask

if TYPE_CHECKING:  # pragma: no cover
    from sio_wsgi.flask.extension import SocketIO

__all__ = [
    "emit",
    "send",
    "call",
    "join_room",
    "leave_room",
    "close_room",
    "rooms",
    "disconnect",
]

DEFAULT_CALL_TIMEOUT = 60


def _socketio() -> SocketIO:
    """The extension of the current app.

    :raises RuntimeError: outside an app context, or when the app has none.
    """
    ext = flask.current_app.extensions.get("socketio")
    if ext is None:
        raise RuntimeError("this Flask app has no SocketIO extension")
    return cast("SocketIO", ext)


def _request_attr(name: str) -> str:
    """``flask.request.sid`` / ``.namespace``: set while a Socket.IO handler runs.

    :raises RuntimeError: outside a Socket.IO handler.
    """
    value = getattr(flask.request, name, None) if flask.has_request_context() else None
    if not isinstance(value, str):
        raise RuntimeError(f"request.{name} is only set inside a Socket.IO handler")
    return value


def _target(to: Any, room: Any, broadcast: bool) -> Any:
    """The addressee: ``to``/``room``, else everyone when broadcasting, else the sender."""
    target = to if to is not None else room
    if target is None and not broadcast:
        target = _request_attr("sid")
    return target


def emit(
    event: str,
    *args: Any,
    namespace: str | None = None,
    to: str | list[str] | None = None,
    room: str | list[str] | None = None,
    broadcast: bool = False,
    include_self: bool = True,
    skip_sid: str | list[str] | None = None,
    callback: Callable[..., Any] | None = None,
    ignore_queue: bool = False,
) -> None:
    """Emit from a handler: to the current client, or to ``to``/``room``, or to every
    client of the namespace with ``broadcast=True``.

    :param namespace: the current client's namespace by default.
    :param include_self: False: leave the current client out of a room or broadcast.
    """
    _socketio().emit(
        event,
        *args,
        namespace=namespace or _request_attr("namespace"),
        to=_target(to, room, broadcast),
        include_self=include_self,
        skip_sid=skip_sid,
        callback=callback,
        ignore_queue=ignore_queue,
    )


def send(
    message: Any,
    json: bool = False,
    namespace: str | None = None,
    to: str | list[str] | None = None,
    room: str | list[str] | None = None,
    broadcast: bool = False,
    include_self: bool = True,
    skip_sid: str | list[str] | None = None,
    callback: Callable[..., Any] | None = None,
    ignore_queue: bool = False,
) -> None:
    """Send a ``message`` (or ``json``) event from a handler; addressed as :func:`emit`."""
    _socketio().send(
        message,
        json=json,
        namespace=namespace or _request_attr("namespace"),
        to=_target(to, room, broadcast),
        include_self=include_self,
        skip_sid=skip_sid,
        callback=callback,
        ignore_queue=ignore_queue,
    )


def call(
    event: str,
    *args: Any,
    namespace: str | None = None,
    to: str | None = None,
    room: str | None = None,
    timeout: float = DEFAULT_CALL_TIMEOUT,
    ignore_queue: bool = False,
) -> Any:
    """Emit to the current client (or ``to``) and wait for its ack.

    Needs ``async_handlers`` (the default): the handler waits while the ack comes in.
    """
    return _socketio().call(
        event,
        *args,
        namespace=namespace or _request_attr("namespace"),
        to=_target(to, room, False),
        timeout=timeout,
        ignore_queue=ignore_queue,
    )


def join_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    """Put the current client (or ``sid``) in a room of the current namespace."""
    server = _socketio()._server()
    server.enter_room(
        sid or _request_attr("sid"), room, namespace=namespace or _request_attr("namespace")
    )


def leave_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    """Take the current client (or ``sid``) out of a room."""
    server = _socketio()._server()
    server.leave_room(
        sid or _request_attr("sid"), room, namespace=namespace or _request_attr("namespace")
    )


def close_room(room: str, namespace: str | None = None) -> None:
    """Remove every client from a room of the current namespace."""
    _socketio().close_room(room, namespace=namespace or _request_attr("namespace"))


def rooms(sid: str | None = None, namespace: str | None = None) -> list[str]:
    """The rooms of the current client (or ``sid``), its own sid room included."""
    server = _socketio()._server()
    return server.rooms(
        sid or _request_attr("sid"), namespace=namespace or _request_attr("namespace")
    )


def disconnect(sid: str | None = None, namespace: str | None = None, silent: bool = False) -> None:
    """Disconnect the current client (or ``sid``) from the current namespace.

    :param silent: accepted for compatibility (Flask-SocketIO ignores it too).
    """
    server = _socketio()._server()
    server.disconnect(
        sid or _request_attr("sid"), namespace=namespace or _request_attr("namespace")
    )
