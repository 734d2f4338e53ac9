"""BusLink: a node's connection to the message bus (the base of ``PubSubManager``).

This layer moves bytes and knows who is out there; what the messages mean is
left to the layers above (:mod:`sio_wsgi.managers.queries`,
:mod:`sio_wsgi.managers.pubsub`), which register a handler per message class in
``_dispatch``. A broker subclass implements the few methods of
:class:`~sio_wsgi.managers.broker.BrokerClient`.

- publishing: :meth:`BusLink.publish` retries for ``publish_timeout`` seconds,
  then raises :class:`BusError`; heartbeats, replies and goodbyes get one
  attempt (:meth:`BusLink._publish_quietly`).
- listening: one task subscribes, decodes and dispatches, and reconnects with
  exponential backoff, logging every loss and recovery on the
  ``sio_wsgi.managers.pubsub`` logger (whatever the server's ``logger`` option).
  Messages published while a node was disconnected are not replayed to it.
- node liveness: nodes announce themselves with ``hello`` (on subscribe, then
  every ``heartbeat_interval``) and leave with ``bye``; :meth:`BusLink.nodes`
  lists those heard of lately (:class:`~sio_wsgi.managers.nodes.NodeTable`),
  :meth:`BusLink.health` reports all of it.
- one process's inbox (the session relay's messages): :class:`~sio_wsgi.managers.inbox.Inbox`,
  over a direct link when there is one, else through the broker.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from sio_wsgi.engine.ports import DIRECT_MESSAGE_PREFIX
from sio_wsgi.exceptions import BusError
from sio_wsgi.manager import Deliver, DisconnectHook, Encode, Manager, ServerEventHook
from sio_wsgi.managers import messages as bus
from sio_wsgi.managers.broker import BrokerClient
from sio_wsgi.managers.inbox import Inbox
from sio_wsgi.managers.nodes import NodeTable
from sio_wsgi.runtime import select as runtime_select
from sio_wsgi.runtime.base import Driver, Task

__all__ = ["BusLink", "BusHealth"]

#: the bus's logger, named after the public module (docs/multinode.md)
logger = logging.getLogger("sio_wsgi.managers.pubsub")
#: how often :meth:`BusLink.ready` looks whether the first subscription is live
_READY_POLL = 0.01


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
    #: session relay messages sent and received over direct links (not the broker)
    direct_sent: int = 0
    direct_received: int = 0


class BusLink(BrokerClient, Manager):
    """Publishing, the listener task with its reconnection, node liveness and health.

    The parameters are :class:`~sio_wsgi.managers.pubsub.PubSubManager`'s
    (``callback_ttl`` excepted).
    """

    name = "pubsub"

    def __init__(
        self,
        channel: str,
        write_only: bool,
        logger: logging.Logger | bool | None,
        *,
        publish_timeout: float,
        reconnect_delay: tuple[float, float],
        heartbeat_interval: float,
        poll_interval: float,
        relay_address: str | None = None,
    ) -> None:
        super().__init__()
        self.channel = channel
        self.write_only = write_only
        self.log = logger if isinstance(logger, logging.Logger) else globals()["logger"]
        self.publish_timeout = publish_timeout
        self.reconnect_delay = reconnect_delay
        self.heartbeat_interval = heartbeat_interval
        self.poll_interval = poll_interval
        self.host_id = secrets.token_hex(8)
        self._bus_lock = threading.Lock()
        self._nodes = NodeTable(heartbeat_interval)
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
        #: where this process's direct links listen (None: inbox messages go through the broker)
        self.relay_address = relay_address
        #: messages to this process's own inbox (the session relay), see set_direct_handler
        self._inbox = Inbox(self.host_id, self.log, relay_address)
        #: message class -> its handler, called as ``handler(host, message)``; each
        #: layer adds the messages it handles
        self._dispatch: dict[type[bus.BusMessage], Callable[[str, Any], None]] = {
            bus.Hello: self._on_hello,
            bus.Bye: self._on_bye,
        }

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
        self._inbox.close()
        self._close_connections()

    def health(self) -> BusHealth:
        """The bus connection's state, for health checks and monitoring."""
        direct_sent, direct_received = self._inbox.counts()
        counts = dict(self._counts)
        counts["dropped"] += self._inbox.dropped
        return BusHealth(
            host_id=self.host_id,
            connected=self._connected,
            listening=self._listener is not None and not self._closed,
            since=time.monotonic() - self._changed,
            reconnects=self._reconnects,
            last_error=self._last_error,
            nodes=tuple(self.nodes()),
            **counts,
            direct_sent=direct_sent,
            direct_received=direct_received,
        )

    @property
    def healthy(self) -> bool:
        """Whether the bus connection currently works."""
        return self._connected

    def nodes(self) -> list[str]:
        """Host ids of the other nodes heard from recently."""
        return self._nodes.nodes()

    def knows_host(self, host: str) -> bool:
        """Whether process ``host`` was heard from recently (its heartbeats; right after
        this node subscribed again, any host heard from before the loss).

        While this node's table settles (it just started, or came back from an
        outage: the other nodes' replies to its hello may still be on the way), a
        host it has not heard from is asked about on the broker (one round trip):
        a worker that just started must not take its older peers for gone.
        """
        if self._nodes.knows(host):
            return True
        return self._nodes.settling() and self.host_alive(host)

    def ready(self, timeout: float) -> bool:
        """Whether the bus works now; a node that has never subscribed yet (it is
        starting) waits up to ``timeout`` seconds for its first subscription.

        A broker outage later is not waited for: it answers False at once.
        """
        deadline = time.monotonic() + timeout
        while (
            not self._connected
            and not self._ever_subscribed
            and not self._closed
            and not self.write_only
            and time.monotonic() < deadline
        ):
            self.driver.sleep(min(_READY_POLL, max(0.0, deadline - time.monotonic())))
        return self._connected

    # ------------------------------------------------------------ publishing

    def publish(self, message: bus.BusMessage) -> None:
        """Publish a bus message, retrying for :attr:`publish_timeout` seconds.

        :raises BusError: when the broker stayed unreachable.
        :raises TypeError: when an argument cannot be sent (not JSON nor bytes).
        """
        data = bus.encode(bus.Envelope(self.host_id, message))
        self._retrying(message, lambda: self._publish_once(data))

    def publish_with(self, send: Callable[[str, Any], None], message: bus.BusMessage) -> None:
        """Publish ``message`` with ``send(host_id, message)`` instead of a plain
        publish (a recovery store's), with :meth:`publish`'s retries.

        :raises BusError: when the broker stayed unreachable.
        """
        self._retrying(message, lambda: send(self.host_id, message))

    def _retrying(self, message: bus.BusMessage, attempt: Callable[[], None]) -> None:
        deadline = time.monotonic() + self.publish_timeout
        delay = self.reconnect_delay[0]
        while True:
            try:
                attempt()
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

    def direct_channel(self, host: str) -> str:
        """The name of process ``host``'s inbox on the broker."""
        return f"{self.channel}.{host}"

    def publish_direct(self, host: str, data: bytes) -> bool:
        """Send ``data`` to process ``host``'s inbox: one attempt, no retries (the
        session relay answers its client at once instead). Over the direct link to
        ``host`` when there is one (:mod:`sio_wsgi.managers.direct`), else through
        the broker.

        :returns: False when the broker knows nobody listens there.
        :raises BusError: when the broker is unreachable.
        """
        if self._inbox.send(host, data):
            return True
        try:
            delivered = self._publish_direct_once(host, data)
        except self.retry_errors as exc:
            self._reset_publisher()
            # the connected state stays the listener's to set (as in publish()): set
            # to False here, nothing but a resubscription would set it back
            self._set_state(self._connected, exc)
            raise BusError(f"message bus unreachable: {exc}") from exc
        self._counts["published"] += 1
        return delivered

    def host_alive(self, host: str) -> bool:
        """Whether process ``host`` still listens on the bus (False when the broker
        cannot be asked)."""
        try:
            return self._host_alive(host)
        except self.retry_errors as exc:
            self._reset_publisher()
            self.log.debug("cannot ask whether %s is alive: %s", host, exc)
            return False

    def set_direct_handler(self, handler: Callable[[bytes], None] | None) -> None:
        """Call ``handler`` with each message of this process's inbox (they start
        with ``DIRECT_MESSAGE_PREFIX``): in the listener task for those that come
        through the broker, in a direct link's reading task for the others.

        The first handler set also opens this process's direct links (when
        ``relay_address`` is set) and announces them.
        """
        driver = None if self.write_only or self._closed else self.driver
        if self._inbox.set_handler(handler, driver) and self._connected:
            self._publish_quietly(self._hello())

    def set_link_lost_handler(self, handler: Callable[[str], None] | None) -> None:
        """Call ``handler(host)`` when the direct link to process ``host`` closes."""
        self._inbox.set_lost_handler(handler)

    def _hello(self, reply: bool = False) -> bus.Hello:
        """This node's heartbeat, with its direct links' address when it has them."""
        return self._inbox.hello(reply)

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
        again = self._ever_subscribed
        self._ever_subscribed = True
        self._delay = self.reconnect_delay[0]
        self._set_state(True, None)
        self._last_hello = time.monotonic()
        self._nodes.subscribed()
        self._publish_quietly(self._hello(reply=True))
        if again:
            self._resubscribed()

    def _resubscribed(self) -> None:
        """The subscription is back after a loss (the layers above catch up)."""

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
        self._publish_quietly(self._hello())
        with self._bus_lock:
            self._expire(now)
        for host in self._nodes.expire(now):
            self._inbox.forget(host)

    def _expire(self, now: float) -> None:
        """Drop what the layers above keep for too long (under the bus lock, at each heartbeat)."""

    def _receive(self, raw: bytes | str) -> None:
        """Decode and dispatch one bus message; bad ones are logged and dropped."""
        if isinstance(raw, bytes) and raw[:1] == DIRECT_MESSAGE_PREFIX:
            self._inbox.deliver(raw)
            return
        try:
            envelope = bus.decode(raw)
        except bus.BusMessageError as exc:
            self._counts["dropped"] += 1
            self.log.warning("dropped a bus message that does not parse: %s", exc)
            return
        if envelope.host == self.host_id and not _recorded(envelope.message):
            return  # its own message (a recorded emit excepted: delivered from here too)
        self._counts["received"] += 1
        # listening nodes announce themselves; emitters do not
        self._nodes.heard(envelope.host, isinstance(envelope.message, bus.Hello))
        try:
            self._dispatch[type(envelope.message)](envelope.host, envelope.message)
        except Exception:  # one bad message must not stop the listener
            self.log.exception("error handling a %s bus message", envelope.message.TYPE.value)

    # ------------------------------------------------------------ liveness messages

    def _on_hello(self, host: str, msg: bus.Hello) -> None:
        self._inbox.heard(host, msg)
        if msg.reply:
            self._publish_quietly(self._hello())

    def _on_bye(self, host: str, msg: bus.Bye) -> None:
        self._nodes.remove(host)
        self._inbox.forget(host)


def _recorded(message: bus.BusMessage) -> bool:
    """An emit a connection state recovery store recorded (every node delivers it)."""
    return isinstance(message, bus.Emit) and message.offset is not None
