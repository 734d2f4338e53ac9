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

The server is the composition root: it picks a runtime driver, creates the
Engine.IO server (:class:`sio_wsgi.engine.server.EngineServer`), implements its
handler callbacks, and wires the :class:`~sio_wsgi.manager.Manager` (rooms and
recipients) and the :class:`~sio_wsgi.namespace.HandlerRegistry` together.

Threading model: the engine calls :meth:`_EngineBridge.on_message` from a
transport reader. Acknowledgements are resolved right there (so :meth:`Server.call`
works from inside handlers); everything that runs user code goes through a
per-client serial queue, drained by one spawned task at a time when
``async_handlers`` is true, inline otherwise. Events of one client therefore run
in arrival order.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, overload

from sio_wsgi.config import DEFAULTS, ServerOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.engine.server import EngineServer
from sio_wsgi.exceptions import (
    ConnectionRefusedError,
    DisconnectedError,
    LocalProtocolError,
    RemoteProtocolError,
    TimeoutError,
)
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import CATCH_ALL, HandlerRegistry, Namespace
from sio_wsgi.protocol import sio as sio_codec
from sio_wsgi.protocol.serializers import Serializer, get_serializer
from sio_wsgi.protocol.sio import AttachmentAssembler, Packet, PacketType
from sio_wsgi.runtime import select as runtime_select
from sio_wsgi.runtime.base import Driver, Event, Lock

__all__ = ["Server", "DEFAULT_CALL_TIMEOUT"]

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT = 60
"""Seconds :meth:`Server.call` waits for an acknowledgement by default."""

_REFUSED = {"message": "Connection rejected by server"}
_INVALID_NAMESPACE = {"message": "Invalid namespace"}

Messages = Outgoing
F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------ engine contract


class _Timer(Protocol):
    def cancel(self) -> None: ...


class _Scheduler(Protocol):
    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> _Timer: ...


class _Engine(Protocol):
    """What the Socket.IO layer uses of ``EngineServer`` (see docs/DESIGN.md)."""

    @property
    def scheduler(self) -> _Scheduler: ...

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]: ...
    def send(self, sid: str, messages: Messages, volatile: bool = False) -> bool: ...
    def close(
        self, sid: str, reason: DisconnectReason = DisconnectReason.SERVER_DISCONNECT
    ) -> None: ...
    def shutdown(self) -> None: ...
    def transport(self, sid: str) -> str | None: ...
    def dispatch(self, sid: str, fn: Callable[..., Any], *args: Any) -> None: ...
    def release_reader(self) -> None: ...


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


def _hop(driver: Driver, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Under eventlet/gevent, run ``fn`` in the event loop when called from a plain
    OS thread (whose green primitives would not work); True when it was handed over."""
    if not driver.in_foreign_thread():
        return False
    driver.call_soon_threadsafe(lambda: fn(*args, **kwargs))
    return True


def _as_args(data: Any) -> list[Any]:
    """Emit data to event arguments: a tuple is several, ``None`` none."""
    if data is None:
        return []
    if isinstance(data, tuple):
        return list(data)
    return [data]


def _ack_result(args: Sequence[Any]) -> Any:
    """What :meth:`Server.call` returns for the client's ack arguments."""
    if not args:
        return None
    return args[0] if len(args) == 1 else tuple(args)


# ------------------------------------------------------------------ per-client state


class _Client:
    """State of one Engine.IO connection, guarded by ``lock``."""

    __slots__ = (
        "eio_sid", "environ", "lock", "namespaces", "pending", "sessions", "assembler",
        "tasks", "draining", "rx_unqueued", "rx_queued", "ever_connected", "closed", "timer",
    )  # fmt: skip

    def __init__(self, eio_sid: str, environ: dict[str, Any], lock: Lock) -> None:
        self.eio_sid = eio_sid
        self.environ = environ
        self.lock = lock
        self.namespaces: dict[str, str] = {}
        self.pending: dict[str, list[Outgoing]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.assembler: AttachmentAssembler | None = None
        # created at the first event (an empty deque is 600 bytes per idle connection)
        self.tasks: deque[tuple[Callable[..., Any], tuple[Any, ...], int]] | None = None
        self.draining = False
        self.rx_unqueued = 0  # bytes received since the last queued task (reader only)
        self.rx_queued = 0  # bytes of the events waiting in ``tasks``
        self.ever_connected = False
        self.closed = False
        self.timer: _Timer | None = None


class _Waiter:
    """One :meth:`Server.call` waiting for its acknowledgement."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.result: tuple[Any, ...] = ()
        self.error: Exception | None = None

    def resolve(self, *args: Any) -> None:
        self.result = args
        self.event.set()

    def fail(self, error: Exception) -> None:
        self.error = error
        self.event.set()


class _EngineBridge:
    """Implements the engine's ``EngineHandler`` protocol for a :class:`Server`."""

    def __init__(self, server: Server) -> None:
        # bound straight to the server: no extra call per message
        self.on_connect: Callable[[str, dict[str, Any]], bool] = server._eio_connect
        self.on_message: Callable[[str, str | bytes], None] = server._eio_message
        self.on_disconnect: Callable[[str, str], None] = server._eio_disconnect


# ------------------------------------------------------------------ the server


class Server:
    """A Socket.IO server, compatible with python-socketio's ``socketio.Server``.

    Engine.IO options default to :data:`sio_wsgi.config.DEFAULTS`; see
    :class:`sio_wsgi.config.ServerOptions` for what each one means.

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
    """

    class reason:  # python-socketio's spelling
        """Disconnect reasons passed to ``disconnect`` handlers."""

        CLIENT_DISCONNECT = DisconnectReason.CLIENT_DISCONNECT
        SERVER_DISCONNECT = DisconnectReason.SERVER_DISCONNECT
        PING_TIMEOUT = DisconnectReason.PING_TIMEOUT
        TRANSPORT_CLOSE = DisconnectReason.TRANSPORT_CLOSE
        TRANSPORT_ERROR = DisconnectReason.TRANSPORT_ERROR

    def __init__(
        self,
        client_manager: Manager | None = None,
        logger: bool | logging.Logger = False,
        serializer: Any = DEFAULTS.serializer,
        json: Any = None,
        async_handlers: bool = DEFAULTS.async_handlers,
        always_connect: bool = DEFAULTS.always_connect,
        namespaces: Any = DEFAULTS.namespaces,
        *,
        engineio_logger: bool | logging.Logger = False,
        async_mode: str | None = DEFAULTS.async_mode,
        ping_interval: float = DEFAULTS.ping_interval,
        ping_timeout: float = DEFAULTS.ping_timeout,
        max_http_buffer_size: int = DEFAULTS.max_http_buffer_size,
        allow_upgrades: bool = DEFAULTS.allow_upgrades,
        transports: Sequence[str] | str = DEFAULTS.transports,
        cors_allowed_origins: Any = DEFAULTS.cors_allowed_origins,
        cors_credentials: bool = DEFAULTS.cors_credentials,
        cookie: Any = DEFAULTS.cookie,
        http_compression: bool = DEFAULTS.http_compression,
        compression_threshold: int = DEFAULTS.compression_threshold,
        upgrade_timeout: float = DEFAULTS.upgrade_timeout,
        connect_timeout: float = DEFAULTS.connect_timeout,
        max_attachments: int = DEFAULTS.max_attachments,
        max_json_depth: int = DEFAULTS.max_json_depth,
        max_pending_bytes: int = DEFAULTS.max_pending_bytes,
        http_body_timeout: float = DEFAULTS.http_body_timeout,
        shutdown_timeout: float = DEFAULTS.shutdown_timeout,
    ) -> None:
        if isinstance(namespaces, list):
            namespaces = tuple(namespaces)
        self.options = ServerOptions(
            async_mode=async_mode, ping_interval=ping_interval, ping_timeout=ping_timeout,
            max_http_buffer_size=max_http_buffer_size, allow_upgrades=allow_upgrades,
            transports=tuple(transports) if not isinstance(transports, str) else (transports,),
            cors_allowed_origins=cors_allowed_origins, cors_credentials=cors_credentials,
            cookie=cookie, http_compression=http_compression,
            compression_threshold=compression_threshold, upgrade_timeout=upgrade_timeout,
            connect_timeout=connect_timeout, always_connect=always_connect,
            serializer=serializer, max_attachments=max_attachments,
            max_json_depth=max_json_depth, max_pending_bytes=max_pending_bytes,
            async_handlers=async_handlers, namespaces=namespaces,
            http_body_timeout=http_body_timeout, shutdown_timeout=shutdown_timeout,
        )  # fmt: skip
        self.logger = _resolve_logger(logger, __name__)
        self.serializer: Serializer = get_serializer(serializer, json_module=json)
        self.limits = sio_codec.Limits.from_options(self.options)
        self.async_handlers = async_handlers
        self.always_connect = always_connect
        self.handlers = HandlerRegistry()
        self.manager = client_manager if client_manager is not None else Manager()
        self.driver: Driver = self._make_driver(self.options.async_mode)
        #: the async mode in use ('threading', 'eventlet' or 'gevent'), as in python-socketio
        self.async_mode: str = self.driver.name
        engine_logger = _resolve_logger(engineio_logger, "sio_wsgi.engine")
        self.eio: _Engine = self._make_engine(self.options, self.driver, engine_logger)
        self._clients: dict[str, _Client] = {}
        self._waiters: dict[str, set[_Waiter]] = {}
        self._lock = self.driver.lock()
        self._server_events: dict[tuple[str, str], Callable[..., Any]] = {}
        self.manager.attach(
            self._encode, self._deliver, self.driver,
            disconnect=self._bus_disconnect, server_event=self._bus_server_event,
        )  # fmt: skip
        self._packet_handlers: dict[PacketType, Callable[[_Client, Packet], None]] = {
            PacketType.CONNECT: self._on_connect_packet,
            PacketType.DISCONNECT: self._on_disconnect_packet,
            PacketType.EVENT: self._on_event_packet,
            PacketType.BINARY_EVENT: self._on_event_packet,
            PacketType.ACK: self._on_ack_packet,
            PacketType.BINARY_ACK: self._on_ack_packet,
            PacketType.CONNECT_ERROR: self._on_invalid_packet,
        }

    # -------------------------------------------------------------- composition

    def _make_driver(self, async_mode: str | None) -> Driver:
        """Pick the runtime driver (tests override this)."""
        driver: Driver = runtime_select.get_driver(async_mode)
        return driver

    def _make_engine(
        self, options: ServerOptions, driver: Driver, engine_logger: logging.Logger
    ) -> _Engine:
        """Create the Engine.IO server (tests override this)."""
        engine: _Engine = EngineServer(options, _EngineBridge(self), driver, engine_logger)
        return engine

    # -------------------------------------------------------------- registration

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

        :param args: the function, when used without parentheses.
        :param kwargs: ``namespace``.
        :returns: the function, or a decorator.
        """
        if len(args) == 1 and not kwargs and callable(args[0]):
            fn: Callable[..., Any] = args[0]
            return self.on(fn.__name__, fn)

        def register(fn: F) -> F:
            return self.on(fn.__name__, fn, *args, **kwargs)

        return register

    def register_namespace(self, namespace_handler: Namespace) -> None:
        """Register a class-based namespace.

        :param namespace_handler: a :class:`~sio_wsgi.namespace.Namespace` instance.
        :raises ValueError: when it is not one.
        """
        self.handlers.register_namespace(namespace_handler)
        namespace_handler._set_server(self)

    # -------------------------------------------------------------- emitting

    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
        volatile: bool = False,
    ) -> None:
        """Emit an event to one client, a room, several rooms or everyone.

        :param event: the event name.
        :param data: one argument; a ``tuple`` is several arguments (send a list
            for one array argument). ``bytes`` anywhere are sent as binary.
        :param to: a sid, a room or a list of rooms; everyone when omitted.
        :param room: alias of ``to``.
        :param skip_sid: a sid or list of sids to leave out.
        :param namespace: the namespace, ``'/'`` by default.
        :param callback: called with the client's ack arguments (once per client).
        :param ignore_queue: skip the message queue of pub/sub managers.
        :param volatile: drop for a client that cannot take the message right now.
        :raises LocalProtocolError: for a reserved event name.

        Example::

            sio.emit("score", (home, away), room="match-42", skip_sid=sid)
        """
        if event in sio_codec.RESERVED_EVENTS:
            raise LocalProtocolError(f"{event!r} is a reserved event name")
        if _hop(self.driver, self.emit, event, data, to=to, room=room, skip_sid=skip_sid,
                namespace=namespace, callback=callback, ignore_queue=ignore_queue,
                volatile=volatile):  # fmt: skip
            return
        ns = namespace or "/"
        target = to if to is not None else room
        self.logger.info("emitting event %s to %s [%s]", event, target or "all", ns)
        self.manager.emit(
            event, _as_args(data), ns, to=target, skip_sid=skip_sid,
            callback=callback, volatile=volatile, ignore_queue=ignore_queue,
        )  # fmt: skip

    def send(
        self,
        data: Any,
        to: str | list[str] | None = None,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
    ) -> None:
        """Emit a ``message`` event; same parameters as :meth:`emit`."""
        self.emit(
            "message", data, to=to, room=room, skip_sid=skip_sid, namespace=namespace,
            callback=callback, ignore_queue=ignore_queue,
        )  # fmt: skip

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

        :param event: the event name.
        :param data: the arguments, as in :meth:`emit`.
        :param to: the client's sid.
        :param sid: alias of ``to``.
        :param namespace: the namespace, ``'/'`` by default.
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
        ns = namespace or "/"
        foreign = self.driver.in_foreign_thread()
        waiter = _Waiter(self.driver.thread_event() if foreign else self.driver.event())
        with self._lock:
            self._waiters.setdefault(target, set()).add(waiter)
        try:
            if not self._connected(target, ns):
                raise DisconnectedError(f"{target} is not connected to {ns}")
            self.emit(event, data, to=target, namespace=ns, callback=waiter.resolve,
                      ignore_queue=ignore_queue)  # fmt: skip
            self.eio.release_reader()  # the ack may have to come through this very reader
            if not waiter.event.wait(timeout):
                raise TimeoutError(f"no acknowledgement for {event!r} within {timeout}s")
        finally:
            self._drop_waiter(target, waiter)
        if waiter.error is not None:
            raise waiter.error
        return _ack_result(waiter.result)

    def _connected(self, sid: str, namespace: str) -> bool:
        """Whether ``sid`` is connected; local clients are checked against their
        own state, which changes at once when they leave. A sid unknown here
        counts as connected when a pub/sub manager may reach it on another node."""
        client = self._client_of(sid, namespace)
        if client is None:
            return self.manager.is_connected(sid, namespace) or self.manager.can_reach_remote(
                sid, namespace
            )
        with client.lock:
            return not client.closed and client.namespaces.get(namespace) == sid

    def _drop_waiter(self, sid: str, waiter: _Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(sid)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[sid]

    def _fail_waiters(self, sid: str) -> None:
        with self._lock:
            waiters = self._waiters.pop(sid, set())
        for waiter in waiters:
            waiter.fail(DisconnectedError(f"{sid} disconnected"))

    # -------------------------------------------------------------- rooms & sessions

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Add a client to a room.

        :param sid: the client's sid.
        :param room: the room name.
        :param namespace: the namespace, ``'/'`` by default.
        """
        if not _hop(self.driver, self.enter_room, sid, room, namespace):
            self.manager.enter_room(sid, namespace or "/", room)

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Remove a client from a room.

        :param sid: the client's sid.
        :param room: the room name.
        :param namespace: the namespace, ``'/'`` by default.
        """
        if not _hop(self.driver, self.leave_room, sid, room, namespace):
            self.manager.leave_room(sid, namespace or "/", room)

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """Remove every client from a room.

        :param room: the room name.
        :param namespace: the namespace, ``'/'`` by default.
        """
        if not _hop(self.driver, self.close_room, room, namespace):
            self.manager.close_room(room, namespace or "/")

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms a client is in (its own sid room included).

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.
        """
        return self.manager.get_rooms(sid, namespace or "/")

    def _client_of(self, sid: str, namespace: str) -> _Client | None:
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        return None if eio_sid is None else self._clients.get(eio_sid)

    def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The user session of a client (a dict, kept until it disconnects).

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.
        :raises KeyError: when the client is not connected.
        """
        ns = namespace or "/"
        client = self._client_of(sid, ns)
        if client is None:
            raise KeyError(f"session of {sid} is disconnected")
        with client.lock:
            return client.sessions.setdefault(ns, {})

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Replace the user session of a client.

        :param sid: the client's sid.
        :param session: the new session dict.
        :param namespace: the namespace, ``'/'`` by default.
        :raises KeyError: when the client is not connected.
        """
        ns = namespace or "/"
        client = self._client_of(sid, ns)
        if client is None:
            raise KeyError(f"session of {sid} is disconnected")
        with client.lock:
            client.sessions[ns] = session

    @contextlib.contextmanager
    def session(self, sid: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Context manager giving the session dict and saving it on exit.

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.

        Example::

            with sio.session(sid) as session:
                session["user"] = user
        """
        session = self.get_session(sid, namespace)
        yield session
        self.save_session(sid, session, namespace)

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The WSGI environ of the client's handshake request, or ``None``.

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.
        """
        client = self._client_of(sid, namespace or "/")
        return None if client is None else client.environ

    def transport(self, sid: str, namespace: str | None = None) -> str | None:
        """The client's transport name (``'polling'`` or ``'websocket'``).

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.
        """
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or "/")
        return None if eio_sid is None else self.eio.transport(eio_sid)

    # -------------------------------------------------------------- lifecycle

    def disconnect(
        self, sid: str, namespace: str | None = None, ignore_queue: bool = False
    ) -> None:
        """Disconnect a client from a namespace (the disconnect handler runs with
        :attr:`reason.SERVER_DISCONNECT`).

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.
        :param ignore_queue: skip the message queue of pub/sub managers.
        """
        if _hop(self.driver, self.disconnect, sid, namespace, ignore_queue):
            return
        ns = namespace or "/"
        client = self._client_of(sid, ns)
        if client is None:
            if not ignore_queue:
                self.manager.remote_disconnect(sid, ns)
            return
        with client.lock:
            if client.namespaces.get(ns) != sid:
                return
            del client.namespaces[ns]
            connecting = sid in client.pending
        self._fail_waiters(sid)
        if connecting:
            return  # _run_connect sees it is gone and refuses it
        self._send_now(client, Packet(PacketType.DISCONNECT, ns))
        self._finish_namespace(client, sid, ns, self.reason.SERVER_DISCONNECT)

    # -------------------------------------------------------------- several nodes

    def fetch_sids(
        self, room: str | None = None, namespace: str | None = None, timeout: float = 1.0
    ) -> list[str]:
        """Sids in a room on every node (a cluster-wide query with pub/sub managers).

        :param room: the room; every client of the namespace when ``None``.
        :param namespace: the namespace, ``'/'`` by default.
        :param timeout: seconds to wait for the other nodes' answers.
        :returns: the sids (those of nodes that did not answer in time are missing).

        Example::

            players = sio.fetch_sids("match-42", timeout=0.5)
        """
        return self.manager.fetch_participants(namespace or "/", room, timeout)

    def fetch_rooms(
        self, sid: str, namespace: str | None = None, timeout: float = 1.0
    ) -> list[str]:
        """The rooms of a client connected to any node (its sid room included).

        :param sid: the client's sid.
        :param namespace: the namespace, ``'/'`` by default.
        :param timeout: seconds to wait for the other nodes' answers.
        :returns: the rooms; empty when no node knows ``sid`` in time.
        """
        return self.manager.fetch_rooms(sid, namespace or "/", timeout)

    def server_side_emit(self, event: str, data: Any = None, namespace: str | None = None) -> None:
        """Send an event to the *other* server nodes (not to clients, not to this node).

        They run the handler registered with :meth:`on_server_event`. With the
        single-process manager there is nobody to receive it.

        :param event: the event name.
        :param data: the arguments, as in :meth:`emit` (a tuple is several).
        :param namespace: the namespace, ``'/'`` by default.

        Example::

            sio.server_side_emit("reload-config", {"version": 7})
        """
        self.manager.server_side_emit(event, _as_args(data), namespace or "/")

    def on_server_event(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None
    ) -> Any:
        """Register the handler of a server-to-server event (see :meth:`server_side_emit`).

        :param event: the event name.
        :param handler: called as ``handler(*args)`` in a background task; a
            decorator is returned when omitted.
        :param namespace: the namespace, ``'/'`` by default.
        :returns: the handler, or a decorator.

        Example::

            @sio.on_server_event("reload-config")
            def reload_config(settings):
                ...
        """

        def register(fn: F) -> F:
            self._server_events[(namespace or "/", event)] = fn
            return fn

        if handler is None:
            return register
        return register(handler)

    def _bus_disconnect(self, sid: str, namespace: str) -> None:
        """Another node asked to disconnect one of our clients."""
        self.disconnect(sid, namespace, ignore_queue=True)

    def _bus_server_event(self, event: str, args: Sequence[Any], namespace: str) -> None:
        """Another node sent a server-to-server event."""
        handler = self._server_events.get((namespace, event))
        if handler is None:
            self.logger.debug("no server event handler for %s [%s]", event, namespace)
            return
        self._run_safely(handler, tuple(args))

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``target(*args, **kwargs)`` in a task of the server's async mode.

        :returns: the task (it has ``join()``).
        """
        return self.driver.spawn(target, *args, **kwargs)

    def sleep(self, seconds: float = 0) -> None:
        """Sleep without blocking other tasks of the server's async mode.

        :param seconds: how long.
        """
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
        self.eio.shutdown()
        deadline = self.driver.monotonic() + self.options.shutdown_timeout
        pause = time.sleep if self.driver.in_foreign_thread() else self.driver.sleep
        while self._clients and self.driver.monotonic() < deadline:
            pause(0.005)
        if self._clients:
            self.logger.warning(
                "shutdown: %d clients still running handlers after %.1f s",
                len(self._clients), self.options.shutdown_timeout,
            )  # fmt: skip
        self.manager.shutdown()

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Handle a WSGI request for the Socket.IO endpoint.

        :param environ: the WSGI environ.
        :param start_response: the WSGI ``start_response``.
        :returns: the response body.
        """
        return self.eio.handle_request(environ, start_response)

    # -------------------------------------------------------------- delivery

    def _encode(self, packet: Packet) -> Outgoing:
        return Outgoing.messages(sio_codec.encode(packet, self.serializer))

    def _deliver(self, eio_sid: str, sid: str, messages: Messages, volatile: bool) -> bool:
        """Send to a client, holding messages back until its CONNECT reply went out."""
        client = self._clients.get(eio_sid)
        if client is not None:
            with client.lock:
                queue = client.pending.get(sid)
                if queue is not None:
                    queue.append(messages)
                    return True
        return self.eio.send(eio_sid, messages, volatile)

    def _send_now(self, client: _Client, packet: Packet) -> bool:
        return self.eio.send(client.eio_sid, self._encode(packet))

    def _flush_connect(self, client: _Client, sid: str, first: Outgoing) -> None:
        """Send the CONNECT reply, then what was queued meanwhile, in order."""
        batch = [first]
        while True:
            with client.lock:
                queued = client.pending.get(sid)
                if queued is None:
                    return
                if not queued and not batch:
                    del client.pending[sid]
                    return
                client.pending[sid] = []
            batch.extend(queued)
            self.eio.send(client.eio_sid, batch[0] if len(batch) == 1 else Outgoing.join(batch))
            batch = []

    # -------------------------------------------------------------- serial queue

    def _enqueue(self, client: _Client, fn: Callable[..., Any], *args: Any) -> None:
        size, client.rx_unqueued = client.rx_unqueued, 0
        if not self.async_handlers:
            self._run_safely(fn, args)
            return
        with client.lock:
            overflow = client.rx_queued + size > self.options.max_pending_bytes and client.tasks
            if not overflow:
                if client.tasks is None:
                    client.tasks = deque()
                client.tasks.append((fn, args, size))
                client.rx_queued += size
                start = not client.draining
                client.draining = True
        if overflow:
            self.logger.warning(
                "closing %s: over %d bytes of events queued behind its handlers",
                client.eio_sid, self.options.max_pending_bytes,
            )  # fmt: skip
            self.eio.close(client.eio_sid, self.reason.TRANSPORT_ERROR)
        elif start:
            self.eio.dispatch(client.eio_sid, self._drain, client)

    def _drain(self, client: _Client) -> None:
        while True:
            with client.lock:
                if not client.tasks:
                    client.draining = False
                    return
                fn, args, size = client.tasks.popleft()
                client.rx_queued -= size
            self._run_safely(fn, args)

    def _run_safely(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            self.logger.exception("error in a socket.io handler")

    # -------------------------------------------------------------- engine callbacks

    def _eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> bool:
        client = _Client(eio_sid, environ, self.driver.lock())
        self._clients[eio_sid] = client
        client.timer = self.eio.scheduler.call_later(
            self.options.connect_timeout, self._check_connected, client
        )
        return True

    def _check_connected(self, client: _Client) -> None:
        if not client.ever_connected and not client.closed:
            self.logger.info("%s did not connect to a namespace in time", client.eio_sid)
            self.eio.close(client.eio_sid, self.reason.SERVER_DISCONNECT)

    def _eio_message(self, eio_sid: str, data: str | bytes) -> None:
        client = self._clients.get(eio_sid)
        if client is None or client.closed:
            return
        client.rx_unqueued += len(data)
        try:
            packet = self._parse(client, data)
            if packet is not None:
                self._packet_handlers[packet.type](client, packet)
        except RemoteProtocolError as exc:
            self.logger.warning("closing %s: invalid packet: %s", eio_sid, exc)
            self.eio.close(eio_sid, DisconnectReason.PARSE_ERROR)

    def _parse(self, client: _Client, data: str | bytes) -> Packet | None:
        if client.assembler is not None:
            packet = client.assembler.add(data)
            if packet is not None:
                client.assembler = None
            return packet
        packet = sio_codec.decode(data, self.serializer, self.limits)
        if packet.attachments:
            client.assembler = AttachmentAssembler(packet)
            return None
        return packet

    def _eio_disconnect(self, eio_sid: str, reason: str) -> None:
        client = self._clients.get(eio_sid)
        if client is None:
            return
        with client.lock:
            client.closed = True
            claimed = list(client.namespaces.items())
            client.namespaces.clear()
        if client.timer is not None:
            client.timer.cancel()
        for ns, sid in claimed:
            self._fail_waiters(sid)
            self._enqueue(client, self._finish_namespace, client, sid, ns, reason)
        self._enqueue(client, self._forget, client)

    def _forget(self, client: _Client) -> None:
        if self._clients.get(client.eio_sid) is client:
            del self._clients[client.eio_sid]

    # -------------------------------------------------------------- packets

    def _on_invalid_packet(self, client: _Client, packet: Packet) -> None:
        raise RemoteProtocolError(f"clients may not send {packet.type.name}")

    def _namespace_allowed(self, namespace: str) -> bool:
        allowed = self.options.namespaces
        if allowed == CATCH_ALL:
            return True
        if allowed is None:
            registered = set(self.handlers.namespaces())
            return namespace == "/" or namespace in registered or CATCH_ALL in registered
        return namespace in ((allowed,) if isinstance(allowed, str) else allowed)

    def _on_connect_packet(self, client: _Client, packet: Packet) -> None:
        ns = packet.namespace
        if not self._namespace_allowed(ns):
            self._send_now(client, Packet(PacketType.CONNECT_ERROR, ns, _INVALID_NAMESPACE))
            return
        with client.lock:
            already = ns in client.namespaces
            if not already:
                sid = self.manager.connect(client.eio_sid, ns)
                client.namespaces[ns] = sid
                client.pending[sid] = []
        if already:
            self.logger.warning("%s is already connected to %s", client.eio_sid, ns)
            return
        self._enqueue(client, self._run_connect, client, sid, ns, packet.data)

    def _run_connect(self, client: _Client, sid: str, ns: str, auth: Any) -> None:
        reply = self._encode(Packet(PacketType.CONNECT, ns, {"sid": sid}))
        if self.always_connect:
            self._flush_connect(client, sid, reply)
        refusal = self._call_connect_handler(client, sid, ns, auth)
        with client.lock:
            gone = client.closed or client.namespaces.get(ns) != sid
        if refusal is None and gone:
            refusal = _REFUSED
        if refusal is None:
            client.ever_connected = True
            if not self.always_connect:
                self._flush_connect(client, sid, reply)
            return
        with client.lock:
            client.pending.pop(sid, None)
            if client.namespaces.get(ns) == sid:
                del client.namespaces[ns]
        self.manager.disconnect(sid, ns)
        if self.always_connect:
            self._send_now(client, Packet(PacketType.DISCONNECT, ns))
        else:
            self._send_now(client, Packet(PacketType.CONNECT_ERROR, ns, refusal))

    def _call_connect_handler(
        self, client: _Client, sid: str, ns: str, auth: Any
    ) -> dict[str, Any] | None:
        """Run the connect handler; the CONNECT_ERROR payload when it refuses."""
        handler = self.handlers.resolve(ns, "connect")
        if handler is None:
            return None
        try:
            result = handler(sid, client.environ, auth)
        except ConnectionRefusedError as exc:
            return exc.error_args
        except Exception:
            self.logger.exception("connect handler for %s failed", ns)
            return _REFUSED
        return _REFUSED if result is False else None

    def _finish_namespace(self, client: _Client, sid: str, ns: str, reason: str) -> None:
        """Run the disconnect handler once, then forget the client's namespace state."""
        if not self.manager.is_connected(sid, ns):
            return
        try:
            handler = self.handlers.resolve(ns, "disconnect")
            if handler is not None:
                handler(sid, reason)
        finally:
            self.manager.disconnect(sid, ns)
            with client.lock:
                client.sessions.pop(ns, None)

    def _on_disconnect_packet(self, client: _Client, packet: Packet) -> None:
        sid = client.namespaces.get(packet.namespace)
        if sid is None:
            return
        self._fail_waiters(sid)
        # in the client's queue, so a CONNECT still being handled completes first
        self._enqueue(client, self._client_left, client, sid, packet.namespace)

    def _client_left(self, client: _Client, sid: str, ns: str) -> None:
        with client.lock:
            if client.namespaces.get(ns) == sid:
                del client.namespaces[ns]
        # a no-op when the server already disconnected it; ahead of a transport close
        # queued behind it, so the handler gets the reason the client gave
        self._finish_namespace(client, sid, ns, self.reason.CLIENT_DISCONNECT)

    def _on_event_packet(self, client: _Client, packet: Packet) -> None:
        sid = client.namespaces.get(packet.namespace)
        if sid is None:
            self.logger.debug("event for unconnected namespace %s ignored", packet.namespace)
            return
        self._enqueue(client, self._run_event, sid, packet, client)

    def _run_event(self, sid: str, packet: Packet, client: _Client) -> None:
        ns = packet.namespace
        if not self.manager.is_connected(sid, ns):
            return
        event, *args = packet.data
        handler = self.handlers.resolve(ns, event)
        if handler is None:
            self.logger.debug("no handler for event %s [%s]", event, ns)
            return
        self.logger.info("received event %s from %s [%s]", event, sid, ns)
        result = handler(sid, *args)
        if packet.id is None:
            return
        ack = Packet(PacketType.ACK, ns, _as_args(result), packet.id)
        if client.namespaces.get(ns) == sid:  # still connected: straight to its client
            self._deliver(client.eio_sid, sid, self._encode(ack), False)

    def _on_ack_packet(self, client: _Client, packet: Packet) -> None:
        sid = client.namespaces.get(packet.namespace)
        if sid is None or packet.id is None:
            return
        try:
            self.manager.trigger_callback(sid, packet.id, packet.data)
        except Exception:
            self.logger.exception("error in an ack callback")
