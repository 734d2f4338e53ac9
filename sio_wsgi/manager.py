"""In-memory client manager: namespaces, rooms, recipients and ack callbacks.

Data model: ``namespace -> room -> {sid: eio_sid}``. Every client is in the room
named after its own sid, and in the anonymous ``None`` room that holds everyone
connected to the namespace.

The manager *decides* who receives an emit (:meth:`Manager.get_recipients`) and
hands the encoded messages to a ``deliver`` callable given by the server in
:meth:`Manager.attach` (*delivery*). A pub/sub manager for several server
processes subclasses this class, publishes in :meth:`Manager.emit` and calls
:meth:`Manager.emit_local` when a bus message arrives.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sio_wsgi.config import RecoveryOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import RelayBus
from sio_wsgi.observers import Observers
from sio_wsgi.protocol.sio import Packet, PacketType
from sio_wsgi.recovery import RecoveryLog, RecoveryStore, Room
from sio_wsgi.stats import Stats

__all__ = [
    "Manager",
    "Deliver",
    "Encode",
    "AckCallback",
    "DisconnectHook",
    "ServerEventHook",
    "OutgoingHook",
]

logger = logging.getLogger(__name__)

Deliver = Callable[[str, str, Outgoing, bool], bool]
"""``deliver(eio_sid, sid, message, volatile) -> bool`` sends an encoded packet."""

Encode = Callable[[Packet], Outgoing]
"""``encode(packet) -> message`` encodes one packet with the server's serializer, ready
for every transport; the manager hands it on as it is (one object per broadcast)."""

AckCallback = Callable[..., object]
"""Called with the arguments of the client's acknowledgement."""

DisconnectHook = Callable[[str, str], None]
"""``disconnect(sid, namespace)``: the server disconnects one of its clients."""

ServerEventHook = Callable[[str, Sequence[Any], str], None]
"""``server_event(event, args, namespace)``: the server runs a server-to-server handler."""

OutgoingHook = Callable[[str, str, str, Sequence[Any]], None]
"""``outgoing(sid, namespace, event, args)``: an event was handed over for a local client."""

Rooms = dict[str | None, dict[str, str]]


#: :func:`_recoverable`'s answer for an emit it does not record (a shared store's own)
_NOT_RECORDED: Any = object()


def _recoverable(
    recovery: RecoveryStore,
    encode: Encode,
    recipients_of: Callable[..., list[tuple[str, str]]],
    event: str,
    args: Sequence[Any],
    namespace: str,
    to: str | Iterable[str] | None,
    skip_sid: str | Iterable[str] | None,
    offset: str | None,
) -> Any:
    """Connection state recovery's part of an emit: ``(message, recipients)`` with the
    offset as last argument, chosen under the store's lock (atomic with a restore); None
    when a shared store's event was delivered here already; :data:`_NOT_RECORDED` when
    there is nothing to record here (an emit a shared store records when published)."""
    if offset is not None:  # recorded by a shared store: delivered in its order
        mark = recovery.mark(offset)
        with recovery.lock:
            if mark is not None:
                if mark <= recovery.head:
                    return None
                recovery.seen(mark)
            message = encode(Packet(PacketType.EVENT, namespace, [event, *args, offset]))
            return message, recipients_of(namespace, to, skip_sid)
    if not isinstance(recovery, RecoveryLog):
        return _NOT_RECORDED
    with recovery.lock:
        seq, offset = recovery.next_offset()
        message = encode(Packet(PacketType.EVENT, namespace, [event, *args, offset]))
        recipients = recipients_of(namespace, to, skip_sid)
        recovery.record(seq, namespace, _rooms_of(to), _as_set(skip_sid), message)
    return message, recipients


def _rooms_of(to: str | Iterable[str] | None) -> list[str] | None:
    if to is None:
        return None
    return [to] if isinstance(to, str) else list(to)


def _as_set(value: str | Iterable[str] | None) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return set(value)


class Manager:
    """Single-process client manager (the default ``client_manager``).

    Thread safe: state changes happen under a lock that is never held while
    delivering.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rooms: dict[str, Rooms] = {}
        # reverse index: (namespace, sid) -> the rooms (None included) the sid is in, each
        # with the recovery log's sequence number when it joined (0 without recovery)
        self._memberships: dict[tuple[str, str], dict[Room, int]] = {}
        self._eio_to_sid: dict[tuple[str, str], str] = {}
        self._callbacks: dict[str, dict[int, AckCallback]] = {}
        self._ack_ids = itertools.count(1)
        self._encode: Encode | None = None
        self._deliver: Deliver | None = None
        self._disconnect_hook: DisconnectHook | None = None
        self._server_event_hook: ServerEventHook | None = None
        self.driver: Any = None
        #: connection state recovery's store (set by the server when it is on)
        self.recovery: RecoveryStore | None = None
        #: told of every event delivered to a local client (None: nobody listens;
        #: set by the server when an outgoing hook is registered)
        self.outgoing: OutgoingHook | None = None
        #: instrumentation (the Admin UI): told of room changes and events sent
        self.observers = Observers()
        #: the counters (sio_wsgi.stats) when metrics are on
        self.metrics: Stats | None = None

    # ---------------------------------------------------------------- wiring

    def attach(
        self,
        encode: Encode,
        deliver: Deliver,
        driver: Any = None,
        *,
        disconnect: DisconnectHook | None = None,
        server_event: ServerEventHook | None = None,
    ) -> None:
        """Connect the manager to its server.

        :param encode: encodes a packet into Engine.IO messages.
        :param deliver: sends messages to one client.
        :param driver: the server's runtime driver (for subclasses that run tasks).
        :param disconnect: ``disconnect(sid, namespace)`` disconnects a local client
            (pub/sub managers call it for a request that came from another node).
        :param server_event: ``server_event(event, args, namespace)`` runs the
            server-to-server handler of ``event`` (see :meth:`server_side_emit`).
        """
        self._encode, self._deliver, self.driver = encode, deliver, driver
        if driver is not None:  # the mode's cheapest lock (critical sections never block)
            self._lock = driver.lock()
        self._disconnect_hook, self._server_event_hook = disconnect, server_event

    def relay_bus(self) -> RelayBus | None:
        """The bus that carries requests for sessions of other processes to them
        (None: this manager joins no processes)."""
        return None

    def recovery_store(self, options: RecoveryOptions, lock: Any) -> RecoveryStore | None:
        """A recovery store every node reads, using ``lock`` (None: per process)."""
        return None

    def encode_packet(self, packet: Packet) -> Outgoing:
        """Encode one packet with the server's serializer."""
        return self._wiring()[0](packet)

    def shutdown(self) -> None:
        """Release resources (nothing to do for the in-memory manager)."""

    # ---------------------------------------------------------------- membership

    def connect(self, eio_sid: str, namespace: str) -> str:
        """Register a client in ``namespace``.

        :param eio_sid: the Engine.IO session id.
        :param namespace: the namespace.
        :returns: the new Socket.IO sid (random, unrelated to ``eio_sid``).
        """
        sid = secrets.token_urlsafe(15)
        joined = self._joined()
        self.restore(eio_sid, namespace, sid, {None: joined, sid: joined})
        return sid

    def restore(self, eio_sid: str, namespace: str, sid: str, rooms: dict[Room, int]) -> None:
        """Register ``sid`` in ``rooms`` (room -> recovery mark when it joined)."""
        with self._lock:
            self._eio_to_sid[(eio_sid, namespace)] = sid
            ns_rooms = self._rooms.setdefault(namespace, {})
            for room in rooms:
                ns_rooms.setdefault(room, {})[sid] = eio_sid
            self._memberships[(namespace, sid)] = dict(rooms)

    def memberships(self, sid: str, namespace: str) -> dict[Room, int]:
        """Every room of ``sid`` (None: the namespace) -> recovery mark when it joined."""
        with self._lock:
            return dict(self._memberships.get((namespace, sid), {}))

    def _joined(self) -> int:
        recovery = self.recovery
        return 0 if recovery is None else recovery.head

    def disconnect(self, sid: str, namespace: str) -> None:
        """Remove a client from ``namespace``, its rooms and its pending callbacks.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        """
        with self._lock:
            rooms = self._rooms.get(namespace, {})
            eio_sid = rooms.get(None, {}).get(sid)
            for room in list(self._memberships.pop((namespace, sid), ())):
                self._remove(namespace, room, sid)
            if eio_sid is not None:
                self._eio_to_sid.pop((eio_sid, namespace), None)
            self._callbacks.pop(sid, None)

    def is_connected(self, sid: str, namespace: str) -> bool:
        """Whether ``sid`` is connected to ``namespace``.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        """
        with self._lock:
            return sid in self._rooms.get(namespace, {}).get(None, {})

    def sid_from_eio_sid(self, eio_sid: str, namespace: str) -> str | None:
        """The Socket.IO sid of an Engine.IO session in ``namespace``.

        :param eio_sid: the Engine.IO session id.
        :param namespace: the namespace.
        """
        with self._lock:
            return self._eio_to_sid.get((eio_sid, namespace))

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None:
        """The Engine.IO session id behind a Socket.IO sid.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        """
        with self._lock:
            return self._rooms.get(namespace, {}).get(None, {}).get(sid)

    def get_namespaces(self) -> list[str]:
        """Namespaces that have (or had) connected clients."""
        with self._lock:
            return list(self._rooms)

    # ---------------------------------------------------------------- rooms

    def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        """Add a client to a room (created on demand).

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        :param room: the room name.
        :param eio_sid: the Engine.IO session id, looked up when ``None``.
        :raises KeyError: when ``sid`` is not connected and ``eio_sid`` is not given.
        """
        with self._lock:
            if eio_sid is None:
                eio_sid = self._rooms.get(namespace, {}).get(None, {}).get(sid)
                if eio_sid is None:
                    raise KeyError(f"{sid} is not connected to {namespace}")
            self._rooms.setdefault(namespace, {}).setdefault(room, {})[sid] = eio_sid
            self._memberships.setdefault((namespace, sid), {}).setdefault(room, self._joined())
        if self.recovery is not None:
            self.recovery.changed(namespace, sid)
        self.observers.room_joined(namespace, room, sid)  # observers: join-room hook

    def leave_room(self, sid: str, namespace: str, room: str) -> None:
        """Remove a client from a room (no error if it was not in it).

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        :param room: the room name.
        """
        with self._lock:
            self._remove(namespace, room, sid)
        if self.recovery is not None:
            self.recovery.changed(namespace, sid)
        self.observers.room_left(namespace, room, sid)  # observers: leave-room hook

    def close_room(self, room: str, namespace: str) -> None:
        """Remove every client from a room.

        :param room: the room name.
        :param namespace: the namespace.
        """
        with self._lock:
            for sid in self._rooms.get(namespace, {}).pop(room, {}):
                self._memberships.get((namespace, sid), {}).pop(room, None)

    def get_rooms(self, sid: str, namespace: str) -> list[str]:
        """Rooms a client is in, including its own sid room.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        """
        with self._lock:
            return [r for r in self._memberships.get((namespace, sid), {}) if r is not None]

    def get_participants(self, namespace: str, room: str | None) -> Iterator[tuple[str, str]]:
        """``(sid, eio_sid)`` of every client in a room (``None``: the namespace).

        :param namespace: the namespace.
        :param room: the room name, or ``None`` for every client of the namespace.
        """
        with self._lock:
            members = list(self._rooms.get(namespace, {}).get(room, {}).items())
        yield from members

    def get_recipients(
        self,
        namespace: str,
        to: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
    ) -> list[tuple[str, str]]:
        """Decide who receives an emit.

        :param namespace: the namespace.
        :param to: a room (a sid is a room), a list of rooms, or ``None`` for everyone.
        :param skip_sid: a sid or list of sids to leave out.
        :returns: ``(sid, eio_sid)`` pairs, each client once, in a stable order.
        """
        skip = _as_set(skip_sid)
        rooms: list[str | None]
        if to is None:
            rooms = [None]
        elif isinstance(to, str):
            rooms = [to]
        else:
            rooms = list(dict.fromkeys(to))
        found: dict[str, str] = {}
        with self._lock:
            ns_rooms = self._rooms.get(namespace, {})
            for room in rooms:
                for sid, eio_sid in ns_rooms.get(room, {}).items():
                    if sid not in skip:
                        found.setdefault(sid, eio_sid)
        return list(found.items())

    def _remove(self, namespace: str, room: str | None, sid: str) -> None:
        rooms = self._rooms.get(namespace)
        if rooms is None or room not in rooms:
            return
        rooms[room].pop(sid, None)
        member_of = self._memberships.get((namespace, sid))
        if member_of is not None:
            member_of.pop(room, None)
        if not rooms[room]:
            del rooms[room]
        if not rooms:
            del self._rooms[namespace]

    # ---------------------------------------------------------------- emit / acks

    def emit(
        self,
        event: str,
        args: Sequence[Any],
        namespace: str,
        to: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        callback: AckCallback | None = None,
        volatile: bool = False,
        ignore_queue: bool = False,
        compress: bool = True,
    ) -> int:
        """Emit an event to the selected clients.

        :param event: the event name.
        :param args: the event arguments.
        :param namespace: the namespace.
        :param to: room(s) to address; everyone in ``namespace`` when ``None``.
        :param skip_sid: sid(s) to leave out.
        :param callback: called with the ack arguments of each recipient.
        :param volatile: drop for clients that cannot take the message now.
        :param ignore_queue: unused here; pub/sub managers skip the bus when true.
        :param compress: False: never compressed (permessage-deflate).
        :returns: the number of clients the event was handed to.
        """
        return self.emit_local(event, args, namespace, to, skip_sid, callback, volatile, compress)

    def emit_local(
        self,
        event: str,
        args: Sequence[Any],
        namespace: str,
        to: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        callback: AckCallback | None = None,
        volatile: bool = False,
        compress: bool = True,
        offset: str | None = None,
    ) -> int:
        """Deliver an event to the clients connected to this process.

        Same parameters as :meth:`emit`, and ``offset``: the connection state
        recovery offset a shared store gave the event (it goes last in its arguments).

        :returns: the number of clients the event was handed to.
        """
        encode, deliver = self._wiring()
        recovery = self.recovery
        recorded = None
        if recovery is not None and (offset is not None or (callback is None and not volatile)):
            recorded = _recoverable(
                recovery, encode, self.get_recipients, event, args, namespace, to, skip_sid, offset
            )
            if recorded is None:
                return 0  # delivered already (caught up from a shared store)
        shared: Outgoing | None = None  # one object for every recipient: framed once
        if recorded is not None and recorded is not _NOT_RECORDED:
            shared, recipients = recorded
            shared.compress = compress
        else:
            recipients = self.get_recipients(namespace, to, skip_sid)
        payload = [event, *args]
        sent = 0
        outgoing = self.outgoing
        observed = self.observers.active  # observers: events handed to local clients
        for sid, eio_sid in recipients:
            if observed:
                self.observers.event_sent(sid, namespace, event, args)
            if callback is None:
                if shared is None:
                    shared = encode(Packet(PacketType.EVENT, namespace, payload))
                    shared.compress = compress
                message = shared
            else:
                ack_id = self.generate_ack_id(sid, callback)
                message = encode(Packet(PacketType.EVENT, namespace, payload, ack_id))
                message.compress = compress
            sent += bool(deliver(eio_sid, sid, message, volatile))
            if outgoing is not None:
                outgoing(sid, namespace, event, args)
        if self.metrics is not None:
            self.metrics.events_sent(namespace, sent)
        return sent

    def send_packet(self, sid: str, namespace: str, packet: Packet) -> bool:
        """Encode and deliver one packet to one client.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace of ``sid``.
        :param packet: the packet.
        :returns: whether it was handed to the engine (or queued).
        """
        encode, deliver = self._wiring()
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        if eio_sid is None:
            return False
        return bool(deliver(eio_sid, sid, encode(packet), False))

    def generate_ack_id(self, sid: str, callback: AckCallback) -> int:
        """Register ``callback`` for the next acknowledgement of ``sid``.

        :param sid: the Socket.IO sid.
        :param callback: called with the ack arguments.
        :returns: the ack id to put in the packet.
        """
        if self.metrics is not None:
            callback = self.metrics.timed_ack(callback)
        with self._lock:
            ack_id = next(self._ack_ids)
            self._callbacks.setdefault(sid, {})[ack_id] = callback
        return ack_id

    def trigger_callback(self, sid: str, ack_id: int, args: Sequence[Any]) -> bool:
        """Run the callback registered for ``ack_id`` (once).

        :param sid: the Socket.IO sid that acknowledged.
        :param ack_id: the ack id.
        :param args: the ack arguments.
        :returns: whether a callback was found.
        """
        with self._lock:
            callback = self._callbacks.get(sid, {}).pop(ack_id, None)
        if callback is None:
            logger.debug("unknown ack %s from %s", ack_id, sid)
            return False
        callback(*args)
        return True

    # ---------------------------------------------------------------- other nodes
    # The single-process manager has no other nodes: these are the local answers.
    # Pub/sub managers (sio_wsgi.managers.pubsub) override them to reach the cluster.

    def can_reach_remote(self, sid: str, namespace: str) -> bool:
        """Whether a sid unknown here may live on another node.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        """
        return False

    def remote_disconnect(self, sid: str, namespace: str) -> None:
        """Ask the node that owns ``sid`` to disconnect it (nothing to ask here).

        :param sid: the Socket.IO sid, not connected to this process.
        :param namespace: the namespace.
        """

    def fetch_participants(
        self, namespace: str, room: str | None = None, timeout: float = 1.0
    ) -> list[str]:
        """Sids in ``room`` (``None``: the namespace) on every node.

        :param namespace: the namespace.
        :param room: the room name, or ``None`` for every client of the namespace.
        :param timeout: seconds to wait for other nodes (unused here).
        """
        return [sid for sid, _ in self.get_participants(namespace, room)]

    def fetch_rooms(self, sid: str, namespace: str, timeout: float = 1.0) -> list[str]:
        """Rooms ``sid`` is in, wherever it is connected.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        :param timeout: seconds to wait for other nodes (unused here).
        """
        return self.get_rooms(sid, namespace)

    def server_side_emit(self, event: str, args: Sequence[Any], namespace: str) -> None:
        """Send an event to the other server nodes (there are none here).

        :param event: the event name.
        :param args: the event arguments.
        :param namespace: the namespace the handlers are registered in.
        """

    def _wiring(self) -> tuple[Encode, Deliver]:
        if self._encode is None or self._deliver is None:
            raise RuntimeError("the manager is not attached to a server")
        return self._encode, self._deliver
