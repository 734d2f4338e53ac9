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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sio_wsgi.config import RecoveryOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import RelayBus
from sio_wsgi.membership import Membership, as_set
from sio_wsgi.protocol.sio import Packet, PacketType
from sio_wsgi.recovery import RecoveryLog, RecoveryStore
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
        recovery.record(seq, namespace, _rooms_of(to), as_set(skip_sid), message)
    return message, recipients


def _rooms_of(to: str | Iterable[str] | None) -> list[str] | None:
    if to is None:
        return None
    return [to] if isinstance(to, str) else list(to)


class Manager(Membership):
    """Single-process client manager (the default ``client_manager``).

    Thread safe: state changes happen under a lock that is never held while
    delivering. Who is connected and in which rooms is :class:`~sio_wsgi.membership.Membership`'s.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: dict[str, dict[int, AckCallback]] = {}
        self._ack_ids = itertools.count(1)
        self._encode: Encode | None = None
        self._deliver: Deliver | None = None
        self._disconnect_hook: DisconnectHook | None = None
        self._server_event_hook: ServerEventHook | None = None
        self.driver: Any = None
        #: told of every event delivered to a local client (None: nobody listens;
        #: set by the server when an outgoing hook is registered)
        self.outgoing: OutgoingHook | None = None
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

    def disconnect(self, sid: str, namespace: str) -> None:
        """Remove a client from ``namespace``, its rooms and its pending callbacks.

        :param sid: the Socket.IO sid.
        :param namespace: the namespace.
        """
        super().disconnect(sid, namespace)
        with self._lock:
            self._callbacks.pop(sid, None)

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
