"""``SocketIO``: a Flask extension with Flask-SocketIO's API, on :class:`sio_wsgi.Server`.

Migrating from Flask-SocketIO is an import change::

    from sio_wsgi.flask import SocketIO, emit, join_room

    socketio = SocketIO(app, cors_allowed_origins="*")

    @socketio.on("chat")
    def chat(text):                       # no sid: it is flask.request.sid
        emit("chat", text, to="lobby", include_self=False)

Handlers run inside Flask's app and request contexts, the request being the
connection's handshake: ``current_app``, ``g``, ``request.args``/``headers``/
``cookies``, plus ``request.sid``, ``request.namespace`` and ``request.event``.
``session`` is a per-connection copy of the cookie session (``manage_session``),
or Flask's own session (``manage_session=False``). docs/guide/flask_socketio.md
lists what differs from Flask-SocketIO.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import flask

from sio_wsgi.flask.handling import ErrorHandler, HandlerContexts
from sio_wsgi.flask.namespace import Namespace
from sio_wsgi.flask.test_client import SocketIOTestClient
from sio_wsgi.flask.wiring import (
    Middleware,
    RunTarget,
    run_options,
    server_options,
)
from sio_wsgi.namespace import ROOT_NAMESPACE
from sio_wsgi.server import DEFAULT_CALL_TIMEOUT, Server

__all__ = ["SocketIO"]

F = TypeVar("F", bound=Callable[..., Any])


class SocketIO(HandlerContexts):
    """A Flask-SocketIO compatible extension.

    :param app: the Flask app; or call :meth:`init_app` later (app factories).
        Without an app but with ``message_queue`` it is an *emitter*: a write-only
        client manager publishes what :meth:`emit` sends to the servers.
    :param manage_session: True (the default): ``flask.session`` in handlers is a
        per-connection copy of the cookie session, kept in memory; False: Flask's
        own session (changes are saved through ``app.session_interface``, which
        only persists with server-side sessions).
    :param message_queue: a Redis (``redis://``) or Kombu (``amqp://``...) URL.
    :param channel: the message queue channel (``'flask-socketio'``).
    :param path: the endpoint (``'socket.io'``); ``resource`` is an alias.
    :param kwargs: :class:`sio_wsgi.Server` options (``cors_allowed_origins``,
        ``ping_interval``, ``async_mode``, ``logger``, ``json``...); those in
        :data:`IGNORED_OPTIONS` are warned about and dropped, unknown ones raise
        :class:`~sio_wsgi.ConfigError`.
    """

    reason = Server.reason

    def __init__(self, app: flask.Flask | None = None, **kwargs: Any) -> None:
        self.server: Server | None = None
        self.app: flask.Flask | None = None
        self.server_options: dict[str, Any] = {}
        #: the web server of :meth:`run`, when it gives one
        self.wsgi_server: Any = None
        #: (event, wrapped handler, namespace), registered on every server created
        self.handlers: list[tuple[str, Callable[..., Any], str]] = []
        self.namespace_handlers: list[Namespace] = []
        self.exception_handlers: dict[str, ErrorHandler] = {}
        self.default_exception_handler: ErrorHandler | None = None
        self.manage_session = True
        self.async_mode: str | None = None
        self.sockio_mw: Middleware | None = None
        if app is not None or "message_queue" in kwargs:
            self.init_app(app, **kwargs)
        else:
            self.server_options.update(kwargs)

    # -------------------------------------------------------------- set-up

    def init_app(self, app: flask.Flask | None, **kwargs: Any) -> None:
        """Create the server and mount it in front of ``app.wsgi_app``.

        :param app: the Flask app (None: an emitter, see the class).
        :param kwargs: more options (as in the constructor).
        :raises ConfigError: for an unknown option or an unsupported message queue.
        """
        self.server_options.update(kwargs)
        options = server_options(self.server_options, app, self.manage_session)
        self.manage_session = options.manage_session
        self.server = Server(**options.server)
        self.async_mode = self.server.async_mode
        for event, handler, namespace in self.handlers:
            self.server.on(event, handler, namespace=namespace)
        for namespace_handler in self.namespace_handlers:
            self.server.register_namespace(namespace_handler)
        if app is not None:
            self.app = app
            app.extensions["socketio"] = self
            self.sockio_mw = Middleware(self.server, app, options.path)
            app.wsgi_app = self.sockio_mw  # type: ignore[method-assign]

    def _server(self) -> Server:
        if self.server is None:
            raise RuntimeError("SocketIO has no server yet: call init_app(app)")
        return self.server

    # -------------------------------------------------------------- registration

    def on(self, message: str, namespace: str | None = None) -> Callable[[F], F]:
        """Decorator: register a handler for an event (``'connect'``, ``'disconnect'``,
        ``'message'``, ``'json'``, a name, or ``'*'`` for any event).

        The handler gets the event's arguments (no sid). ``connect`` may take
        ``auth``, ``disconnect`` the ``reason``; a ``'*'`` handler gets the event
        name first. ``namespace='*'`` catches every namespace (see ``request.namespace``).

        :param namespace: the namespace, ``'/'`` by default.
        :returns: a decorator returning the function unchanged.
        """
        ns = namespace or ROOT_NAMESPACE

        def decorator(handler: F) -> F:
            wrapped = self._wrap(handler, message, ns)
            self.handlers.append((message, wrapped, ns))
            if self.server is not None:
                self.server.on(message, wrapped, namespace=ns)
            return handler

        return decorator

    def on_event(
        self, message: str, handler: Callable[..., Any], namespace: str | None = None
    ) -> None:
        """Register ``handler`` for ``message`` (:meth:`on` without the decorator)."""
        self.on(message, namespace)(handler)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Register a handler named after the function: ``@socketio.event`` or
        ``@socketio.event(namespace='/chat')``."""
        if len(args) == 1 and not kwargs and callable(args[0]):
            fn: Callable[..., Any] = args[0]
            return self.on(fn.__name__)(fn)

        def decorator(fn: F) -> F:
            return self.on(fn.__name__, *args, **kwargs)(fn)

        return decorator

    def on_namespace(self, namespace_handler: Namespace) -> None:
        """Register a class-based namespace (a :class:`sio_wsgi.flask.Namespace`).

        :raises ValueError: when it is not one.
        """
        if not isinstance(namespace_handler, Namespace):
            raise ValueError("not a sio_wsgi.flask.Namespace instance")
        namespace_handler._set_socketio(self)
        self.namespace_handlers.append(namespace_handler)
        if self.server is not None:
            self.server.register_namespace(namespace_handler)

    def on_error(self, namespace: str | None = None) -> Callable[[F], F]:
        """Decorator: the error handler of a namespace, called with the exception a
        handler raised (in the handler's contexts); its return value is the ack.

        :raises ValueError: when the decorated object is not callable.
        """
        ns = namespace or ROOT_NAMESPACE

        def decorator(fn: F) -> F:
            if not callable(fn):
                raise ValueError("the error handler must be callable")
            self.exception_handlers[ns] = fn
            return fn

        return decorator

    def on_error_default(self, fn: F) -> F:
        """Decorator: the error handler of namespaces without their own.

        :raises ValueError: when ``fn`` is not callable.
        """
        if not callable(fn):
            raise ValueError("the error handler must be callable")
        self.default_exception_handler = fn
        return fn

    # -------------------------------------------------------------- emitting

    @staticmethod
    def _data(args: tuple[Any, ...]) -> Any:
        """Positional emit arguments as server data: none, one, or a tuple of several."""
        if not args:
            return None
        return args[0] if len(args) == 1 else tuple(args)

    def emit(
        self,
        event: str,
        *args: Any,
        namespace: str | None = None,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        include_self: bool = True,
        skip_sid: str | list[str] | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
        **kwargs: Any,
    ) -> None:
        """Emit an event from anywhere: a handler, a view, a thread.

        :param args: the event's arguments (several are sent as several).
        :param namespace: ``'/'`` by default.
        :param to: a sid or a room (``room`` is an alias); everyone when omitted.
        :param include_self: False: leave out the client whose handler is running.
        :param skip_sid: a sid or list of sids to leave out.
        :param callback: called with the client's ack (in its contexts).
        :param ignore_queue: skip the message queue.
        :param kwargs: more :meth:`sio_wsgi.Server.emit` options (``volatile``, ``compress``).
        """
        ns = namespace or ROOT_NAMESPACE
        if not include_self and not skip_sid:
            skip_sid = self._current_sid()
        self._server().emit(
            event,
            self._data(args),
            to=to if to is not None else room,
            skip_sid=skip_sid,
            namespace=ns,
            callback=self._callback(callback, ns),
            ignore_queue=ignore_queue,
            **kwargs,
        )

    def send(
        self,
        data: Any,
        json: bool = False,
        namespace: str | None = None,
        to: str | list[str] | None = None,
        callback: Callable[..., Any] | None = None,
        include_self: bool = True,
        skip_sid: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send a ``message`` event (``json`` event when ``json=True``); as :meth:`emit`."""
        self.emit(
            "json" if json else "message",
            data,
            namespace=namespace,
            to=to,
            callback=callback,
            include_self=include_self,
            skip_sid=skip_sid,
            **kwargs,
        )

    def call(
        self,
        event: str,
        *args: Any,
        namespace: str | None = None,
        to: str | None = None,
        room: str | None = None,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        ignore_queue: bool = False,
    ) -> Any:
        """Emit to one client and wait for its ack (:meth:`sio_wsgi.Server.call`)."""
        return self._server().call(
            event,
            self._data(args),
            to=to if to is not None else room,
            namespace=namespace or ROOT_NAMESPACE,
            timeout=timeout,
            ignore_queue=ignore_queue,
        )

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        self._server().close_room(room, namespace or ROOT_NAMESPACE)

    # -------------------------------------------------------------- tasks and serving

    def start_background_task(
        self, target: Callable[..., object], *args: Any, **kwargs: Any
    ) -> Any:
        """Run ``target`` in a task of the server's async mode (it has ``join()``)."""
        return self._server().start_background_task(target, *args, **kwargs)

    def sleep(self, seconds: float = 0) -> None:
        """Sleep without blocking the server's other tasks."""
        self._server().sleep(seconds)

    def stop(self) -> None:
        """Disconnect every client and stop the server's tasks, then the web server of
        :meth:`run` when it can be stopped."""
        self._server().shutdown()
        stopper = getattr(self.wsgi_server, "stop", None) or getattr(
            self.wsgi_server, "shutdown", None
        )
        if callable(stopper):
            stopper()

    def run(
        self, app: flask.Flask, host: str | None = None, port: int | None = None, **kwargs: Any
    ) -> Any:
        """Serve ``app`` with :func:`sio_wsgi.run` (blocks until stopped); it gets a
        :class:`~sio_wsgi.flask.wiring.RunTarget`, the app with the server in sight.

        :param host: ``'127.0.0.1'`` by default.
        :param port: the port of ``SERVER_NAME``, else 5000.
        :param kwargs: ``debug`` (default ``app.debug``), ``use_reloader`` (default
            ``debug``), ``log_output`` (default ``debug``: request logs at
            ``info``, else ``warning``); ``allow_unsafe_werkzeug``, ``extra_files``
            and ``reloader_options`` are accepted and ignored; the rest goes to
            :func:`sio_wsgi.run` (``workers``, ``server``...).
        :returns: what :func:`sio_wsgi.run` returns.
        """
        run_server = importlib.import_module("sio_wsgi.runner").run  # imported on first use
        server = self._server()
        options = run_options(app, host, port, server.async_mode, kwargs)
        return run_server(RunTarget(server, app), **options)

    def test_client(
        self,
        app: flask.Flask,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        flask_test_client: Any = None,
    ) -> SocketIOTestClient:
        """An in-process client connected to ``namespace`` (see
        :class:`sio_wsgi.flask.SocketIOTestClient`); ``flask_test_client``'s cookies
        (a login) go with the handshake."""
        return SocketIOTestClient(
            app,
            self,
            namespace=namespace,
            query_string=query_string,
            headers=headers,
            auth=auth,
            flask_test_client=flask_test_client,
        )
