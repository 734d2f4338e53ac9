"""The official Socket.IO Admin UI (npm ``@socket.io/admin-ui``) on a :class:`Server`.

:meth:`Server.instrument` creates an :class:`AdminUI`, which serves the UI's
protocol on its own namespace (``/admin`` by default):

- on connect, the credentials are checked (:class:`Credentials`: constant-time
  compare, bcrypt hashes accepted like the Node server) or a ``sessionId`` given
  earlier with the ``session`` event; a failure is a CONNECT_ERROR
  ``invalid credentials``. The UI then gets ``config`` (its ``supportedFeatures``)
  and, in development mode, ``all_sockets``;
- every ``server_stats_interval`` seconds this node emits ``server_stats`` (its
  ``serverId``, hostname, pid, uptime, client counts, the aggregated Engine.IO
  events of the period, its namespaces with their socket counts) to the admin
  namespace: through the client manager it reaches the admin clients of every node;
- in development mode: ``socket_connected`` / ``socket_updated`` /
  ``socket_disconnected``, ``room_joined`` / ``room_left`` and
  ``event_received`` / ``event_sent`` for this node's sockets;
- the UI's actions (``join``, ``leave``, ``_disconnect``, ``emit``; refused with
  ``read_only``) act through the server's API, so a socket of another node is
  reached through the pub/sub manager.

It learns what happens through :mod:`sio_wsgi.observers`. The wire format follows
the UI's own definitions (``lib/typed-events.ts`` of the npm package).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sio_wsgi.config import ADMIN_MODES, ADMIN_NAMESPACE, ADMIN_STATS_INTERVAL
from sio_wsgi.exceptions import ConfigError, ConnectionRefusedError, LocalProtocolError
from sio_wsgi.observers import Observer

if TYPE_CHECKING:  # pragma: no cover
    from sio_wsgi.server import Server

__all__ = ["AdminUI", "Credentials", "EventBuffer", "Feature", "serialize_handshake"]

Auth = bool | Mapping[str, str] | Sequence[Mapping[str, str]] | Callable[[Any], bool] | None
"""``auth`` of :meth:`Server.instrument`: False (no check), a dict of expected fields
(``{"username": ..., "password": ...}``; a bcrypt hash as password is checked as
such), a list of such dicts, or ``fn(auth) -> bool``."""


class Feature:
    """The names of ``config.supportedFeatures`` the UI understands."""

    EMIT = "EMIT"
    JOIN = "JOIN"
    LEAVE = "LEAVE"
    DISCONNECT = "DISCONNECT"
    MJOIN = "MJOIN"
    MLEAVE = "MLEAVE"
    MDISCONNECT = "MDISCONNECT"
    AGGREGATED_EVENTS = "AGGREGATED_EVENTS"
    ALL_EVENTS = "ALL_EVENTS"


# the events of the UI's protocol (server to UI)
SESSION = "session"
CONFIG = "config"
SERVER_STATS = "server_stats"
ALL_SOCKETS = "all_sockets"
SOCKET_CONNECTED = "socket_connected"
SOCKET_UPDATED = "socket_updated"
SOCKET_DISCONNECTED = "socket_disconnected"
ROOM_JOINED = "room_joined"
ROOM_LEFT = "room_left"
EVENT_RECEIVED = "event_received"
EVENT_SENT = "event_sent"
# the UI's actions (UI to server); ``_join`` / ``_leave`` accepted as aliases
ACTION_EMIT = "emit"
ACTION_JOIN = ("join", "_join")
ACTION_LEAVE = ("leave", "_leave")
ACTION_DISCONNECT = "_disconnect"

INVALID_CREDENTIALS = "invalid credentials"
"""The CONNECT_ERROR message the UI recognises (it shows the login form again)."""

_SOCKETS_REQUEST = "sio_wsgi.admin.sockets"
"""Server-to-server event: another node asks for this node's sockets (for one admin sid)."""

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_CLIENT_ID_LENGTH = 12


def _now() -> str:
    """A timestamp as the UI gets it from Node's ``new Date()`` (ISO 8601, UTC, ms)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (what is not JSON becomes its ``repr``)."""
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return repr(value)


def _is_name(value: Any) -> bool:
    """A namespace or room name from the UI."""
    return isinstance(value, str) and bool(value)


def _is_filter(value: Any) -> bool:
    """A target from the UI: a sid or room, or nothing (the whole namespace)."""
    return value is None or isinstance(value, str)


def _client_id(eio_sid: str) -> str:
    """A stable short id of a connection that does not reveal its Engine.IO sid."""
    return hashlib.sha256(eio_sid.encode()).hexdigest()[:_CLIENT_ID_LENGTH]


class Credentials:
    """Checks the ``auth`` of an admin connection.

    :param auth: see :data:`Auth`. ``None`` is refused: say ``False`` to turn
        authentication off (as the Node server requires).
    :raises ConfigError: for an unusable ``auth``, or a bcrypt hash without the
        ``bcrypt`` package (``pip install sio-wsgi[admin]``).
    """

    def __init__(self, auth: Auth) -> None:
        self._check: Callable[[Any], bool] | None
        self._expected: list[dict[str, str]] = []
        if auth is None:
            raise ConfigError("instrument() needs auth: credentials, or False to disable it")
        if auth is False:
            self._check = None
        elif callable(auth):
            self._check = auth
        elif isinstance(auth, Mapping) or (
            isinstance(auth, Sequence) and not isinstance(auth, str)
        ):
            entries = [auth] if isinstance(auth, Mapping) else list(auth)
            for entry in entries:
                if not isinstance(entry, Mapping) or not entry:
                    raise ConfigError("instrument(auth=...): each credential must be a dict")
                self._expected.append({str(k): str(v) for k, v in entry.items()})
                if any(str(v).startswith(_BCRYPT_PREFIXES) for v in entry.values()):
                    _bcrypt()  # fail now, not at the first login
            self._check = self._compare
        else:
            raise ConfigError("instrument(auth=...) must be False, a dict, a list or a callable")

    @property
    def required(self) -> bool:
        """Whether admin connections are checked at all."""
        return self._check is not None

    def accept(self, given: Any) -> bool:
        """Whether the CONNECT ``auth`` payload ``given`` passes."""
        if self._check is None:
            return True
        return bool(self._check(given))

    def _compare(self, given: Any) -> bool:
        if not isinstance(given, Mapping):
            return False
        for expected in self._expected:
            ok = True
            for key, value in expected.items():  # compare every field: no early exit
                ok = _matches(value, given.get(key)) and ok
            if ok:
                return True
        return False


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ConfigError(
            "a bcrypt hash in instrument(auth=...) needs the bcrypt package "
            "(pip install sio-wsgi[admin])"
        ) from exc
    return bcrypt


def _matches(expected: str, given: Any) -> bool:
    """Constant-time comparison; ``expected`` may be a bcrypt hash of the value."""
    if not isinstance(given, str):
        return False
    if expected.startswith(_BCRYPT_PREFIXES):
        hashed = expected.encode()
        if expected.startswith("$2y$"):  # PHP's name for the same algorithm
            hashed = b"$2b$" + hashed[4:]
        try:
            return bool(_bcrypt().checkpw(given.encode(), hashed))
        except ValueError:  # not a well-formed hash
            return False
    return hmac.compare_digest(expected.encode(), given.encode())


class EventBuffer:
    """Counts Engine.IO events per second and type, for ``aggregatedEvents``.

    :param clock: wall-clock seconds (``time.time``).
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, lock: Callable[[], Any] = threading.Lock
    ) -> None:
        self._clock = clock
        self._lock = lock()
        self._buffer: dict[tuple[int, str, str | None], int] = {}

    def push(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        """Add ``count`` events of ``kind`` (and ``sub_type``) to the current second."""
        key = (int(self._clock()) * 1000, kind, sub_type)
        with self._lock:
            self._buffer[key] = self._buffer.get(key, 0) + count

    def take(self) -> list[dict[str, Any]]:
        """The counts since the last call (``NamespaceEvent`` objects), then forget them."""
        with self._lock:
            items, self._buffer = self._buffer, {}
        values: list[dict[str, Any]] = []
        for (timestamp, kind, sub_type), count in items.items():
            value: dict[str, Any] = {"timestamp": timestamp, "type": kind, "count": count}
            if sub_type is not None:
                value["subType"] = sub_type
            values.append(value)
        return values


def serialize_handshake(environ: Mapping[str, Any], issued: float) -> dict[str, Any]:
    """The ``handshake`` of a serialized socket, from the WSGI environ of its
    Engine.IO handshake request (``issued``: its wall-clock time, in seconds)."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = str(value)
    query_string = str(environ.get("QUERY_STRING", ""))
    query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    address = (
        headers.get("cf-connecting-ip")
        or headers.get("x-forwarded-for")
        or str(environ.get("REMOTE_ADDR", ""))
    )
    moment = datetime.datetime.fromtimestamp(issued, datetime.timezone.utc)
    return {
        "address": address,
        "headers": headers,
        "query": query,
        "issued": int(issued * 1000),
        "secure": environ.get("wsgi.url_scheme") == "https",
        "time": moment.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"),
        "url": path + ("?" + query_string if query_string else ""),
        "xdomain": "origin" in headers,
    }


class AdminUI(Observer):
    """The Admin UI's server side on one :class:`Server` (see the module doc).

    Create it with :meth:`Server.instrument`; :meth:`stop` ends the stats task and
    the observation (the namespace's handlers stay registered).
    """

    def __init__(
        self,
        server: Server,
        auth: Auth = None,
        mode: str = "development",
        read_only: bool = False,
        server_id: str | None = None,
        namespace: str = ADMIN_NAMESPACE,
        server_stats_interval: float = ADMIN_STATS_INTERVAL,
    ) -> None:
        if mode not in ADMIN_MODES:
            raise ConfigError(f"instrument(mode=...) must be one of {ADMIN_MODES}")
        if not namespace.startswith("/"):
            raise ConfigError("instrument(namespace=...) must start with '/'")
        if server_stats_interval <= 0:
            raise ConfigError("instrument(server_stats_interval=...) must be positive")
        allowed = server.options.namespaces
        if allowed is not None and allowed != "*":
            names = (allowed,) if isinstance(allowed, str) else tuple(allowed)
            if namespace not in names:
                raise ConfigError(
                    f"the server's namespaces={list(names)} refuse the admin namespace {namespace}"
                )
        self.server = server
        self.credentials = Credentials(auth)
        self.development = mode == "development"
        self.read_only = read_only
        self.namespace = namespace
        self.interval = float(server_stats_interval)
        self.hostname = socket.gethostname()
        self.server_id = server_id or f"{self.hostname}#{os.getpid()}"
        self.events = EventBuffer(lock=server.driver.lock)
        self.features = self._features()
        self._started = time.monotonic()
        self._sessions: set[str] = set()  # ids given with the ``session`` event
        self._issued: dict[str, float] = {}  # eio_sid -> wall-clock time of its handshake
        self._transports: dict[tuple[str, str], str] = {}  # (ns, sid) -> last transport sent
        self._lock = server.driver.lock()  # held for dict changes only
        self._stop = server.driver.event()
        self._task: Any = None

    def _features(self) -> list[str]:
        features: list[str] = []
        if not self.read_only:
            features += [Feature.EMIT, Feature.JOIN, Feature.LEAVE, Feature.DISCONNECT]
            features += [Feature.MJOIN, Feature.MLEAVE, Feature.MDISCONNECT]
        features.append(Feature.AGGREGATED_EVENTS)
        if self.development:
            features.append(Feature.ALL_EVENTS)
        return features

    # ------------------------------------------------------------ lifecycle

    def start(self) -> AdminUI:
        """Register the namespace's handlers, observe the server, start the stats task."""
        sio, ns = self.server, self.namespace
        sio.on("connect", self._on_connect, namespace=ns)
        if not self.read_only:
            sio.on(ACTION_EMIT, self._on_emit, namespace=ns)
            for name in ACTION_JOIN:
                sio.on(name, self._on_join, namespace=ns)
            for name in ACTION_LEAVE:
                sio.on(name, self._on_leave, namespace=ns)
            sio.on(ACTION_DISCONNECT, self._on_disconnect_action, namespace=ns)
        sio.on_server_event(_SOCKETS_REQUEST, self._send_sockets_to, namespace=ns)
        sio.manager.observers.add(self)
        self._task = sio.start_background_task(self._stats_loop)
        return self

    def stop(self) -> None:
        """Stop observing and emitting stats."""
        self.server.manager.observers.remove(self)
        self._stop.set()
        if self._task is not None:
            self._task.join(self.interval + 1)

    def _stats_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.emit_stats()
            except Exception:
                self.server.logger.exception("admin: server_stats failed")
            self._stop.wait(self.interval)

    # ------------------------------------------------------------ what the UI gets

    def stats(self) -> dict[str, Any]:
        """This node's ``server_stats`` (its aggregated events are taken: sent once)."""
        sio = self.server
        clients = list(sio._dispatcher.clients)
        polling = sum(1 for eio_sid in clients if sio.eio.transport(eio_sid) == "polling")
        names = dict.fromkeys([*sio.manager.get_namespaces(), self.namespace])
        names.update(dict.fromkeys(n for n in sio.handlers.namespaces() if n != "*"))
        namespaces = [
            {"name": name, "socketsCount": sum(1 for _ in sio.manager.get_participants(name, None))}
            for name in names
        ]
        return {
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "uptime": time.monotonic() - self._started,
            "clientsCount": len(clients),
            "pollingClientsCount": polling,
            "aggregatedEvents": self.events.take(),
            "namespaces": namespaces,
        }

    def emit_stats(self, to: str | None = None) -> None:
        """Emit ``server_stats`` to every admin client (of every node), or to ``to``;
        and, in development mode, ``socket_updated`` for sockets that upgraded."""
        self.server.emit(SERVER_STATS, self.stats(), to=to, namespace=self.namespace)
        if self.development and to is None:
            self._send_transport_changes()

    def _send_transport_changes(self) -> None:
        with self._lock:
            known = list(self._transports.items())
        for (ns, sid), transport in known:
            now = self.server.transport(sid, ns)
            if now is not None and now != transport:
                with self._lock:
                    if (ns, sid) in self._transports:
                        self._transports[(ns, sid)] = now
                update = {"id": sid, "nsp": ns, "transport": now}
                self._emit(SOCKET_UPDATED, update)

    def serialize(self, sid: str, namespace: str) -> dict[str, Any] | None:
        """A socket of this node as the UI shows it (``SerializedSocket``), or None."""
        sio = self.server
        eio_sid = sio.manager.eio_sid_from_sid(sid, namespace)
        client = None if eio_sid is None else sio._dispatcher.clients.get(eio_sid)
        if eio_sid is None or client is None:
            return None
        with self._lock:
            issued = self._issued.setdefault(eio_sid, time.time())
        with client.lock:
            data = dict(client.sessions.get(namespace, {}))
        return {
            "id": sid,
            "clientId": _client_id(eio_sid),
            "transport": sio.eio.transport(eio_sid) or "polling",
            "nsp": namespace,
            "data": _jsonable(data),
            "handshake": serialize_handshake(client.environ, issued),
            "rooms": sio.manager.get_rooms(sid, namespace),
        }

    def local_sockets(self) -> list[dict[str, Any]]:
        """Every socket of this node, serialized."""
        manager = self.server.manager
        sockets = []
        for ns in manager.get_namespaces():
            for sid, _ in manager.get_participants(ns, None):
                serialized = self.serialize(sid, ns)
                if serialized is not None:
                    sockets.append(serialized)
        return sockets

    def _emit(self, event: str, *args: Any, to: str | None = None) -> None:
        self.server.emit(event, args, to=to, namespace=self.namespace)

    # ------------------------------------------------------------ the admin namespace

    def _on_connect(self, sid: str, environ: Any, auth: Any) -> None:
        session_id = auth.get("sessionId") if isinstance(auth, Mapping) else None
        with self._lock:
            known = isinstance(session_id, str) and session_id in self._sessions
        if self.credentials.required and not known:
            if not self.credentials.accept(auth):
                raise ConnectionRefusedError(INVALID_CREDENTIALS)
            new_session = os.urandom(8).hex()
            with self._lock:
                self._sessions.add(new_session)
            self._emit(SESSION, new_session, to=sid)
        self._emit(CONFIG, {"supportedFeatures": self.features}, to=sid)
        if self.development:
            self._emit(ALL_SOCKETS, self.local_sockets(), to=sid)
            # the other nodes add theirs (socket_connected, which the UI adds to the list)
            self.server.server_side_emit(_SOCKETS_REQUEST, sid, namespace=self.namespace)
        self.emit_stats(to=sid)

    def _send_sockets_to(self, admin_sid: str) -> None:
        """Another node's admin client asked for our sockets."""
        for serialized in self.local_sockets():
            self._emit(SOCKET_CONNECTED, serialized, _now(), to=admin_sid)

    def _targets(self, namespace: str, room: str | None) -> list[str]:
        """Sids of every node in ``room`` of ``namespace`` (a sid is its own room;
        ``None``: the whole namespace)."""
        return self.server.fetch_sids(room or None, namespace)

    def _refuse(self, action: str, args: tuple[Any, ...]) -> None:
        self.server.logger.warning("admin: ignored malformed %s%r", action, args)

    def _on_emit(self, sid: str, *args: Any) -> None:
        """``emit(nsp, filter, event, *args)``: emit to a namespace, or a room of it."""
        if len(args) < 3 or not _is_name(args[0]) or not _is_filter(args[1]):
            self._refuse(ACTION_EMIT, args)
            return
        nsp, room, event, *values = args
        try:
            self.server.emit(event, tuple(values), to=room or None, namespace=nsp)
        except (LocalProtocolError, TypeError, ValueError) as exc:  # reserved or bad event
            self.server.logger.warning("admin: emit refused: %s", exc)

    def _room_action(self, action: str, args: tuple[Any, ...]) -> tuple[str, str, list[str]]:
        """``(nsp, room, filter?)`` checked; the namespace, the room and the target sids."""
        if not 2 <= len(args) <= 3 or not _is_name(args[0]) or not _is_name(args[1]):
            raise ValueError(action)
        target = args[2] if len(args) == 3 else None
        if not _is_filter(target):
            raise ValueError(action)
        return args[0], args[1], self._targets(args[0], target)

    def _on_join(self, sid: str, *args: Any) -> None:
        """``join(nsp, room, filter?)``: the sockets of ``filter`` (a sid or a room;
        the namespace without one), on any node, join ``room``."""
        try:
            nsp, room, members = self._room_action("join", args)
        except ValueError:
            self._refuse("join", args)
            return
        for member in members:
            self.server.enter_room(member, room, namespace=nsp)

    def _on_leave(self, sid: str, *args: Any) -> None:
        """``leave(nsp, room, filter?)``: as ``join``, leaving ``room``."""
        try:
            nsp, room, members = self._room_action("leave", args)
        except ValueError:
            self._refuse("leave", args)
            return
        for member in members:
            self.server.leave_room(member, room, namespace=nsp)

    def _on_disconnect_action(self, sid: str, *args: Any) -> None:
        """``_disconnect(nsp, close, filter?)``: disconnect the sockets of ``filter``
        on any node; ``close``: the whole connection of a local one."""
        if not 1 <= len(args) <= 3 or not _is_name(args[0]):
            self._refuse(ACTION_DISCONNECT, args)
            return
        nsp, close = args[0], bool(args[1]) if len(args) > 1 else False
        target = args[2] if len(args) == 3 else None
        if not _is_filter(target):
            self._refuse(ACTION_DISCONNECT, args)
            return
        sio = self.server
        for member in self._targets(nsp, target):
            eio_sid = sio.manager.eio_sid_from_sid(member, nsp) if close else None
            if eio_sid is not None:  # a local socket: close its whole connection
                sio.eio.close(eio_sid)
            else:  # the namespace only (another node's socket: through the manager)
                sio.disconnect(member, namespace=nsp)

    # ------------------------------------------------------------ observed (Observer)

    def engine_connected(self, eio_sid: str) -> None:
        with self._lock:
            self._issued[eio_sid] = time.time()
        self.events.push("rawConnection")

    def engine_disconnected(self, eio_sid: str, reason: str) -> None:
        with self._lock:
            self._issued.pop(eio_sid, None)
        self.events.push("rawDisconnection", reason)

    def packet_in(self, size: int) -> None:
        self.events.push("packetsIn")
        self.events.push("bytesIn", None, size)

    def packet_out(self, size: int) -> None:
        self.events.push("packetsOut")
        self.events.push("bytesOut", None, size)

    def connected(self, sid: str, namespace: str, eio_sid: str) -> None:
        if not self.development:
            return
        serialized = self.serialize(sid, namespace)
        if serialized is None:
            return
        with self._lock:
            self._transports[(namespace, sid)] = serialized["transport"]
        self._emit(SOCKET_CONNECTED, serialized, _now())

    def disconnected(self, sid: str, namespace: str, reason: str) -> None:
        if not self.development:
            return
        with self._lock:
            self._transports.pop((namespace, sid), None)
        self._emit(SOCKET_DISCONNECTED, namespace, sid, reason, _now())

    def room_joined(self, namespace: str, room: str, sid: str) -> None:
        if self.development:
            self._emit(ROOM_JOINED, namespace, room, sid, _now())

    def room_left(self, namespace: str, room: str, sid: str) -> None:
        if self.development:
            self._emit(ROOM_LEFT, namespace, room, sid, _now())

    def event_received(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        if self.development and namespace != self.namespace:
            self._emit(EVENT_RECEIVED, namespace, sid, [event, *args], _now())

    def event_sent(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        if self.development and namespace != self.namespace:
            self._emit(EVENT_SENT, namespace, sid, [event, *args], _now())
