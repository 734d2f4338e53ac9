"""The part of :class:`~sio_wsgi.server.Server`'s API that reaches the other server nodes.

With a pub/sub manager (:mod:`sio_wsgi.managers`) several server processes share
their clients; these methods ask the other nodes (:meth:`ClusterAPI.fetch_sids`,
:meth:`ClusterAPI.fetch_rooms`), send them events (:meth:`ClusterAPI.server_side_emit`)
and run the events they send (the ``on_server_event`` handlers). With the
single-process manager they see this node only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sio_wsgi.acks import as_args
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import ROOT_NAMESPACE

__all__ = ["ClusterAPI", "DEFAULT_FETCH_TIMEOUT"]

DEFAULT_FETCH_TIMEOUT = 1.0
"""Seconds :meth:`Server.fetch_sids` and :meth:`Server.fetch_rooms` wait for other nodes."""


class ClusterAPI:
    """Cluster-wide queries and server-to-server events (a base of :class:`Server`).

    It uses the server's ``manager`` and ``logger``, and the handlers recorded by
    :meth:`~sio_wsgi.registration.RegistrationAPI.on_server_event`.
    """

    manager: Manager
    logger: logging.Logger
    _server_events: dict[tuple[str, str], Callable[..., object]]

    def fetch_sids(
        self,
        room: str | None = None,
        namespace: str | None = None,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
    ) -> list[str]:
        """Sids in a room on every node (a cluster-wide query with pub/sub managers).

        :param room: the room; every client of the namespace when ``None``.
        :param timeout: seconds to wait for the other nodes' answers.
        :returns: the sids (those of nodes that did not answer in time are missing).

        Example::

            players = sio.fetch_sids("match-42", timeout=0.5)
        """
        return self.manager.fetch_participants(namespace or ROOT_NAMESPACE, room, timeout)

    def fetch_rooms(
        self, sid: str, namespace: str | None = None, timeout: float = DEFAULT_FETCH_TIMEOUT
    ) -> list[str]:
        """The rooms of a client connected to any node (its sid room included).

        :param timeout: seconds to wait for the other nodes' answers.
        :returns: the rooms; empty when no node knows ``sid`` in time.
        """
        return self.manager.fetch_rooms(sid, namespace or ROOT_NAMESPACE, timeout)

    def server_side_emit(self, event: str, data: Any = None, namespace: str | None = None) -> None:
        """Send an event to the *other* server nodes (not to clients, not to this node).

        They run the handler registered with :meth:`on_server_event`. With the
        single-process manager there is nobody to receive it.

        :param data: the arguments, as in :meth:`emit` (a tuple is several).

        Example::

            sio.server_side_emit("reload-config", {"version": 7})
        """
        self.manager.server_side_emit(event, as_args(data), namespace or ROOT_NAMESPACE)

    def _bus_server_event(self, event: str, args: Sequence[Any], namespace: str) -> None:
        """Another node sent a server-to-server event."""
        handler = self._server_events.get((namespace, event))
        if handler is None:
            self.logger.debug("no server event handler for %s [%s]", event, namespace)
            return
        try:
            handler(*args)
        except Exception:
            self.logger.exception("error in a socket.io handler")
