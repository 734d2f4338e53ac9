"""BusQueries: what the nodes of a cluster ask of each other over the bus.

- queries (:meth:`BusQueries.fetch_participants`, :meth:`BusQueries.fetch_rooms`)
  are published to every node; the asker waits, with a timeout, for the
  answers of every live node (:meth:`~sio_wsgi.managers.link.BusLink.nodes`).
  Each node answers from its own clients.
- :meth:`BusQueries.server_side_emit`: events between servers, run by the
  server's ``on_server_event`` handlers of the other nodes.

The base of :class:`~sio_wsgi.managers.pubsub.PubSubManager`, on top of
:class:`~sio_wsgi.managers.link.BusLink`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

from sio_wsgi.managers import messages as bus
from sio_wsgi.managers.link import BusLink
from sio_wsgi.protocol.serializers import Payload
from sio_wsgi.runtime.base import Event

__all__ = ["BusQueries"]


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


class BusQueries(BusLink):
    """Cluster queries and server-to-server events.

    The parameters are :class:`~sio_wsgi.managers.pubsub.PubSubManager`'s
    (``callback_ttl`` excepted).
    """

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
        super().__init__(
            channel,
            write_only,
            logger,
            publish_timeout=publish_timeout,
            reconnect_delay=reconnect_delay,
            heartbeat_interval=heartbeat_interval,
            poll_interval=poll_interval,
            relay_address=relay_address,
        )
        self._queries: dict[str, _Query] = {}
        self._dispatch[bus.Query] = self._on_query
        self._dispatch[bus.Reply] = self._on_reply
        self._dispatch[bus.ServerEvent] = self._on_server_event

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

    # ------------------------------------------------------------ server-to-server events

    def server_side_emit(self, event: str, args: Sequence[Payload], namespace: str) -> None:
        """Send an event to the handlers of the other nodes."""
        self.publish(bus.ServerEvent(event, list(args), namespace))

    def _on_server_event(self, host: str, msg: bus.ServerEvent) -> None:
        if self._server_event_hook is not None:
            self.driver.spawn(self._server_event_hook, msg.event, msg.args, msg.namespace)
