"""Handler registration: the part of :class:`~sio_wsgi.server.Server`'s API that
only records functions (``on``, ``event``, ``on_server_event``).

python-socketio draws the same line (its ``BaseServer`` has ``on`` and
``event``). Nothing here sends, waits or touches a client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from sio_wsgi.namespace import ROOT_NAMESPACE, HandlerRegistry

__all__ = ["RegistrationAPI"]

F = TypeVar("F", bound=Callable[..., Any])


class RegistrationAPI:
    """Records the event handlers and the server-to-server event handlers.

    The base of :class:`~sio_wsgi.server.Server`: its methods are part of the
    server's public API. :class:`Server` runs what is recorded here.
    """

    def __init__(self) -> None:
        #: event handlers and class-based namespaces, by namespace
        self.handlers = HandlerRegistry()
        #: (namespace, event) -> the handler of a server-to-server event
        self._server_events: dict[tuple[str, str], Callable[..., object]] = {}

    @overload
    def on(
        self, event: str, handler: None = None, namespace: str | None = None
    ) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, handler: F, namespace: str | None = None) -> F: ...

    def on(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None
    ) -> Any:
        """Register an event handler, directly or as a decorator.

        :param event: the event name; ``'*'`` catches every event without its own
            handler (called as ``handler(event, sid, *args)``).
        :param handler: the function; when omitted a decorator is returned.
        :param namespace: the namespace (``'/'`` by default); ``'*'`` catches every
            namespace (the namespace is then passed before ``sid``).
        :returns: the handler, or a decorator that registers and returns it.

        Example::

            @sio.on("chat", namespace="/room")
            def chat(sid, text):
                return "received"

            sio.on("ping", lambda sid: "pong")
        """

        def register(fn: F) -> F:
            self.handlers.on(event, fn, namespace)
            return fn

        if handler is None:
            return register
        return register(handler)

    @overload
    def event(self, handler: F, /) -> F: ...

    @overload
    def event(self, *, namespace: str | None = None) -> Callable[[F], F]: ...

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Register a handler named after the function (``@sio.event`` or
        ``@sio.event(namespace='/chat')``).

        :returns: the function, or a decorator.
        """
        if len(args) == 1 and not kwargs and callable(args[0]):
            fn: Callable[..., Any] = args[0]
            return self.on(fn.__name__, fn)

        def register(fn: F) -> F:
            return self.on(fn.__name__, fn, *args, **kwargs)

        return register

    def on_server_event(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None
    ) -> Any:
        """Register the handler of a server-to-server event (see :meth:`Server.server_side_emit`).

        :param handler: called as ``handler(*args)`` in a background task; a
            decorator is returned when omitted.
        :returns: the handler, or a decorator.

        Example::

            @sio.on_server_event("reload-config")
            def reload_config(settings):
                ...
        """

        def register(fn: F) -> F:
            self._server_events[(namespace or ROOT_NAMESPACE, event)] = fn
            return fn

        if handler is None:
            return register
        return register(handler)
