"""The part of :class:`~sio_wsgi.server.Server`'s API that acts on the clients it holds.

Rooms (:meth:`RoomsAPI.enter_room`...), user sessions (:meth:`RoomsAPI.get_session`,
:meth:`RoomsAPI.session`...), the handshake environ and :meth:`RoomsAPI.disconnect`.
The changes may be called from any thread: under eventlet / gevent, a call from
a plain OS thread is handed over to the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sio_wsgi.clients import Client, Environ
from sio_wsgi.dispatch import Dispatcher
from sio_wsgi.manager import Manager
from sio_wsgi.namespace import ROOT_NAMESPACE
from sio_wsgi.runtime.base import Driver

__all__ = ["RoomsAPI"]


def _hop(driver: Driver, fn: Callable[..., object], *args: Any) -> bool:
    """Under eventlet/gevent, run ``fn(*args)`` in the event loop when called from a
    plain OS thread (whose green primitives would not work); True when handed over."""
    if not driver.in_foreign_thread():
        return False
    driver.call_soon_threadsafe(fn, *args)
    return True


class RoomsAPI:
    """Rooms, sessions, environ and disconnecting clients (a base of :class:`Server`).

    It uses the server's ``driver``, ``manager`` and dispatcher (``_dispatcher``).
    """

    driver: Driver
    manager: Manager
    _dispatcher: Dispatcher

    # -------------------------------------------------------------- rooms & sessions

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Add a client to a room."""
        if not _hop(self.driver, self.enter_room, sid, room, namespace):
            self.manager.enter_room(sid, namespace or ROOT_NAMESPACE, room)

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Remove a client from a room."""
        if not _hop(self.driver, self.leave_room, sid, room, namespace):
            self.manager.leave_room(sid, namespace or ROOT_NAMESPACE, room)

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        if not _hop(self.driver, self.close_room, room, namespace):
            self.manager.close_room(room, namespace or ROOT_NAMESPACE)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms a client is in (its own sid room included)."""
        return self.manager.get_rooms(sid, namespace or ROOT_NAMESPACE)

    def _local_client(self, sid: str, namespace: str) -> Client:
        client = self._dispatcher.client_of(sid, namespace)
        if client is None:
            raise KeyError(f"session of {sid} is disconnected")
        return client

    def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The user session of a client (a dict, kept until it disconnects).

        :raises KeyError: when the client is not connected.
        """
        ns = namespace or ROOT_NAMESPACE
        return self._local_client(sid, ns).session(ns)

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Replace the user session of a client.

        :raises KeyError: when the client is not connected.
        """
        ns = namespace or ROOT_NAMESPACE
        self._local_client(sid, ns).save_session(ns, session)
        recovery = self.manager.recovery
        if recovery is not None:
            recovery.changed(ns, sid)  # a shared recovery store keeps it

    @contextlib.contextmanager
    def session(self, sid: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Context manager giving the session dict and saving it on exit.

        Example::

            with sio.session(sid) as session:
                session["user"] = user
        """
        session = self.get_session(sid, namespace)
        yield session
        self.save_session(sid, session, namespace)

    def is_recovered(self, sid: str, namespace: str | None = None) -> bool:
        """Whether this connection of ``sid`` recovered a dropped session (connection
        state recovery; the Node server's ``socket.recovered``): the same sid, its
        rooms and session data back, and the packets it missed sent. Meant for the
        ``connect`` handler, which runs for a recovered connection too."""
        client = self._dispatcher.client_of(sid, namespace or ROOT_NAMESPACE)
        return client is not None and sid in client.recovered

    def get_environ(self, sid: str, namespace: str | None = None) -> Environ | None:
        """The WSGI environ of the client's handshake request, or ``None``."""
        client = self._dispatcher.client_of(sid, namespace or ROOT_NAMESPACE)
        return None if client is None else client.environ

    # -------------------------------------------------------------- disconnecting

    def disconnect(
        self, sid: str, namespace: str | None = None, ignore_queue: bool = False
    ) -> None:
        """Disconnect a client from a namespace (the disconnect handler runs with
        :attr:`reason.SERVER_DISCONNECT`).

        :param ignore_queue: skip the message queue of pub/sub managers.
        """
        if _hop(self.driver, self.disconnect, sid, namespace, ignore_queue):
            return
        ns = namespace or ROOT_NAMESPACE
        if not self._dispatcher.disconnect(sid, ns) and not ignore_queue:
            self.manager.remote_disconnect(sid, ns)

    def _bus_disconnect(self, sid: str, namespace: str) -> None:
        """Another node asked to disconnect one of our clients."""
        self.disconnect(sid, namespace, ignore_queue=True)
