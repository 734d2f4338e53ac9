"""Handler registration: the part of :class:`~sio_wsgi.server.Server`'s API that
only records functions (``on``, ``event``, ``on_server_event``, and the hooks of
:mod:`sio_wsgi.hooks`: ``use``, ``use_event``, ``on_any``, ``on_outgoing``,
``rate_limit``).

python-socketio draws the same line (its ``BaseServer`` has ``on`` and
``event``). Nothing here sends, waits or touches a client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from sio_wsgi.hooks import ANY, CONNECT, EVENT, OUTGOING, Hooks
from sio_wsgi.namespace import ROOT_NAMESPACE, HandlerRegistry, NamespaceSpec
from sio_wsgi.ratelimit import RateLimit

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
        #: connect / event middlewares and the on_any / outgoing observers
        self.hooks = Hooks(self.handlers)
        #: (namespace, event) -> the handler of a server-to-server event
        self._server_events: dict[tuple[str, str], Callable[..., object]] = {}

    @overload
    def on(
        self, event: str, handler: None = None, namespace: NamespaceSpec = None
    ) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, handler: F, namespace: NamespaceSpec = None) -> F: ...

    def on(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: NamespaceSpec = None
    ) -> Any:
        """Register an event handler, directly or as a decorator.

        :param event: the event name; ``'*'`` catches every event without its own
            handler (called as ``handler(event, sid, *args)``).
        :param handler: the function; when omitted a decorator is returned.
        :param namespace: the namespace (``'/'`` by default); ``'*'`` catches every
            namespace (the namespace is then passed before ``sid``); a compiled regular
            expression or a ``(name, auth) -> bool`` function registers it for a
            dynamic namespace family (the concrete namespace is passed before ``sid``).
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
    def event(self, *, namespace: NamespaceSpec = None) -> Callable[[F], F]: ...

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

    # ------------------------------------------------------------- hooks

    def _hook(self, kind: str, fn: Any, namespace: NamespaceSpec) -> Any:
        def register(handler: F) -> F:
            self.hooks.add(kind, handler, namespace)
            self._hooks_changed()
            return handler

        return register if fn is None else register(fn)

    def _hooks_changed(self) -> None:
        """A hook was registered (the server hands the outgoing runner to its manager)."""

    def use(self, fn: Callable[..., Any] | None = None, namespace: NamespaceSpec = "/") -> Any:
        """Add a connect middleware (Node's ``io.use`` / ``namespace.use``).

        Middlewares run in registration order before the ``connect`` handler, each
        as ``fn(sid, environ, auth)`` (trailing arguments it does not declare are
        left out; one that declares ``namespace`` also gets it as a keyword). One
        refuses the client by raising
        :class:`~sio_wsgi.exceptions.ConnectionRefusedError` (its message and data
        are the client's ``connect_error``) or returning ``False``; a failure refuses
        it with the generic message (and is logged). :meth:`save_session`,
        :meth:`session` and rooms work inside it, and changes to ``environ`` are
        seen by the handlers. With connection state recovery, a recovered
        connection skips them unless ``skip_middlewares=False``.

        :param fn: the middleware; a decorator is returned when omitted.
        :param namespace: ``'/'`` by default, ``'*'`` for every namespace, or a
            dynamic namespace family.
        :returns: ``fn``, or a decorator.

        Example::

            @sio.use
            def authenticate(sid, environ, auth):
                user = check_token((auth or {}).get("token"))
                if user is None:
                    raise sio_wsgi.ConnectionRefusedError("unauthorized", {"code": 401})
                sio.save_session(sid, {"user": user})
        """
        return self._hook(CONNECT, fn, namespace)

    def use_event(
        self, fn: Callable[..., Any] | None = None, namespace: NamespaceSpec = "/"
    ) -> Any:
        """Add an event middleware (Node's ``socket.use``): it sees every event a
        client sends in ``namespace``, before ``on_any`` and the event's handler.

        Called as ``fn(sid, event, args)`` (``args`` a list) in registration order:
        ``None`` passes the event on unchanged; a tuple ``(event, args)`` replaces
        it; raising :class:`~sio_wsgi.exceptions.EventRejected` drops it: the client
        gets an ``error`` event ``{"message": ..., "data": ...}`` and, when the event
        asked for an acknowledgement, none is ever sent (as in Node). Any other
        exception drops it too (logged, a generic message). An object with a
        ``forget(sid)`` method is told when a client leaves the namespace.

        :param fn: the middleware; a decorator is returned when omitted.
        :param namespace: ``'/'`` by default, ``'*'`` for every namespace, or a
            dynamic namespace family.
        :returns: ``fn``, or a decorator.

        Example::

            @sio.use_event
            def only_logged_in(sid, event, args):
                if event != "login" and "user" not in sio.get_session(sid):
                    raise sio_wsgi.EventRejected("login first", {"event": event})
        """
        return self._hook(EVENT, fn, namespace)

    def on_any(self, fn: Callable[..., Any] | None = None, namespace: NamespaceSpec = "*") -> Any:
        """Add a listener that sees every incoming event, handled or not (Node's
        ``socket.onAny``), after the event middlewares and before the handler.

        Called with the arguments of the ``'*'`` handler (see
        :mod:`sio_wsgi.namespace`): ``fn(event, sid, *args)`` for one namespace,
        ``fn(event, namespace, sid, *args)`` for ``'*'`` (the default) or a dynamic
        family. Its return value is ignored and what it raises is logged. (The
        ``'*'`` event handler of :meth:`on` still sees unhandled events only.)

        :param fn: the listener; a decorator is returned when omitted.
        :param namespace: ``'*'`` by default, a namespace, or a dynamic family.
        :returns: ``fn``, or a decorator.
        """
        return self._hook(ANY, fn, namespace)

    def on_outgoing(
        self, fn: Callable[..., Any] | None = None, namespace: NamespaceSpec = "*"
    ) -> Any:
        """Add a listener that sees every event delivered to a client of this process
        (Node's ``socket.onAnyOutgoing``), once per recipient: emits to a sid, a
        room, everyone, and broadcasts from other nodes of a pub/sub manager.

        Called as ``fn(sid, namespace, event, args)`` (``args`` a list) right after
        the event was handed over; it only observes, and what it raises is logged
        (delivery goes on). Acknowledgements are not events and are not seen.

        :param fn: the listener; a decorator is returned when omitted.
        :param namespace: ``'*'`` by default, a namespace, or a dynamic family.
        :returns: ``fn``, or a decorator.
        """
        return self._hook(OUTGOING, fn, namespace)

    def rate_limit(self, *args: Any, namespace: NamespaceSpec = "/", **kwargs: Any) -> RateLimit:
        """Install a :class:`~sio_wsgi.ratelimit.RateLimit` as an event middleware.

        :param args: :class:`RateLimit`'s arguments (``rate``, ``burst``,
            ``per_event``, ``on_exceed``, ``events``...).
        :param namespace: where it applies (``'/'``; ``'*'`` for every namespace).
        :returns: the limiter.

        Example::

            sio.rate_limit(rate=5, burst=10, namespace="*")
        """
        limiter = RateLimit(*args, **kwargs)
        self.use_event(limiter, namespace=namespace)
        return limiter
