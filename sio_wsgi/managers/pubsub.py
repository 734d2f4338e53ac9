"""PubSubManager: a :class:`~sio_wsgi.manager.Manager` whose servers share a message bus.

Several server processes (gunicorn workers, machines) each hold their own
clients; a broker (Redis, RabbitMQ, ...) carries :mod:`bus messages
<sio_wsgi.managers.messages>` between them. A broker subclass implements only
:meth:`PubSubManager._publish_once` and :meth:`PubSubManager._listen`.

What goes over the bus:

- ``emit``: delivered to this node's clients at once, then published; other
  nodes deliver to theirs (the sender ignores its own messages). An emit to a
  sid connected here never leaves the process.
- ``enter_room`` / ``leave_room`` / ``disconnect`` of a sid that lives on
  another node are published and applied by its owner; ``close_room`` runs
  everywhere.
- acks: an emit with ``callback`` to clients elsewhere carries a callback id;
  their acks come back as :class:`~sio_wsgi.managers.messages.AckReturn`
  addressed to this node's host id.
- queries (:meth:`fetch_participants`, :meth:`fetch_rooms`) wait, with a
  timeout, for the answers of every live node; nodes announce themselves with
  ``hello`` messages (on subscribe, then every ``heartbeat_interval``).
- :meth:`server_side_emit`: events between servers.

Broker faults: the listener task reconnects with exponential backoff, logs
every loss and recovery on this module's logger (whatever the server's
``logger`` option), and reports its state in :meth:`health`. Publishing retries
for ``publish_timeout`` seconds, then raises :class:`BusError`. Messages
published while a node was disconnected are not replayed to it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from sio_wsgi.exceptions import BusError
from sio_wsgi.manager import AckCallback, Deliver, DisconnectHook, Encode, Manager, ServerEventHook
from sio_wsgi.managers import messages as bus
from sio_wsgi.protocol.serializers import Payload
from sio_wsgi.runtime import select as runtime_select
from sio_wsgi.runtime.base import Driver, Event, Task

__all__ = ["PubSubManager", "BusError", "BusHealth"]

logger = logging.getLogger(__name__)

_UNSET: Final = object()

#: heartbeat intervals without a word from a node after which it counts as gone
_MISSED_HEARTBEATS = 3


@dataclasses.dataclass(frozen=True)
class BusHealth:
    """State of a manager's connection to the bus (see :meth:`PubSubManager.health`)."""

    host_id: str
    connected: bool  # subscribed (listening nodes) / last publish worked (write-only)
    listening: bool  # the listener task runs (False for write-only managers)
    since: float  # seconds since ``connected`` last changed
    reconnects: int  # subscriptions re-established after a loss
    last_error: str | None
    nodes: tuple[str, ...]  # other live nodes (host ids)
    published: int
    received: int
    dropped: int  # bus messages that did not parse


def _as_args(data: Payload) -> list[Payload]:
    """python-socketio's ``data``: a tuple is several arguments, ``None`` none."""
    if data is None:
        return []
    return list(data) if isinstance(data, tuple) else [data]


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class _Query:
    """A cluster query waiting for the answers of ``expected`` nodes."""

    def __init__(self, event: Event, expected: set[str], first_hit: bool) -> None:
        self.event = event
        self.expected = expected
        self.first_hit = first_hit
        self.results: dict[str, list[str]] = {}

    def add(self, host: str, result: list[str]) -> None:
        self.results[host] = result
        if (self.first_hit and result) or self.expected <= self.results.keys():
            self.event.set()


class PubSubManager(Manager):
    """Base class of the managers that join server nodes through a broker.

    :param channel: the bus channel (Redis channel, AMQP exchange) shared by the nodes.
    :param write_only: only publish (external emitters): no listener, no clients.
    :param logger: a ``logging.Logger`` for bus events; faults are logged
        whatever this is (a bool is accepted for python-socketio compatibility).
    :param publish_timeout: seconds :meth:`publish` keeps retrying before it
        raises :class:`BusError`.
    :param reconnect_delay: ``(first, max)`` seconds between listener reconnects
        (doubling).
    :param heartbeat_interval: seconds between ``hello`` messages; a node not
        heard of for three intervals is considered gone.
    :param callback_ttl: seconds an ack callback for remote clients is kept.
    :param poll_interval: seconds a listener waits for a message before it
        checks for shutdown and heartbeats.
    """

    name = "pubsub"
    #: exceptions of the broker client that mean "retry" (subclasses extend it)
    retry_errors: tuple[type[BaseException], ...] = (ConnectionError, OSError)

    def __init__(
        self,
        channel: str = "socketio",
        write_only: bool = False,
        logger: logging.Logger | bool | None = None,
        *,
        publish_timeout: float = 3.0,
        reconnect_delay: tuple[float, float] = (0.1, 5.0),
        heartbeat_interval: float = 5.0,
        callback_ttl: float = 300.0,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__()
        self.channel = channel
        self.write_only = write_only
        self.log = logger if isinstance(logger, logging.Logger) else globals()["logger"]
        self.publish_timeout = publish_timeout
        self.reconnect_delay = reconnect_delay
        self.heartbeat_interval = heartbeat_interval
        self.callback_ttl = callback_ttl
        self.poll_interval = poll_interval
        self.host_id = secrets.token_hex(8)
        self._bus_lock = threading.Lock()
        self._callback_ids = itertools.count(1)
        self._remote_callbacks: dict[int, tuple[float, AckCallback]] = {}
        self._queries: dict[str, _Query] = {}
        self._nodes: dict[str, float] = {}
        self._closed = False
        self._listener: Task | None = None
        self._connected = False
        self._changed = time.monotonic()
        self._reconnects = 0
        self._ever_subscribed = False
        self._last_error: str | None = None
        self._last_hello = 0.0
        self._delay = reconnect_delay[0]
        self._counts = {"published": 0, "received": 0, "dropped": 0}
        # each handler takes the message of its key's class
        self._dispatch: dict[type[bus.BusMessage], Callable[[str, Any], None]] = {
            bus.Emit: self._on_emit,
            bus.Disconnect: self._on_disconnect,
            bus.EnterRoom: self._on_enter_room,
            bus.LeaveRoom: self._on_leave_room,
            bus.CloseRoom: self._on_close_room,
            bus.AckReturn: self._on_ack,
            bus.Query: self._on_query,
            bus.Reply: self._on_reply,
            bus.ServerEvent: self._on_server_event,
            bus.Hello: self._on_hello,
            bus.Bye: self._on_bye,
        }

    # ------------------------------------------------------------ broker interface

    def _publish_once(self, data: bytes) -> None:
        """Send one message to every node (subclasses implement it).

        :raises Exception: one of :attr:`retry_errors` when the broker is unreachable.
        """
        raise NotImplementedError

    def _listen(self) -> Iterator[bytes | None]:
        """Subscribe and yield messages as they arrive (subclasses implement it).

        Call :meth:`_on_subscribed` once the subscription is live; yield ``None``
        at least every :attr:`poll_interval` seconds when idle; raise on a
        broker failure (the caller reconnects); return when :attr:`closing`.
        """
        raise NotImplementedError

    def _reset_publisher(self) -> None:
        """Drop the publishing connection after a failure (it is reopened lazily)."""

    def _close_connections(self) -> None:
        """Close every broker connection (called once, at shutdown)."""

    @property
    def closing(self) -> bool:
        """True once :meth:`shutdown` was called."""
        return self._closed

    # ------------------------------------------------------------ lifecycle

    def attach(
        self,
        encode: Encode,
        deliver: Deliver,
        driver: Driver | None = None,
        *,
        disconnect: DisconnectHook | None = None,
        server_event: ServerEventHook | None = None,
    ) -> None:
        """Connect to the server and, unless write-only, start the listener task.

        The arguments are those of :meth:`Manager.attach`; the listener runs as a
        task of ``driver`` (of the detected async mode when None).
        """
        super().attach(
            encode,
            deliver,
            driver or runtime_select.get_driver(None),
            disconnect=disconnect,
            server_event=server_event,
        )
        if not self.write_only and self._listener is None:
            self._listener = self.driver.spawn(self._listen_forever)

    def shutdown(self) -> None:
        """Say goodbye to the other nodes, stop the listener, close connections."""
        if self._closed:
            return
        if self._listener is not None:
            self._publish_quietly(bus.Bye())
        self._closed = True
        if self._listener is not None:
            self._listener.join(self.poll_interval * 4 + 1)
        self._close_connections()

    def health(self) -> BusHealth:
        """The bus connection's state, for health checks and monitoring."""
        return BusHealth(
            host_id=self.host_id,
            connected=self._connected,
            listening=self._listener is not None and not self._closed,
            since=time.monotonic() - self._changed,
            reconnects=self._reconnects,
            last_error=self._last_error,
            nodes=tuple(self.nodes()),
            **self._counts,
        )

    @property
    def healthy(self) -> bool:
        """Whether the bus connection currently works."""
        return self._connected

    def nodes(self) -> list[str]:
        """Host ids of the other nodes heard from recently."""
        horizon = time.monotonic() - _MISSED_HEARTBEATS * self.heartbeat_interval
        with self._bus_lock:
            return sorted(h for h, seen in self._nodes.items() if seen >= horizon)

    # ------------------------------------------------------------ publishing

    def publish(self, message: bus.BusMessage) -> None:
        """Publish a bus message, retrying for :attr:`publish_timeout` seconds.

        :raises BusError: when the broker stayed unreachable.
        :raises TypeError: when an argument cannot be sent (not JSON nor bytes).
        """
        data = bus.encode(bus.Envelope(self.host_id, message))
        deadline = time.monotonic() + self.publish_timeout
        delay = self.reconnect_delay[0]
        while True:
            try:
                self._publish_once(data)
            except self.retry_errors as exc:
                self._reset_publisher()
                self._set_state(self._connected and not self.write_only, exc)
                if time.monotonic() + delay > deadline:
                    self.log.error(
                        "could not publish %s on %s: %s", message.TYPE.value, self.channel, exc
                    )
                    raise BusError(f"message bus unreachable: {exc}") from exc
                self.log.warning(
                    "publishing %s failed (%s); retrying in %.2fs", message.TYPE.value, exc, delay
                )
                self._sleep(delay)
                delay = min(delay * 2, self.reconnect_delay[1])
                continue
            self._counts["published"] += 1
            if self.write_only:
                self._set_state(True, None)
            return

    def _publish_quietly(self, message: bus.BusMessage) -> None:
        """One attempt, failures logged (heartbeats, replies, goodbyes)."""
        try:
            self._publish_once(bus.encode(bus.Envelope(self.host_id, message)))
            self._counts["published"] += 1
        except self.retry_errors as exc:
            self._reset_publisher()
            self.log.debug("could not publish %s: %s", message.TYPE.value, exc)

    def _sleep(self, seconds: float) -> None:
        if self.driver is not None:
            self.driver.sleep(seconds)
        else:
            time.sleep(seconds)

    # ------------------------------------------------------------ emit & rooms

    def emit(
        self,
        event: str,
        args: Payload = None,
        namespace: str | None = None,
        to: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        callback: AckCallback | None = None,
        volatile: bool = False,
        ignore_queue: bool = False,
        compress: bool = True,
        *,
        room: str | Iterable[str] | None = None,
        data: Payload = _UNSET,
    ) -> int:
        """Emit to the matching clients of every node.

        Called by the server with ``args`` (a list of arguments). Called directly
        on a manager that is not attached to a server (an external emitter, e.g.
        ``RedisManager(url, write_only=True)``), the second argument is
        python-socketio's ``data``: a tuple is several arguments.

        :param args: the arguments (see above).
        :param namespace: the namespace, ``'/'`` by default.
        :param to: room(s) or sid(s); everyone when ``None``.
        :param skip_sid: sid(s) to leave out.
        :param callback: called with each client's ack arguments, on this node.
        :param volatile: may be dropped for clients that cannot take it now.
        :param ignore_queue: deliver to this node's clients only.
        :param compress: False: never compressed (permessage-deflate), on every node.
        :param room: alias of ``to``.
        :param data: python-socketio's ``data`` (a tuple is several arguments).
        :returns: the number of clients of this node it was handed to.
        :raises BusError: when the broker stayed unreachable.
        :raises ValueError: ``callback`` on a write-only manager.

        Example (a script or a worker with no server)::

            mgr = RedisManager("redis://127.0.0.1:6379/0", write_only=True)
            mgr.emit("news", {"title": "hi"}, room="readers", namespace="/feed")
        """
        ns = namespace or "/"
        target = to if to is not None else room
        if data is not _UNSET or self._encode is None:
            values = _as_args(args if data is _UNSET else data)
        else:
            values = list(args or ())
        local = (event, values, ns, target, skip_sid, callback, volatile, compress)
        if ignore_queue or (isinstance(target, str) and self.is_connected(target, ns)):
            return self.emit_local(*local)
        if callback is not None and self.write_only:
            raise ValueError("a write-only manager cannot receive acknowledgements")
        sent = 0
        if self._encode is not None:
            sent = self.emit_local(*local)
        callback_id = None if callback is None else self._keep_callback(callback)
        targets = (_as_list(target), _as_list(skip_sid))
        self.publish(bus.Emit(event, values, ns, *targets, callback_id, volatile, compress))
        return sent

    def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        """Add a client of any node to a room.

        :param eio_sid: the Engine.IO session id of a local client.
        """
        if eio_sid is not None or self.is_connected(sid, namespace):
            super().enter_room(sid, namespace, room, eio_sid)
        else:
            self.publish(bus.EnterRoom(sid, namespace, room))

    def leave_room(self, sid: str, namespace: str, room: str) -> None:
        """Remove a client of any node from a room."""
        if self.is_connected(sid, namespace):
            super().leave_room(sid, namespace, room)
        else:
            self.publish(bus.LeaveRoom(sid, namespace, room))

    def close_room(self, room: str, namespace: str) -> None:
        """Empty a room on every node."""
        super().close_room(room, namespace)
        self.publish(bus.CloseRoom(room, namespace))

    def can_reach_remote(self, sid: str, namespace: str) -> bool:
        """A sid unknown here may be connected to another node."""
        return True

    def remote_disconnect(self, sid: str, namespace: str) -> None:
        """Ask the node that owns ``sid`` to disconnect it."""
        self.publish(bus.Disconnect(sid, namespace))

    def server_side_emit(self, event: str, args: Sequence[Payload], namespace: str) -> None:
        """Send an event to the handlers of the other nodes."""
        self.publish(bus.ServerEvent(event, list(args), namespace))

    def _keep_callback(self, callback: AckCallback) -> int:
        now = time.monotonic()
        with self._bus_lock:
            callback_id = next(self._callback_ids)
            self._remote_callbacks[callback_id] = (now, callback)
        return callback_id

    # ------------------------------------------------------------ cluster queries

    def fetch_participants(
        self, namespace: str, room: str | None = None, timeout: float = 1.0
    ) -> list[str]:
        """Sids in ``room`` on every live node (those answering within ``timeout``).

        :param room: the room, or ``None`` for every client of the namespace.
        :param timeout: seconds to wait for the other nodes.
        """
        found = dict.fromkeys(super().fetch_participants(namespace, room))
        for result in self._ask(bus.QueryKind.PARTICIPANTS, namespace, room, timeout, False):
            found.update(dict.fromkeys(result))
        return list(found)

    def fetch_rooms(self, sid: str, namespace: str, timeout: float = 1.0) -> list[str]:
        """Rooms of ``sid``, asked of the node that owns it.

        :param timeout: seconds to wait for the other nodes.
        """
        if self.is_connected(sid, namespace):
            return self.get_rooms(sid, namespace)
        for result in self._ask(bus.QueryKind.ROOMS, namespace, sid, timeout, True):
            if result:
                return result
        return []

    def _ask(
        self,
        kind: bus.QueryKind,
        namespace: str,
        subject: str | None,
        timeout: float,
        first_hit: bool,
    ) -> list[list[str]]:
        if self.write_only:
            raise RuntimeError("a write-only manager cannot query other nodes")
        expected = set(self.nodes())
        if not expected:
            return []
        request_id = secrets.token_hex(8)
        query = _Query(self.driver.event(), expected, first_hit)
        with self._bus_lock:
            self._queries[request_id] = query
        try:
            self.publish(bus.Query(request_id, kind.value, namespace, subject))
            if not query.event.wait(timeout):
                missing = expected - query.results.keys()
                self.log.warning(
                    "%s query: no answer from %s within %ss",
                    kind.value,
                    ", ".join(sorted(missing)),
                    timeout,
                )
        finally:
            with self._bus_lock:
                self._queries.pop(request_id, None)
        return list(query.results.values())

    # ------------------------------------------------------------ listener

    def _listen_forever(self) -> None:
        """The listener task: subscribe, dispatch, reconnect with backoff; forever."""
        try:
            while not self._closed:
                try:
                    for raw in self._listen():
                        if self._closed:
                            break
                        if raw is not None:
                            self._receive(raw)
                        self._tick()
                    error: BaseException = ConnectionError("the subscription ended")
                except Exception as exc:  # noqa: BLE001 - a broker failure, logged by _lost
                    error = exc
                if self._closed:
                    break
                self._lost(error)
                self._pause(self._delay)
                self._delay = min(self._delay * 2, self.reconnect_delay[1])
        finally:
            if not self._closed:
                self.log.error("the %s bus listener of %s stopped", self.name, self.host_id)
            self._set_state(False, None)

    def _pause(self, seconds: float) -> None:
        """Sleep, waking early at shutdown."""
        deadline = time.monotonic() + seconds
        while not self._closed and time.monotonic() < deadline:
            self.driver.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _on_subscribed(self) -> None:
        """Called by :meth:`_listen` once the subscription is live."""
        if self._ever_subscribed:
            self._reconnects += 1
            self.log.warning(
                "%s bus: reconnected to %s after %.2fs; messages published "
                "meanwhile were not received",
                self.name,
                self.channel,
                time.monotonic() - self._changed,
            )
        else:
            self.log.info("%s bus: listening on %s as %s", self.name, self.channel, self.host_id)
        self._ever_subscribed = True
        self._delay = self.reconnect_delay[0]
        self._set_state(True, None)
        self._last_hello = time.monotonic()
        self._publish_quietly(bus.Hello(reply=True))

    def _lost(self, error: BaseException) -> None:
        if self._connected or not self._ever_subscribed:
            self.log.error(
                "%s bus: lost the connection to %s (%s: %s); reconnecting",
                self.name,
                self.channel,
                type(error).__name__,
                error,
            )
        else:
            self.log.warning(
                "%s bus: still unreachable (%s: %s); next try in %.2fs",
                self.name,
                type(error).__name__,
                error,
                self._delay,
            )
        self._set_state(False, error)

    def _set_state(self, connected: bool, error: BaseException | None) -> None:
        if error is not None:
            self._last_error = f"{type(error).__name__}: {error}"
        if connected != self._connected:
            self._connected = connected
            self._changed = time.monotonic()

    def _tick(self) -> None:
        """Heartbeat and expiry, run by the listener between messages."""
        now = time.monotonic()
        if now - self._last_hello < self.heartbeat_interval:
            return
        self._last_hello = now
        self._publish_quietly(bus.Hello())
        with self._bus_lock:
            old = now - self.callback_ttl
            for key in [k for k, (t, _) in self._remote_callbacks.items() if t < old]:
                del self._remote_callbacks[key]
            gone = now - _MISSED_HEARTBEATS * self.heartbeat_interval
            for host in [h for h, seen in self._nodes.items() if seen < gone]:
                del self._nodes[host]

    def _receive(self, raw: bytes | str) -> None:
        """Decode and dispatch one bus message; bad ones are logged and dropped."""
        try:
            envelope = bus.decode(raw)
        except bus.BusMessageError as exc:
            self._counts["dropped"] += 1
            self.log.warning("dropped a bus message that does not parse: %s", exc)
            return
        if envelope.host == self.host_id:
            return
        self._counts["received"] += 1
        with self._bus_lock:  # listening nodes announce themselves; emitters do not
            if isinstance(envelope.message, bus.Hello) or envelope.host in self._nodes:
                self._nodes[envelope.host] = time.monotonic()
        try:
            self._dispatch[type(envelope.message)](envelope.host, envelope.message)
        except Exception:  # one bad message must not stop the listener
            self.log.exception("error handling a %s bus message", envelope.message.TYPE.value)

    # ------------------------------------------------------------ message handlers

    def _on_emit(self, host: str, msg: bus.Emit) -> None:
        callback = None if msg.callback_id is None else self._ack_sender(host, msg.callback_id)
        self.emit_local(
            msg.event,
            msg.args,
            msg.namespace,
            msg.to,
            msg.skip_sid,
            callback,
            msg.volatile,
            msg.compress,
        )

    def _ack_sender(self, host: str, callback_id: int) -> AckCallback:
        def send_back(*args: Payload) -> None:
            self.publish(bus.AckReturn(host, callback_id, list(args)))

        return send_back

    def _on_disconnect(self, host: str, msg: bus.Disconnect) -> None:
        if self._disconnect_hook is not None and self.is_connected(msg.sid, msg.namespace):
            self.driver.spawn(self._disconnect_hook, msg.sid, msg.namespace)

    def _on_enter_room(self, host: str, msg: bus.EnterRoom) -> None:
        if self.is_connected(msg.sid, msg.namespace):
            Manager.enter_room(self, msg.sid, msg.namespace, msg.room)

    def _on_leave_room(self, host: str, msg: bus.LeaveRoom) -> None:
        Manager.leave_room(self, msg.sid, msg.namespace, msg.room)

    def _on_close_room(self, host: str, msg: bus.CloseRoom) -> None:
        Manager.close_room(self, msg.room, msg.namespace)

    def _on_ack(self, host: str, msg: bus.AckReturn) -> None:
        if msg.target != self.host_id:
            return
        with self._bus_lock:
            entry = self._remote_callbacks.get(msg.callback_id)
        if entry is None:
            self.log.debug("ack for unknown or expired callback %s", msg.callback_id)
            return
        entry[1](*msg.args)

    def _on_query(self, host: str, msg: bus.Query) -> None:
        kind = bus.QueryKind(msg.kind)
        if kind is bus.QueryKind.ROOMS:
            result = self.get_rooms(msg.subject, msg.namespace) if msg.subject else []
        else:
            result = [sid for sid, _ in self.get_participants(msg.namespace, msg.subject)]
        self._publish_quietly(bus.Reply(host, msg.request_id, result))

    def _on_reply(self, host: str, msg: bus.Reply) -> None:
        if msg.target != self.host_id:
            return
        with self._bus_lock:
            query = self._queries.get(msg.request_id)
        if query is not None:
            query.add(host, msg.result)

    def _on_server_event(self, host: str, msg: bus.ServerEvent) -> None:
        if self._server_event_hook is not None:
            self.driver.spawn(self._server_event_hook, msg.event, msg.args, msg.namespace)

    def _on_hello(self, host: str, msg: bus.Hello) -> None:
        if msg.reply:
            self._publish_quietly(bus.Hello())

    def _on_bye(self, host: str, msg: bus.Bye) -> None:
        with self._bus_lock:
            self._nodes.pop(host, None)
