"""PubSubManager: a :class:`~sio_wsgi.manager.Manager` whose servers share a message bus.

Several server processes (gunicorn workers, machines) each hold their own
clients; a broker (Redis, RabbitMQ, ...) carries :mod:`bus messages
<sio_wsgi.managers.messages>` between them. A broker subclass implements only
:meth:`~sio_wsgi.managers.link.BusLink._publish_once` and
:meth:`~sio_wsgi.managers.link.BusLink._listen`.

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

The class is built in three layers, each in its own module:
:class:`~sio_wsgi.managers.link.BusLink` (publishing, the listener and its
reconnection, node liveness, health), :class:`~sio_wsgi.managers.queries.BusQueries`
(cluster queries, server-to-server events) and :class:`PubSubManager` here
(emits, rooms, disconnects and acks across nodes).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Final

from sio_wsgi.exceptions import BusError
from sio_wsgi.manager import AckCallback, Manager
from sio_wsgi.managers import messages as bus
from sio_wsgi.managers.link import BusHealth
from sio_wsgi.managers.queries import BusQueries
from sio_wsgi.protocol.serializers import Payload

__all__ = ["PubSubManager", "BusError", "BusHealth"]

logger = logging.getLogger(__name__)

_UNSET: Final = object()


def _as_args(data: Payload) -> list[Payload]:
    """python-socketio's ``data``: a tuple is several arguments, ``None`` none."""
    if data is None:
        return []
    return list(data) if isinstance(data, tuple) else [data]


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class PubSubManager(BusQueries):
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
    :param relay: serve every session from every process: a request for a
        session of another process is relayed to it over the bus (no sticky
        sessions needed; see docs/multinode.md). False: such a request gets a 400,
        as without a client manager (sticky routing is then required).
    :param relay_address: the IP address on which this process takes relayed
        requests straight from the others (a TCP port of its own, announced on
        the bus; see :mod:`sio_wsgi.managers.direct`), one socket hop instead of
        two broker hops. The default, the loopback address, serves the processes
        of one machine (``gunicorn -w N``); across machines give the address the
        others reach this one at. None: relayed requests go through the broker.
    """

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
        relay: bool = True,
        relay_address: str | None = "127.0.0.1",
    ) -> None:
        super().__init__(
            channel,
            write_only,
            logger,
            publish_timeout=publish_timeout,
            reconnect_delay=reconnect_delay,
            heartbeat_interval=heartbeat_interval,
            poll_interval=poll_interval,
            relay_address=relay_address if relay else None,
        )
        self.callback_ttl = callback_ttl
        self.relay = relay
        self._callback_ids = itertools.count(1)
        self._remote_callbacks: dict[int, tuple[float, AckCallback]] = {}
        self._dispatch.update(
            {
                bus.Emit: self._on_emit,
                bus.Disconnect: self._on_disconnect,
                bus.EnterRoom: self._on_enter_room,
                bus.LeaveRoom: self._on_leave_room,
                bus.CloseRoom: self._on_close_room,
                bus.AckReturn: self._on_ack,
            }
        )

    def relay_bus(self) -> PubSubManager | None:
        """This manager when it relays sessions (``relay=True``, and not write-only)."""
        return self if self.relay and not self.write_only else None

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
        store = self.recovery
        if (
            store is not None
            and store.shared
            and callback is None
            and not volatile
            and not ignore_queue
            and self._encode is not None
        ):
            # recoverable, in a store every node reads: the store gives the offset and
            # publishes; every node, this one included, delivers it from the bus
            message = bus.Emit(event, values, ns, _as_list(target), _as_list(skip_sid))
            message = dataclasses.replace(message, compress=compress)
            once = secrets.token_hex(12)  # the publish's retries do not record it twice
            self.publish_with(lambda host, msg: store.publish_emit(host, msg, once), message)
            return 0
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

    def _keep_callback(self, callback: AckCallback) -> int:
        now = time.monotonic()
        with self._bus_lock:
            callback_id = next(self._callback_ids)
            self._remote_callbacks[callback_id] = (now, callback)
        return callback_id

    def _expire(self, now: float) -> None:
        """Forget the ack callbacks older than :attr:`callback_ttl`."""
        old = now - self.callback_ttl
        for key in [k for k, (t, _) in self._remote_callbacks.items() if t < old]:
            del self._remote_callbacks[key]

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
            msg.offset,
        )

    def _resubscribed(self) -> None:
        """Back on the bus: deliver the recoverable emits published while this node was
        not subscribed, from a shared recovery store (the bus messages that follow and
        were already delivered are skipped by their offset)."""
        store = self.recovery
        if store is None or not store.shared:
            return
        try:
            missed = store.since_head()
        except Exception as exc:  # noqa: BLE001 - the broker is gone again: next time
            self.log.warning("could not catch up on the recovery stream: %s", exc)
            return
        if missed:
            self.log.warning("delivering %d events published while disconnected", len(missed))
        for host, message in missed:
            self._on_emit(host, message)

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
