"""Membership: who is connected to which namespace and in which rooms (the base of
:class:`~sio_wsgi.manager.Manager`).

A room is a set of sids of one namespace; ``None`` is the namespace itself (every
client of it) and each sid is a room of its own. Each entry keeps the Engine.IO
session behind the sid, so the recipients of an emit come out as ``(sid, eio_sid)``
pairs without a second lookup, and a reverse index gives a sid's rooms. With
connection state recovery on, each membership also keeps the recovery log's
position when the sid joined (a replay must not give a client what was sent to a
room before it was in it).

Thread safe: every change and read is under one lock, never held while delivering.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from sio_wsgi.observers import Observers
from sio_wsgi.recovery import RecoveryStore, Room

__all__ = ["Membership", "as_set"]

Rooms = dict[str | None, dict[str, str]]


def as_set(value: str | Iterable[str] | None) -> set[str]:
    """A sid or room, several, or none, as a set."""
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return set(value)


class Membership:
    """Namespaces, rooms and their members."""

    def __init__(self) -> None:
        self._lock: Any = threading.RLock()
        self._rooms: dict[str, Rooms] = {}
        # reverse index: (namespace, sid) -> the rooms (None included) the sid is in, each
        # with the recovery log's sequence number when it joined (0 without recovery)
        self._memberships: dict[tuple[str, str], dict[Room, int]] = {}
        self._eio_to_sid: dict[tuple[str, str], str] = {}
        #: connection state recovery's store (set by the server when it is on)
        self.recovery: RecoveryStore | None = None
        #: instrumentation (the Admin UI): told of room changes and events sent
        self.observers = Observers()

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
        """Remove a client from ``namespace`` and its rooms.

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
        skip = as_set(skip_sid)
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
