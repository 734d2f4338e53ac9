"""BrokerClient: what a message broker's client library must do for a client manager.

:class:`~sio_wsgi.managers.link.BusLink` (and so every ``PubSubManager``) talks to
its broker only through these methods; ``RedisManager`` and ``KombuManager``
implement them, and a manager for another broker implements them too:

- :meth:`BrokerClient._publish_once` and :meth:`BrokerClient._listen` (required):
  one message to every node, and the subscription;
- :meth:`BrokerClient._publish_direct_once` (for the session relay): one message
  to one process's inbox;
- :meth:`BrokerClient._host_alive`, :meth:`BrokerClient._reset_publisher`,
  :meth:`BrokerClient._close_connections` (optional).

Failures are exceptions of :attr:`BrokerClient.retry_errors`: the link retries,
reconnects and reports them; it never sees the library's own types otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["BrokerClient"]


class BrokerClient:
    """The broker side of a bus link (subclasses implement it)."""

    #: exceptions of the broker client that mean "retry" (subclasses extend it)
    retry_errors: tuple[type[BaseException], ...] = (ConnectionError, OSError)
    #: seconds between the ``None`` yields of an idle :meth:`_listen`
    poll_interval: float

    def nodes(self) -> list[str]:
        """Host ids of the other nodes heard from recently (the link's)."""
        raise NotImplementedError

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

    def _publish_direct_once(self, host: str, data: bytes) -> bool:
        """Send one message to the inbox of process ``host`` (subclasses implement it).

        :returns: False when the broker knows nobody listens there.
        :raises Exception: one of :attr:`retry_errors` when the broker is unreachable.
        """
        raise NotImplementedError

    def _host_alive(self, host: str) -> bool:
        """Ask the broker whether process ``host`` listens (subclasses may do better
        than the heartbeats)."""
        return host in self.nodes()

    def _reset_publisher(self) -> None:
        """Drop the publishing connection after a failure (it is reopened lazily)."""

    def _close_connections(self) -> None:
        """Close every broker connection (called once, at shutdown)."""
