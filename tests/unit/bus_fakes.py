"""An in-memory message bus joining several :class:`~sio_wsgi.server.Server` s in one process.

``InMemoryBus`` plays the broker: every :class:`BusManager` attached to it gets
every published message, in publish order, on its own listener task. Setting
``bus.down = True`` makes publishing raise and listeners lose their
subscription, as a broker restart would; ``bus.down = False`` lets them
reconnect. Messages published while a manager was unsubscribed are lost, as
with Redis pub/sub.

Used with ``tests/unit/sio_fakes.py``'s ``FakeServer`` (fake engine, real
Socket.IO layer), the cross-node emit, room, ack and query logic is tested
without Redis or RabbitMQ.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from sio_wsgi.managers.pubsub import PubSubManager

__all__ = ["InMemoryBus", "BusManager", "BrokerDown"]


class BrokerDown(ConnectionError):
    """Raised by the fake broker while it is down."""


class InMemoryBus:
    """A fan-out broker in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, queue.Queue[bytes]] = {}
        self.down = False
        self.published: list[bytes] = []

    def publish(self, data: bytes) -> None:
        """Deliver ``data`` to every subscriber.

        :param data: the message.
        :raises BrokerDown: while the broker is down.
        """
        if self.down:
            raise BrokerDown("fake broker is down")
        with self._lock:
            self.published.append(data)
            targets = list(self._subscribers.values())
        for inbox in targets:
            inbox.put(data)

    def inject(self, data: bytes) -> None:
        """Publish raw bytes as a foreign (maybe broken) publisher would.

        :param data: anything.
        """
        self.publish(data)

    def subscribe(self, key: str) -> queue.Queue[bytes]:
        """Open a subscription.

        :param key: the subscriber's id.
        :returns: its inbox.
        :raises BrokerDown: while the broker is down.
        """
        if self.down:
            raise BrokerDown("fake broker is down")
        inbox: queue.Queue[bytes] = queue.Queue()
        with self._lock:
            self._subscribers[key] = inbox
        return inbox

    def unsubscribe(self, key: str) -> None:
        """Close a subscription.

        :param key: the subscriber's id.
        """
        with self._lock:
            self._subscribers.pop(key, None)


class BusManager(PubSubManager):
    """A :class:`PubSubManager` on an :class:`InMemoryBus`.

    :param bus: the shared bus.
    :param kwargs: :class:`PubSubManager` options.
    """

    name = "memory"
    retry_errors = (BrokerDown,)

    def __init__(self, bus: InMemoryBus, **kwargs: Any) -> None:
        kwargs.setdefault("poll_interval", 0.05)
        kwargs.setdefault("reconnect_delay", (0.02, 0.2))
        kwargs.setdefault("publish_timeout", 0.3)
        super().__init__(**kwargs)
        self.bus = bus

    def _publish_once(self, data: bytes) -> None:
        self.bus.publish(data)

    def _listen(self) -> Iterator[bytes | None]:
        inbox = self.bus.subscribe(self.host_id)
        try:
            self._on_subscribed()
            while not self.closing:
                if self.bus.down:
                    raise BrokerDown("fake broker went down")
                try:
                    yield inbox.get(timeout=self.poll_interval)
                except queue.Empty:
                    yield None
        finally:
            self.bus.unsubscribe(self.host_id)
