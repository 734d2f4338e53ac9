"""The Socket.IO server, API-compatible with python-socketio's ``socketio.Server``.

Migrating is a change of import::

    import sio_wsgi

    sio = sio_wsgi.Server(cors_allowed_origins="*")

    @sio.event
    def connect(sid, environ, auth):
        sio.emit("welcome", {"sid": sid}, to=sid)

    @sio.on("chat")
    def chat(sid, text):
        sio.emit("chat", text, skip_sid=sid)
        return "ok"                       # becomes the acknowledgement

:class:`Server` is the public API; parts of it are in its bases:
:class:`~sio_wsgi.registration.RegistrationAPI` (handler registration),
:class:`~sio_wsgi.rooms.RoomsAPI` (rooms, sessions, disconnecting clients) and
:class:`~sio_wsgi.cluster.ClusterAPI` (the calls that reach other server nodes).
It is also the composition root: it picks a runtime driver, creates the
Engine.IO server (:class:`~sio_wsgi.engine.server.EngineServer`) and the
:class:`~sio_wsgi.dispatch.Dispatcher` that handles what clients send (per-client
state and ordering in :mod:`sio_wsgi.clients`, ``call()`` waiters in
:mod:`sio_wsgi.acks`), and wires them to the :class:`~sio_wsgi.manager.Manager`
(rooms and recipients). docs/DESIGN.md, "The Socket.IO layer", has the map.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from sio_wsgi.acks import Waiter, as_args
from sio_wsgi.clients import Client, Environ, Timer
from sio_wsgi.cluster import (
    DEFAULT_FETCH_TIMEOUT,  # noqa: F401 - importable from here too
    ClusterAPI,
)
from sio_wsgi.config import (
    ADMIN_NAMESPACE,
    ADMIN_STATS_INTERVAL,
    DEFAULTS,
    Cookie,
    Origins,
    RecoveryOptions,
    ServerOptions,
)
from sio_wsgi.dispatch import Dispatcher
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import DisconnectReason, RelayBus
from sio_wsgi.engine.server import EngineHandler, EngineServer, StartResponse
from sio_wsgi.exceptions import DisconnectedError, LocalProtocolError
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import ROOT_NAMESPACE, Namespace
from sio_wsgi.protocol import sio as sio_codec
from sio_wsgi.protocol.serializers import Serializer, get_serializer
from sio_wsgi.registration import RegistrationAPI
from sio_wsgi.rooms import RoomsAPI
from sio_wsgi.runtime import select as runtime_select
from sio_wsgi.runtime.base import Driver, Task
from sio_wsgi.stats import Stats

__all__ = ["Server", "Engine", "EngineFactory", "DEFAULT_CALL_TIMEOUT"]

DEFAULT_CALL_TIMEOUT = 60
"""Seconds :meth:`Server.call` waits for an acknowledgement by default."""

_SHUTDOWN_POLL = 0.005
"""Seconds between two looks at the clients left while :meth:`Server.shutdown` waits."""


class _Scheduler(Protocol):
    def call_later(self, delay: float, fn: Callable[..., object], /, *args: Any) -> Timer: ...


class Engine(Protocol):
    """What the Socket.IO layer uses of ``EngineServer`` (see docs/DESIGN.md)."""

    @property
    def scheduler(self) -> _Scheduler: ...

    def handle_request(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]: ...
    def send(self, sid: str, out: Outgoing, volatile: bool = False) -> bool: ...
    def close(
        self, sid: str, reason: DisconnectReason = DisconnectReason.SERVER_DISCONNECT
    ) -> None: ...
    def shutdown(self) -> None: ...
    def transport(self, sid: str) -> str | None: ...
    def dispatch(self, sid: str, fn: Callable[..., Any], *args: Any) -> None: ...
    def release_reader(self) -> None: ...
    def enable_relay(self, bus: RelayBus) -> None: ...

    metrics: Stats | None


EngineFactory = Callable[[ServerOptions, EngineHandler, Driver, logging.Logger], Engine]
"""``factory(options, handler, driver, logger) -> engine``; :class:`EngineServer` by default."""


def _resolve_logger(value: bool | logging.Logger, name: str) -> logging.Logger:
    """Resolve a ``logger`` option the way python-socketio does.

    ``False``: the library logger, quiet (ERROR) unless the application set its
    level; ``True``: the same logger, showing at least INFO; a ``logging.Logger``:
    used as is. No handler is ever added.
    """
    if isinstance(value, logging.Logger):
        return value
    resolved = logging.getLogger(name)
    if value and (resolved.level == logging.NOTSET or resolved.level > logging.INFO):
        resolved.setLevel(logging.INFO)
    elif not value and resolved.level == logging.NOTSET:
        resolved.setLevel(logging.ERROR)
    return resolved


class Server(RoomsAPI, ClusterAPI, RegistrationAPI):
    """A Socket.IO server, compatible with python-socketio's ``socketio.Server``.

    Engine.IO options default to :data:`sio_wsgi.config.DEFAULTS`; see
    :class:`sio_wsgi.config.ServerOptions` for what each one means. In every
    method, an omitted ``namespace`` is ``'/'``.

    :param client_manager: the :class:`~sio_wsgi.manager.Manager` (rooms, and
        the message bus for multi-process setups); in-memory when ``None``.
    :param logger: ``False`` (errors only), ``True`` (INFO) or a ``logging.Logger``.
    :param serializer: ``'default'`` (JSON), ``'msgpack'`` or a serializer object.
    :param json: a JSON module (``dumps``/``loads``) for the default serializer.
    :param async_handlers: run handlers off the transport reader, in order per client.
    :param always_connect: send the CONNECT reply before running the connect handler.
    :param namespaces: accepted namespaces: ``None`` (``'/'`` plus those with
        handlers), ``'*'`` (any) or a list.
    :param engineio_logger: like ``logger``, for the Engine.IO layer.
    :param connect_timeout: seconds a client has to connect to a namespace.
    :param connection_state_recovery: off by default; ``True`` or a dict of
        :class:`~sio_wsgi.config.RecoveryOptions` (``max_disconnection_duration``,
        ``skip_middlewares``, ``max_buffered_bytes``, ``max_replay_bytes``): a
        client that drops gets its sid, rooms, session and missed packets back when
        it reconnects in time (see :mod:`sio_wsgi.recovery`, and
        :meth:`is_recovered`).
    :param driver: for tests and embedding: the runtime driver to use instead of
        the one ``async_mode`` selects.
    :param engine_factory: for tests and embedding: builds the Engine.IO server
        (an :data:`EngineFactory`; :class:`~sio_wsgi.engine.server.EngineServer`
        by default).
    :param metrics: count connections, events, bytes, handler and ack times for
        :mod:`sio_wsgi.metrics` (see :meth:`enable_metrics`); off by default.
    """

    reason = DisconnectReason
    """Disconnect reasons passed to ``disconnect`` handlers (python-socketio's
    ``Server.reason``: ``Server.reason.CLIENT_DISCONNECT``...)."""

    def __init__(
        self,
        client_manager: Manager | None = None,
        logger: bool | logging.Logger = False,
        serializer: str | Serializer = DEFAULTS.serializer,
        json: Any = None,
        async_handlers: bool = DEFAULTS.async_handlers,
        always_connect: bool = DEFAULTS.always_connect,
        namespaces: str | Sequence[str] | None = DEFAULTS.namespaces,
        *,
        engineio_logger: bool | logging.Logger = False,
        async_mode: str | None = DEFAULTS.async_mode,
        ping_interval: float = DEFAULTS.ping_interval,
        ping_timeout: float = DEFAULTS.ping_timeout,
        max_http_buffer_size: int = DEFAULTS.max_http_buffer_size,
        allow_upgrades: bool = DEFAULTS.allow_upgrades,
        transports: Sequence[str] | str = DEFAULTS.transports,
        cors_allowed_origins: Origins = DEFAULTS.cors_allowed_origins,
        cors_credentials: bool = DEFAULTS.cors_credentials,
        cookie: Cookie = DEFAULTS.cookie,
        http_compression: bool = DEFAULTS.http_compression,
        compression_threshold: int = DEFAULTS.compression_threshold,
        upgrade_timeout: float = DEFAULTS.upgrade_timeout,
        connect_timeout: float = DEFAULTS.connect_timeout,
        max_attachments: int = DEFAULTS.max_attachments,
        max_json_depth: int = DEFAULTS.max_json_depth,
        max_pending_bytes: int = DEFAULTS.max_pending_bytes,
        http_body_timeout: float = DEFAULTS.http_body_timeout,
        shutdown_timeout: float = DEFAULTS.shutdown_timeout,
        serial_handlers: bool = DEFAULTS.serial_handlers,
        per_message_deflate: bool = DEFAULTS.per_message_deflate,
        deflate_threshold: int = DEFAULTS.deflate_threshold,
        connection_state_recovery: RecoveryOptions
        | Mapping[str, Any]
        | bool
        | None = DEFAULTS.connection_state_recovery,
        polling_keepalive: bool = DEFAULTS.polling_keepalive,
        driver: Driver | None = None,
        engine_factory: EngineFactory | None = None,
        metrics: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(namespaces, list):
            namespaces = tuple(namespaces)
        given = locals()  # every ServerOptions field is a parameter of the same name
        fields = dataclasses.fields(ServerOptions)
        self.options = ServerOptions(**{field.name: given[field.name] for field in fields})
        self.logger = _resolve_logger(logger, __name__)
        self.serializer: Serializer = get_serializer(serializer, json_module=json)
        self.manager = client_manager if client_manager is not None else Manager()
        self.driver: Driver = (
            driver if driver is not None else runtime_select.get_driver(self.options.async_mode)
        )
        #: the async mode in use ('threading', 'eventlet' or 'gevent'), as in python-socketio
        self.async_mode: str = self.driver.name
        self._dispatcher = Dispatcher(
            self.options,
            self.handlers,
            self.manager,
            self.serializer,
            self.logger,
            self.driver.lock,
            self.hooks,
        )
        self.limits: sio_codec.Limits = self._dispatcher.limits
        #: eio_sid -> client state (read by diagnostics: len(server._clients))
        self._clients: dict[str, Client] = self._dispatcher.clients
        engine_logger = _resolve_logger(engineio_logger, "sio_wsgi.engine")
        make_engine = engine_factory or EngineServer
        self.eio: Engine = make_engine(self.options, self._dispatcher, self.driver, engine_logger)
        #: the Admin UI instrumentations (:meth:`instrument`), stopped at shutdown
        self._admin_uis: list[Any] = []
        self._wire()
        #: the counters read by sio_wsgi.metrics (None: metrics off, see enable_metrics)
        self.metrics: Stats | None = None
        if metrics:
            self.enable_metrics()

    def _wire(self) -> None:
        """Connect the dispatcher and the manager to the engine and to each other.

        ``self.eio.send`` is handed over here only: every message the Socket.IO
        layer sends, the manager's broadcasts included, goes through it.
        """
        eio = self.eio
        self._dispatcher.attach(
            run=eio.dispatch, send=eio.send, close=eio.close, call_later=eio.scheduler.call_later
        )
        self.manager.attach(
            self._dispatcher.encode,
            self._dispatcher.deliver,
            self.driver,
            disconnect=self._bus_disconnect,
            server_event=self._bus_server_event,
        )
        relay_bus = self.manager.relay_bus()
        if relay_bus is not None:
            eio.enable_relay(relay_bus)
        self._dispatcher.start(self.driver)

    def _hooks_changed(self) -> None:
        """Hand the outgoing observers to the manager once there are some (None
        keeps its delivery loop free of them)."""
        self.manager.outgoing = self.hooks.run_outgoing if self.hooks.outgoing else None

    def enable_metrics(self) -> Stats:
        """Start counting what :mod:`sio_wsgi.metrics` reports (``Server(metrics=True)``
        does it); serve them with ``WSGIApp(sio, app, metrics_path="/metrics")``.

        :returns: the counters (the same object when called again).
        """
        if self.metrics is None:
            self.metrics = Stats()
            self.eio.metrics = self._dispatcher.metrics = self.manager.metrics = self.metrics
        return self.metrics

    @property
    def async_handlers(self) -> bool:
        """Whether handlers run off the transport reader (in order per client)."""
        return self._dispatcher.queue.concurrent

    @async_handlers.setter
    def async_handlers(self, value: bool) -> None:
        self._dispatcher.queue.concurrent = value

    @property
    def always_connect(self) -> bool:
        """Whether the CONNECT reply goes out before the connect handler runs."""
        return self._dispatcher.always_connect

    @always_connect.setter
    def always_connect(self, value: bool) -> None:
        self._dispatcher.always_connect = value

    def register_namespace(self, namespace_handler: Namespace) -> None:
        """Register a class-based namespace.

        :param namespace_handler: a :class:`~sio_wsgi.namespace.Namespace` instance.
        :raises ValueError: when it is not one.
        """
        self.handlers.register_namespace(namespace_handler)
        namespace_handler._set_server(self)

    def instrument(
        self,
        auth: Any = None,
        mode: str = "development",
        read_only: bool = False,
        server_id: str | None = None,
        namespace: str = ADMIN_NAMESPACE,
        server_stats_interval: float = ADMIN_STATS_INTERVAL,
    ) -> Any:
        """Serve the official Socket.IO Admin UI's protocol (npm ``@socket.io/admin-ui``).

        :param auth: ``{"username": ..., "password": ...}`` (the password may be a
            bcrypt hash, as with the Node server: needs ``sio-wsgi[admin]``), a list
            of such dicts, ``fn(auth) -> bool``, or ``False`` to disable the check
            (``None`` is refused). Compared in constant time.
        :param mode: ``'development'`` (every socket, room change and event is
            shown) or ``'production'`` (statistics only).
        :param read_only: refuse the UI's actions (join, leave, disconnect, emit).
        :param server_id: this node's name in the UI (``hostname#pid`` by default).
        :param namespace: the admin namespace.
        :param server_stats_interval: seconds between two ``server_stats``.
        :returns: the :class:`~sio_wsgi.admin.AdminUI` (its ``stop()`` ends it).
        :raises ConfigError: for an invalid option.

        Example::

            sio.instrument(auth={"username": "admin", "password": os.environ["ADMIN_PW"]})
        """
        from sio_wsgi.admin import AdminUI

        admin = AdminUI(self, auth, mode, read_only, server_id, namespace, server_stats_interval)
        self._admin_uis.append(admin)
        return admin.start()

    # -------------------------------------------------------------- emitting

    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., object] | None = None,
        ignore_queue: bool = False,
        volatile: bool = False,
        compress: bool = True,
    ) -> None:
        """Emit an event to one client, a room, several rooms or everyone.

        :param data: one argument; a ``tuple`` is several arguments (send a list
            for one array argument). ``bytes`` anywhere are sent as binary.
        :param to: a sid, a room or a list of rooms; everyone when omitted.
        :param room: alias of ``to``.
        :param skip_sid: a sid or list of sids to leave out.
        :param callback: called with the client's ack arguments (once per client).
        :param ignore_queue: skip the message queue of pub/sub managers.
        :param volatile: drop for a client that cannot take the message right now.
        :param compress: False: never compressed, even on a WebSocket with
            permessage-deflate (Node's ``socket.compress(false)``).
        :raises LocalProtocolError: for a reserved event name.

        Example::

            sio.emit("score", (home, away), room="match-42", skip_sid=sid)
        """
        if event in sio_codec.RESERVED_EVENTS:
            raise LocalProtocolError(f"{event!r} is a reserved event name")
        if self.driver.in_foreign_thread():  # a plain OS thread under eventlet/gevent
            args = (event, data, to, room, skip_sid, namespace, callback, ignore_queue)
            self.driver.call_soon_threadsafe(self.emit, *args, volatile, compress)
            return
        ns = namespace or ROOT_NAMESPACE
        target = to if to is not None else room
        self.logger.info("emitting event %s to %s [%s]", event, target or "all", ns)
        self.manager.emit(
            event,
            as_args(data),
            ns,
            to=target,
            skip_sid=skip_sid,
            callback=callback,
            volatile=volatile,
            ignore_queue=ignore_queue,
            compress=compress,
        )

    def send(
        self,
        data: Any,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., object] | None = None,
        ignore_queue: bool = False,
        compress: bool = True,
    ) -> None:
        """Emit a ``message`` event; same parameters as :meth:`emit`."""
        self.emit(
            "message", data, to, room, skip_sid, namespace, callback, ignore_queue, False, compress
        )

    def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        ignore_queue: bool = False,
    ) -> Any:
        """Emit an event to one client and wait for its acknowledgement.

        :param data: the arguments, as in :meth:`emit`.
        :param to: the client's sid.
        :param sid: alias of ``to``.
        :param timeout: seconds to wait.
        :param ignore_queue: skip the message queue of pub/sub managers.
        :returns: ``None`` for an empty ack, the value for one argument, a tuple
            for several.
        :raises TimeoutError: when no ack arrives in time.
        :raises DisconnectedError: when the client is (or gets) disconnected.
        :raises RuntimeError: when ``async_handlers`` is false (the reader would
            wait on itself).

        Example::

            answer = sio.call("confirm", {"order": 7}, to=sid, timeout=5)
        """
        if not self.async_handlers:
            raise RuntimeError("call() needs async_handlers=True")
        target = to if to is not None else sid
        if target is None:
            raise ValueError("call() needs the sid of one client")
        ns = namespace or ROOT_NAMESPACE
        foreign = self.driver.in_foreign_thread()
        waiter = Waiter(self.driver.thread_event() if foreign else self.driver.event())
        with self._dispatcher.waiters.watching(target, waiter):
            if not self._dispatcher.is_connected(target, ns):
                raise DisconnectedError(f"{target} is not connected to {ns}")
            self.emit(
                event,
                data,
                to=target,
                namespace=ns,
                callback=waiter.resolve,
                ignore_queue=ignore_queue,
            )
            self.eio.release_reader()  # the ack may have to come through this very reader
            return waiter.outcome(timeout, repr(event))

    # -------------------------------------------------------------- clients

    def transport(self, sid: str, namespace: str | None = None) -> str | None:
        """The client's transport name (``'polling'`` or ``'websocket'``)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or ROOT_NAMESPACE)
        return None if eio_sid is None else self.eio.transport(eio_sid)

    # -------------------------------------------------------------- tasks and shutdown

    def start_background_task(
        self, target: Callable[..., object], *args: Any, **kwargs: Any
    ) -> Task:
        """Run ``target(*args, **kwargs)`` in a task of the server's async mode.

        :returns: the task (it has ``join()``).
        """
        return self.driver.spawn(target, *args, **kwargs)

    def sleep(self, seconds: float = 0) -> None:
        """Sleep without blocking other tasks of the server's async mode."""
        self.eio.release_reader()
        self.driver.sleep(seconds)

    def shutdown(self) -> None:
        """Disconnect every client and stop the server's background tasks.

        Every session is closed with the reason ``"server shutting down"``; the
        call then waits (at most ``shutdown_timeout`` seconds) until each
        client's ``disconnect`` handlers have run, so nothing of a client is
        left when it returns. Called from inside a handler, that handler's own
        client can only finish after it returns, so the wait ends at the timeout.
        """
        self.logger.info("socket.io server shutting down")
        for admin in self._admin_uis:
            admin.stop()
        self.eio.shutdown()
        deadline = self.driver.monotonic() + self.options.shutdown_timeout
        pause = time.sleep if self.driver.in_foreign_thread() else self.driver.sleep
        while self._clients and self.driver.monotonic() < deadline:
            pause(_SHUTDOWN_POLL)
        if self._clients:
            self.logger.warning(
                "shutdown: %d clients still running handlers after %.1f s",
                len(self._clients),
                self.options.shutdown_timeout,
            )
        self._dispatcher.stop()
        self.manager.shutdown()

    def handle_request(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Handle a WSGI request for the Socket.IO endpoint.

        :returns: the response body.
        """
        return self.eio.handle_request(environ, start_response)
