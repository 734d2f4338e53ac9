"""KombuManager: server nodes joined through RabbitMQ (AMQP) or another kombu transport.

Usage::

    mgr = sio_wsgi.KombuManager("amqp://guest:guest@127.0.0.1:5672//")
    sio = sio_wsgi.Server(client_manager=mgr)

Topology: one fanout exchange named after ``channel``; each listening node
binds its own exclusive, auto-deleted queue ``<channel>.<host id>`` to it, so
every node gets every message and a node's queue disappears with its
connection. Bodies are the JSON bus messages, sent as-is (kombu's serializers,
pickle included, are never involved: received bodies are read raw).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any

from sio_wsgi.exceptions import ConfigError
from sio_wsgi.managers.pubsub import PubSubManager

__all__ = ["KombuManager"]

_CONTENT_TYPE = "application/json"
#: AMQP reply code of a passive declare of an exclusive queue another connection owns
_RESOURCE_LOCKED = 405


def _kombu() -> types.ModuleType:
    try:
        import kombu
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ConfigError("KombuManager needs kombu: pip install kombu") from exc
    return kombu


class KombuManager(PubSubManager):
    """A :class:`~sio_wsgi.managers.pubsub.PubSubManager` on kombu (RabbitMQ by default).

    :param url: the broker URL, e.g. ``amqp://guest:guest@127.0.0.1:5672//``.
    :param channel: the exchange shared by the nodes.
    :param write_only: only publish (external emitters): no listener.
    :param logger: a ``logging.Logger`` for bus events (faults are always logged).
    :param connection_options: extra ``kombu.Connection`` arguments
        (``heartbeat``, ``ssl``, ``transport_options``, ...).
    :param exchange_options: extra ``kombu.Exchange`` arguments.
    :param queue_options: extra ``kombu.Queue`` arguments.
    :param producer_options: extra ``Producer.publish`` arguments.
    :param kwargs: :class:`~sio_wsgi.managers.pubsub.PubSubManager` options.
    """

    name = "kombu"

    def __init__(
        self,
        url: str = "amqp://guest:guest@localhost:5672//",
        channel: str = "socketio",
        write_only: bool = False,
        logger: logging.Logger | bool | None = None,
        connection_options: Mapping[str, object] | None = None,
        exchange_options: Mapping[str, object] | None = None,
        queue_options: Mapping[str, object] | None = None,
        producer_options: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        self._kombu = _kombu()
        super().__init__(channel, write_only, logger, **kwargs)
        self.url = url
        self.connection_options: dict[str, Any] = {"connect_timeout": 5}
        if url.startswith(("amqp", "pyamqp")):  # name the connections in rabbitmqctl's lists
            name = f"sio_wsgi {channel} {self.host_id}"
            self.connection_options["transport_options"] = {
                "client_properties": {"connection_name": name}
            }
        self.connection_options.update(connection_options or {})
        self.exchange_options = {"type": "fanout", "durable": True, **(exchange_options or {})}
        self.queue_options = {
            "durable": False,
            "auto_delete": True,
            "exclusive": True,
            **(queue_options or {}),
        }
        self.producer_options = producer_options or {}
        probe = self._connection()
        self.retry_errors = (*probe.connection_errors, *probe.channel_errors, OSError)
        # kombu objects stay Any: kombu's annotations are partial, and strict mypy
        # refuses calls to its unannotated methods (channel, release, drain_events...)
        self._producer: Any = None  # kombu.Producer
        self._producer_conn: Any = None  # kombu.Connection
        self._direct_producer: Any = None  # kombu.Producer on the default exchange
        self._alive_conn: Any = None  # kombu.Connection asking whether nodes live
        self._alive_lock = threading.Lock()
        self._channel_errors: tuple[type[BaseException], ...] = tuple(probe.channel_errors)
        self._publish_lock = threading.Lock()

    def _connection(self) -> Any:  # kombu.Connection
        return self._kombu.Connection(self.url, **self.connection_options)

    def _exchange(self) -> Any:  # kombu.Exchange
        return self._kombu.Exchange(self.channel, **self.exchange_options)

    # ------------------------------------------------------------ publishing

    def _publish_once(self, data: bytes) -> None:
        """Publish one message to the fanout exchange."""
        with self._publish_lock:
            self._ensure_producer().publish(
                data,
                content_type=_CONTENT_TYPE,
                content_encoding="utf-8",
                **self.producer_options,
            )

    def _publish_direct_once(self, host: str, data: bytes) -> bool:
        """Publish one message to process ``host``'s queue (the default exchange
        routes it by the queue's name); unroutable ones are dropped by the broker."""
        with self._publish_lock:
            self._ensure_producer()
            # a producer of its own: publish(exchange="") would fall back to the fanout one
            if self._direct_producer is None:
                default_exchange = self._kombu.Exchange("")
                self._direct_producer = self._kombu.Producer(
                    self._producer_conn.channel(), exchange=default_exchange
                )
            self._direct_producer.publish(
                data,
                routing_key=self.direct_channel(host),
                content_type="application/octet-stream",
                content_encoding="binary",
            )
        return True

    def _host_alive(self, host: str) -> bool:
        """Does process ``host``'s queue exist (a passive declare, on a connection
        of its own)? It is exclusive, so the broker deletes it as soon as that
        process's connection drops."""
        with self._alive_lock:
            if self._alive_conn is None:
                conn = self._connection()
                conn.ensure_connection(max_retries=1)
                self._alive_conn = conn
            channel = self._alive_conn.channel()
            try:
                channel.queue_declare(queue=self.direct_channel(host), passive=True)
                return True
            except self._channel_errors as exc:
                # 405 RESOURCE_LOCKED: it exists, exclusive to its owner's connection;
                # 404 NOT_FOUND (or another refusal): gone
                return getattr(exc, "code", None) == _RESOURCE_LOCKED
            finally:
                with contextlib.suppress(Exception):
                    channel.close()

    def _ensure_producer(self) -> Any:  # kombu.Producer
        """The publishing producer, opened on first use (call under the publish lock)."""
        if self._producer is None:
            conn = self._connection()
            conn.ensure_connection(max_retries=1)
            self._producer_conn = conn
            self._producer = self._kombu.Producer(conn.channel(), exchange=self._exchange())
        return self._producer

    def _reset_publisher(self) -> None:
        """Forget the publishing connection; the next publish opens a new one."""
        with self._publish_lock:
            conn, self._producer_conn, self._producer = self._producer_conn, None, None
            self._direct_producer = None
        with self._alive_lock:
            alive, self._alive_conn = self._alive_conn, None
        if alive is not None:
            with contextlib.suppress(*self.retry_errors):
                alive.release()
        if conn is not None:
            with contextlib.suppress(*self.retry_errors):
                conn.release()

    # ------------------------------------------------------------ listening

    def _listen(self) -> Iterator[bytes | None]:
        """Declare this node's queue, consume it and yield message bodies.

        :returns: bodies, or ``None`` every :attr:`poll_interval` when idle.
        """
        conn = self._connection()
        inbox: collections.deque[bytes] = collections.deque()
        try:
            conn.ensure_connection(max_retries=1)
            queue = self._kombu.Queue(
                f"{self.channel}.{self.host_id}", self._exchange(), **self.queue_options
            )
            consumer = self._kombu.Consumer(
                conn.channel(),
                queues=[queue],
                no_ack=True,
                on_message=lambda message: inbox.append(message.body),
            )
            consumer.consume()
            self._on_subscribed()
            while not self.closing:
                try:
                    conn.drain_events(timeout=self.poll_interval)
                except TimeoutError:
                    conn.heartbeat_check()
                    yield None
                while inbox:
                    yield inbox.popleft()
        finally:
            with contextlib.suppress(*self.retry_errors):
                conn.release()

    def _close_connections(self) -> None:
        """Close the publishing connection."""
        self._reset_publisher()
