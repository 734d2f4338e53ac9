"""The Socket.IO layer under :class:`~sio_wsgi.server.Server`: packets in, handlers run.

:class:`Dispatcher` implements the engine's ``EngineHandler`` callbacks. For
each message it decodes the packet (assembling binary attachments), routes it
by type, and:

- CONNECT: checks the namespace, registers the sid, runs the ``connect``
  handler, then sends the CONNECT reply (or CONNECT_ERROR). What is emitted to
  the sid meanwhile waits in the client's *pending buffer* and goes out right
  after the reply, in order;
- EVENT: runs the handler and sends its return value as the ack;
- ACK: resolves the emit callback (or ``call()`` waiter) right on the reader;
- DISCONNECT, or the connection closing: runs the ``disconnect`` handlers once.

CONNECT, EVENT and DISCONNECT (and the disconnect handlers of a closed
connection) go through the client's :class:`~sio_wsgi.clients.SerialQueue`, so
they run in arrival order.

The dispatcher acts on the engine only through the functions given to
:meth:`Dispatcher.attach` (``run(eio_sid, fn, *args)``, ``send(eio_sid,
messages, volatile)``, ``close(eio_sid, reason)``, ``call_later(delay, fn,
*args)``): a test hands it recording functions and drives it synchronously.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import NoReturn, Protocol

from sio_wsgi.acks import Waiters, as_args
from sio_wsgi.clients import CallLater, Client, Environ, Run, SerialQueue
from sio_wsgi.config import RecoveryOptions, ServerOptions
from sio_wsgi.connecting import ConnectPhase
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.exceptions import EventRejected, RemoteProtocolError
from sio_wsgi.hooks import Hooks
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import HandlerRegistry
from sio_wsgi.protocol import sio as sio_codec
from sio_wsgi.protocol.serializers import Serializer
from sio_wsgi.protocol.sio import AttachmentAssembler, Packet, PacketType
from sio_wsgi.recovering import SessionRecovery
from sio_wsgi.recovery import (
    RECOVERABLE,
    RecoveryLog,
    RecoveryStore,
)
from sio_wsgi.runtime.base import Driver, Lock
from sio_wsgi.stats import Stats

__all__ = ["Dispatcher", "Send", "Close", "CallLater", "Run"]

_ERROR_EVENT = "error"
"""The event an event middleware's refusal reaches the client as."""

Messages = Outgoing


class Send(Protocol):
    """``send(eio_sid, messages, volatile=False) -> bool``: queue Engine.IO
    messages to one connection, atomically; False when they were dropped."""

    def __call__(self, eio_sid: str, messages: Messages, volatile: bool = False, /) -> bool: ...


class Close(Protocol):
    """``close(eio_sid, reason)``: close a connection (its ``on_disconnect`` follows)."""

    def __call__(self, eio_sid: str, reason: DisconnectReason, /) -> None: ...


def _unattached(*args: object) -> NoReturn:
    raise RuntimeError("the dispatcher is not attached to an engine")


class Dispatcher(ConnectPhase):
    """Decodes, routes and runs what the clients send; implements ``EngineHandler``.

    :param options: the server options (namespaces, timeouts, limits, ordering).
    :param handlers: the event handlers.
    :param manager: rooms, sids and ack callbacks.
    :param serializer: encodes and decodes packet payloads.
    :param logger: the server's logger.
    :param lock: makes the lock of each new client.
    :param hooks: the middlewares and observers (none when omitted).
    """

    def __init__(
        self,
        options: ServerOptions,
        handlers: HandlerRegistry,
        manager: Manager,
        serializer: Serializer,
        logger: logging.Logger,
        lock: Callable[[], Lock],
        hooks: Hooks | None = None,
    ) -> None:
        self.options = options
        #: connect / event middlewares, on_any and outgoing observers
        self.hooks = hooks if hooks is not None else Hooks(handlers)
        self.always_connect = options.always_connect
        self.handlers = handlers
        self.manager = manager
        #: instrumentation (the Admin UI), shared with the manager
        self.observers = manager.observers
        self.logger = logger
        #: eio_sid -> the state of each connection, from on_connect until its
        #: disconnect handlers ran
        self.clients: dict[str, Client] = {}
        self._serializer = serializer
        self.limits = sio_codec.Limits.from_options(options)
        self._new_lock = lock
        #: the ``call()`` waiters, failed when their client leaves
        self.waiters = Waiters(lock())
        #: the counters (sio_wsgi.stats) when metrics are on
        self.metrics: Stats | None = None
        self._send: Send = _unattached
        self._close: Close = _unattached
        self._call_later: CallLater = _unattached
        #: connection state recovery (None: off): its store, which the manager records
        #: emits in, and the CONNECT / persisting side of it
        self.recovery: RecoveryStore | None = None
        self.recovering: SessionRecovery | None = None
        recovery = options.connection_state_recovery
        if isinstance(recovery, RecoveryOptions):
            shared_lock = lock()
            self.recovery = manager.recovery_store(recovery, shared_lock) or RecoveryLog(
                recovery, shared_lock
            )
            self.recovering = SessionRecovery(self.recovery, manager, logger, self.clients)
        #: a recovered connection skips the connect middlewares
        self._skip_recovered = isinstance(recovery, RecoveryOptions) and recovery.skip_middlewares
        manager.recovery = self.recovery
        self.queue = SerialQueue(
            _unattached,
            self._overflow,
            concurrent=options.async_handlers,
            max_bytes=options.max_pending_bytes,
            logger=logger,
            serial=options.serial_handlers,
            lock=lock(),
        )
        self._submit = self.queue.submit
        self._submit_event = self.queue.submit_event  # bound once: called for every event
        self._run_event_fn = self._run_event  # bound once: queued for every event
        self._routes: dict[PacketType, Callable[[Client, Packet], None]] = {
            PacketType.CONNECT: self._on_connect_packet,
            PacketType.DISCONNECT: self._on_disconnect_packet,
            PacketType.EVENT: self._on_event_packet,
            PacketType.BINARY_EVENT: self._on_event_packet,
            PacketType.ACK: self._on_ack_packet,
            PacketType.BINARY_ACK: self._on_ack_packet,
            PacketType.CONNECT_ERROR: self._on_invalid_packet,
        }

    def attach(self, *, run: Run, send: Send, close: Close, call_later: CallLater) -> None:
        """Give the dispatcher the engine functions it acts through.

        :param run: runs a client's queued handlers (``engine.dispatch``).
        :param send: every message to a client goes through it (``engine.send``).
        :param close: closes a connection (``engine.close``).
        :param call_later: arms the connect timeout (``engine.scheduler.call_later``).
        """
        self.queue.run = run
        self.queue.call_later = call_later
        self._send, self._close, self._call_later = send, close, call_later

    def start(self, driver: Driver) -> None:
        """Start the recovery store's persisting task (a shared store only)."""
        if self.recovering is not None:
            self.recovering.start(driver)

    def stop(self) -> None:
        """Stop the persisting task (at shutdown)."""
        if self.recovering is not None:
            self.recovering.stop()

    # ------------------------------------------------------------- EngineHandler

    def on_connect(self, eio_sid: str, environ: Environ) -> bool:
        """A new Engine.IO connection: it has ``connect_timeout`` to join a namespace."""
        client = Client(eio_sid, environ, self._new_lock())
        self.clients[eio_sid] = client
        self.observers.engine_connected(eio_sid)  # observers: engine "connection" hook
        client.timer = self._call_later(self.options.connect_timeout, self._check_connected, client)
        return True

    def on_message(self, eio_sid: str, data: str | bytes) -> None:
        """One Engine.IO message from the transport reader (in arrival order)."""
        client = self.clients.get(eio_sid)
        if client is None or client.closed:
            return
        client.rx_unqueued += len(data)
        if self.observers.active:  # observers: engine "packet" hook
            self.observers.packet_in(len(data))
        metrics = self.metrics
        if metrics is not None:  # counted inline (every message)
            metrics.messages_in += 1
            metrics.bytes_in += len(data)
        try:
            packet = self._parse(client, data)
            if packet is not None:
                self._routes[packet.type](client, packet)
        except RemoteProtocolError as exc:
            self.logger.warning("closing %s: invalid packet: %s", eio_sid, exc)
            self._close(eio_sid, DisconnectReason.PARSE_ERROR)

    def on_disconnect(self, eio_sid: str, reason: str) -> None:
        """The connection closed: queue each namespace's disconnect handler, then
        forget the client."""
        client = self.clients.get(eio_sid)
        if client is None:
            return
        self.observers.engine_disconnected(eio_sid, reason)  # observers: engine "close" hook
        with client.lock:
            client.closed = True
            claimed = list(client.namespaces.items())
            client.namespaces.clear()
        if client.timer is not None:
            client.timer.cancel()
        recoverable = reason in RECOVERABLE
        for ns, sid in claimed:
            self.waiters.fail(sid)
            self._submit(client, self._finish_namespace, client, sid, ns, reason, recoverable)
        self._submit(client, self._forget, client)

    # ------------------------------------------------------------- for the server

    def encode(self, packet: Packet) -> Outgoing:
        """One packet, encoded with the server's serializer, ready for every transport
        (the manager hands the same object to every recipient of a broadcast)."""
        return Outgoing.messages(sio_codec.encode(packet, self._serializer))

    def deliver(self, eio_sid: str, sid: str, messages: Messages, volatile: bool) -> bool:
        """Send to a client (the manager's ``deliver``), holding the messages back
        while the CONNECT reply of ``sid`` has not gone out."""
        if self.observers.active:  # observers: engine "packetCreate" hook
            self.observers.packet_out(messages.size)
        client = self.clients.get(eio_sid)
        if client is not None:
            with client.lock:
                queue = client.pending.get(sid)
                if queue is not None:
                    queue.append(messages)
                    return True
        return self._send(eio_sid, messages, volatile)

    def is_connected(self, sid: str, namespace: str) -> bool:
        """Whether ``sid`` is connected; local clients are checked against their
        own state, which changes at once when they leave. A sid unknown here
        counts as connected when a pub/sub manager may reach it on another node."""
        client = self.client_of(sid, namespace)
        if client is None:
            manager = self.manager
            return manager.is_connected(sid, namespace) or manager.can_reach_remote(sid, namespace)
        return client.connected_as(sid, namespace)

    def client_of(self, sid: str, namespace: str) -> Client | None:
        """The local client behind ``sid``, or None."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        return None if eio_sid is None else self.clients.get(eio_sid)

    def disconnect(self, sid: str, namespace: str) -> bool:
        """The server disconnects ``sid`` from ``namespace``: DISCONNECT to the
        client, then the disconnect handler (a CONNECT still being handled is
        refused instead).

        :returns: False when ``sid`` is not a client of this process.
        """
        client = self.client_of(sid, namespace)
        if client is None:
            return False
        with client.lock:
            if client.namespaces.get(namespace) != sid:
                return True
            del client.namespaces[namespace]
            connecting = sid in client.pending
        self.waiters.fail(sid)
        if not connecting:  # else _run_connect sees it is gone and refuses it
            self._send_packet(client, Packet(PacketType.DISCONNECT, namespace))
            self._finish_namespace(client, sid, namespace, DisconnectReason.SERVER_DISCONNECT)
        return True

    # ------------------------------------------------------------- connection

    def _check_connected(self, client: Client) -> None:
        if not client.ever_connected and not client.closed:
            self.logger.info("%s did not connect to a namespace in time", client.eio_sid)
            self._close(client.eio_sid, DisconnectReason.SERVER_DISCONNECT)

    def _overflow(self, client: Client) -> None:
        self.logger.warning(
            "closing %s: over %d bytes of events queued behind its handlers",
            client.eio_sid,
            self.options.max_pending_bytes,
        )
        self._close(client.eio_sid, DisconnectReason.TRANSPORT_ERROR)

    def _forget(self, client: Client) -> None:
        if self.clients.get(client.eio_sid) is client:
            del self.clients[client.eio_sid]

    def _parse(self, client: Client, data: str | bytes) -> Packet | None:
        """Decode one message; None while a binary packet waits for attachments."""
        if client.assembler is not None:
            packet = client.assembler.add(data)
            if packet is not None:
                client.assembler = None
            return packet
        packet = sio_codec.decode(data, self._serializer, self.limits)
        if packet.attachments:
            client.assembler = AttachmentAssembler(packet)
            return None
        return packet

    def _send_packet(self, client: Client, packet: Packet) -> bool:
        return self._send(client.eio_sid, self.encode(packet))

    # ------------------------------------------------------------- DISCONNECT

    def _on_disconnect_packet(self, client: Client, packet: Packet) -> None:
        sid = client.namespaces.get(packet.namespace)
        if sid is None:
            return
        self.waiters.fail(sid)
        with client.lock:  # an explicit disconnect: nothing to recover afterwards
            pid = client.pids.pop(packet.namespace, None)
        # in the client's queue, so a CONNECT still being handled completes first
        self._submit(client, self._client_left, client, sid, packet.namespace, pid)

    def _client_left(self, client: Client, sid: str, ns: str, pid: str | None = None) -> None:
        with client.lock:
            if client.namespaces.get(ns) == sid:
                del client.namespaces[ns]
        # a no-op when the server already disconnected it; ahead of a transport close
        # queued behind it, so the handler gets the reason the client gave
        self._finish_namespace(client, sid, ns, DisconnectReason.CLIENT_DISCONNECT)
        if pid is not None and self.recovery is not None:
            self.recovery.forget(pid)

    def _finish_namespace(
        self, client: Client, sid: str, ns: str, reason: str, recoverable: bool = False
    ) -> None:
        """Run the disconnect handler once, then forget the client's namespace state
        (or keep it for the client's recovery: ``recoverable``, the connection dropped)."""
        if not self.manager.is_connected(sid, ns):
            return
        if self.metrics is not None:
            self.metrics.disconnected(ns, reason)
        try:
            handler = self.handlers.resolve(ns, "disconnect")
            if handler is not None:
                handler(sid, reason)
        finally:
            if self.hooks.forgetting:
                self.hooks.forget(sid, ns)
            if self.recovering is not None:
                self.recovering.ended(client, sid, ns, recoverable)
            else:
                self.manager.disconnect(sid, ns)
                with client.lock:
                    client.sessions.pop(ns, None)
            self.observers.disconnected(sid, ns, reason)  # observers: "disconnect" hook

    # ------------------------------------------------------------- EVENT and ACK

    def _on_event_packet(self, client: Client, packet: Packet) -> None:
        sid = client.namespaces.get(packet.namespace)
        if sid is None:
            self.logger.debug("event for unconnected namespace %s ignored", packet.namespace)
            return
        if self.metrics is not None:
            self.metrics.event_in(packet.namespace)
        self._submit_event(client, self._run_event_fn, sid, packet, client)

    def _run_event(self, sid: str, packet: Packet, client: Client) -> None:
        ns = packet.namespace
        if not self.manager.is_connected(sid, ns):
            return
        event, *args = packet.data
        if self.hooks.incoming:
            try:
                event, args = self.hooks.run_event(sid, ns, event, args)
            except EventRejected as exc:  # dropped: no handler, no ack (as in Node)
                self._reject_event(sid, ns, exc)
                return
        if self.observers.active:  # observers: events received (after the middlewares)
            self.observers.event_received(sid, ns, event, args)
        handler = self.handlers.resolve(ns, event)
        if handler is None:
            self.logger.debug("no handler for event %s [%s]", event, ns)
            return
        self.logger.info("received event %s from %s [%s]", event, sid, ns)
        metrics = self.metrics
        if metrics is None:
            result = handler(sid, *args)
        else:  # timed here, not through a wrapper: no extra frame on the hot path
            start = perf_counter()
            try:
                result = handler(sid, *args)
            except BaseException:
                metrics.handler_failed(ns)
                raise
            finally:
                metrics.handler_took(ns, perf_counter() - start)
        if packet.id is None:
            return
        ack = Packet(PacketType.ACK, ns, as_args(result), packet.id)
        if client.namespaces.get(ns) == sid:  # still connected: straight to its client
            self.deliver(client.eio_sid, sid, self.encode(ack), False)

    def _reject_event(self, sid: str, ns: str, exc: EventRejected) -> None:
        """An event middleware dropped an event of ``sid``: an ``error`` event tells
        the client, and it is disconnected when the refusal asks for it."""
        self.logger.info("event of %s rejected [%s]: %s", sid, ns, exc.message)
        self.manager.emit_local(_ERROR_EVENT, [exc.payload], ns, to=sid)
        if exc.disconnect:
            self.disconnect(sid, ns)

    def _on_ack_packet(self, client: Client, packet: Packet) -> None:
        sid = client.namespaces.get(packet.namespace)
        if sid is None or packet.id is None:
            return
        try:
            self.manager.trigger_callback(sid, packet.id, packet.data)
        except Exception:
            self.logger.exception("error in an ack callback")

    def _on_invalid_packet(self, client: Client, packet: Packet) -> None:
        raise RemoteProtocolError(f"clients may not send {packet.type.name}")
