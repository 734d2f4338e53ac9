"""Class-based namespaces in Flask-SocketIO's style: ``on_<event>`` methods without a sid.

::

    class Chat(Namespace):
        def on_connect(self, auth):
            join_room("lobby")                       # request.sid is the client

        def on_say(self, text):
            self.emit("said", text, room="lobby", include_self=False)
            return "ok"                              # the ack

    socketio.on_namespace(Chat("/chat"))

Methods run like ``@socketio.on`` handlers (Flask's contexts, the error handlers).
The inherited :class:`sio_wsgi.Namespace` helpers that take a sid
(``enter_room(sid, room)``, ``rooms(sid)``, ``disconnect(sid)``...) still work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sio_wsgi.namespace import CATCH_ALL
from sio_wsgi.namespace import Namespace as BaseNamespace
from sio_wsgi.protocol.serializers import Payload

if TYPE_CHECKING:  # pragma: no cover
    from sio_wsgi.flask.extension import SocketIO

__all__ = ["Namespace"]


class Namespace(BaseNamespace):
    """A class-based namespace for :meth:`SocketIO.on_namespace`.

    :param namespace: the namespace, ``'/'`` by default.
    """

    def __init__(self, namespace: str | None = None) -> None:
        super().__init__(namespace)
        self.socketio: SocketIO | None = None

    def _set_socketio(self, socketio: SocketIO) -> None:
        self.socketio = socketio

    def _socketio(self) -> SocketIO:
        if self.socketio is None:
            raise RuntimeError("the namespace is not registered: socketio.on_namespace(ns)")
        return self.socketio

    def handler_for(self, event: str) -> Callable[..., Any] | None:
        """What the server calls for ``event``: :meth:`trigger_event` bound to it
        (it takes every argument: ``on_connect``'s ``auth`` is optional), or None."""
        method = getattr(self, "on_" + event, None)
        if not callable(method):
            return None
        return functools.partial(self.trigger_event, event)

    def trigger_event(self, event: str, *args: Any) -> Payload:
        """Run ``on_<event>`` in Flask's contexts (override to wrap every handler).

        :param args: ``sid`` (after the namespace, for a ``'*'`` namespace), then
            the event's arguments.
        :returns: the method's return value (the ack); None without a method.
        """
        method = getattr(self, "on_" + event, None)
        if not callable(method):
            return None
        namespace = self.namespace
        if not isinstance(namespace, str) or namespace == CATCH_ALL:
            namespace, *rest = args  # '*' or a dynamic family: the concrete namespace first
            args = tuple(rest)
        sid, *rest = args
        return self._socketio()._handle_event(method, event, namespace, sid, *rest)

    def emit(
        self,
        event: str,
        data: Payload = None,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., object] | None = None,
        ignore_queue: bool = False,
        volatile: bool = False,
        compress: bool = True,
        include_self: bool = True,
    ) -> None:
        """:meth:`SocketIO.emit` defaulting to this namespace (``include_self`` too)."""
        self._socketio().emit(
            event,
            *(() if data is None else (data,)),
            namespace=self._ns(namespace),
            to=to if to is not None else room,
            include_self=include_self,
            skip_sid=skip_sid,
            callback=callback,
            ignore_queue=ignore_queue,
            volatile=volatile,
            compress=compress,
        )

    def send(
        self,
        data: Payload,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., object] | None = None,
        ignore_queue: bool = False,
        compress: bool = True,
        include_self: bool = True,
    ) -> None:
        """:meth:`SocketIO.send` defaulting to this namespace."""
        self._socketio().send(
            data,
            namespace=self._ns(namespace),
            to=to if to is not None else room,
            callback=callback,
            include_self=include_self,
            skip_sid=skip_sid,
            ignore_queue=ignore_queue,
            compress=compress,
        )
