"""Observers: what the server tells an instrumenting component (the Admin UI's
:mod:`sio_wsgi.admin`) about its clients.

The core calls :class:`Observers` at a few marked call sites (each commented
``# observers:``); on the hot paths (every packet, every recipient) the site tests
:attr:`Observers.active` first, so without an observer it costs one attribute read. An
observer subclasses :class:`Observer` and overrides what it needs. Observers
run on the thread that made the change and must not block; an exception in one
is logged and swallowed, so instrumentation never breaks the server.

The public hooks (:meth:`Server.use`, :meth:`Server.on_any`, :meth:`Server.on_outgoing`,
in :mod:`sio_wsgi.hooks`) are for applications; observers are the server's own
instrumentation, with the engine-level notifications those do not have.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["Observer", "Observers"]

logger = logging.getLogger(__name__)


class Observer:
    """The notifications an observer may override (each does nothing here)."""

    def engine_connected(self, eio_sid: str) -> None:
        """A new Engine.IO connection."""

    def engine_disconnected(self, eio_sid: str, reason: str) -> None:
        """An Engine.IO connection closed."""

    def packet_in(self, size: int) -> None:
        """An Engine.IO message of ``size`` bytes (characters for text) arrived."""

    def packet_out(self, size: int) -> None:
        """Socket.IO messages weighing ``size`` were handed to one client's transport."""

    def connected(self, sid: str, namespace: str, eio_sid: str) -> None:
        """``sid`` connected to ``namespace`` (its connect handler accepted it)."""

    def disconnected(self, sid: str, namespace: str, reason: str) -> None:
        """``sid`` left ``namespace`` (its disconnect handler ran)."""

    def room_joined(self, namespace: str, room: str, sid: str) -> None:
        """``sid`` joined ``room`` (a change made on this node)."""

    def room_left(self, namespace: str, room: str, sid: str) -> None:
        """``sid`` left ``room`` (a change made on this node)."""

    def event_received(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        """A local client sent ``event`` (before its handler runs; with or without one)."""

    def event_sent(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        """``event`` was handed to the local client ``sid``."""


class Observers:
    """The registered observers, called in registration order."""

    def __init__(self) -> None:
        self._observers: tuple[Observer, ...] = ()
        #: whether any observer is registered (hot call sites test it first)
        self.active = False

    def __bool__(self) -> bool:
        return self.active

    def add(self, observer: Observer) -> None:
        """Register an observer."""
        self._observers = (*self._observers, observer)
        self.active = True

    def remove(self, observer: Observer) -> None:
        """Unregister an observer (no error when it is not registered)."""
        self._observers = tuple(o for o in self._observers if o is not observer)
        self.active = bool(self._observers)

    def _call(self, name: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                logger.exception("observer %r failed in %s", observer, name)

    def engine_connected(self, eio_sid: str) -> None:
        """See :meth:`Observer.engine_connected`."""
        if self._observers:
            self._call("engine_connected", eio_sid)

    def engine_disconnected(self, eio_sid: str, reason: str) -> None:
        """See :meth:`Observer.engine_disconnected`."""
        if self._observers:
            self._call("engine_disconnected", eio_sid, reason)

    def packet_in(self, size: int) -> None:
        """See :meth:`Observer.packet_in`."""
        if self._observers:
            self._call("packet_in", size)

    def packet_out(self, size: int) -> None:
        """See :meth:`Observer.packet_out`."""
        if self._observers:
            self._call("packet_out", size)

    def connected(self, sid: str, namespace: str, eio_sid: str) -> None:
        """See :meth:`Observer.connected`."""
        if self._observers:
            self._call("connected", sid, namespace, eio_sid)

    def disconnected(self, sid: str, namespace: str, reason: str) -> None:
        """See :meth:`Observer.disconnected`."""
        if self._observers:
            self._call("disconnected", sid, namespace, reason)

    def room_joined(self, namespace: str, room: str, sid: str) -> None:
        """See :meth:`Observer.room_joined`."""
        if self._observers:
            self._call("room_joined", namespace, room, sid)

    def room_left(self, namespace: str, room: str, sid: str) -> None:
        """See :meth:`Observer.room_left`."""
        if self._observers:
            self._call("room_left", namespace, room, sid)

    def event_received(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        """See :meth:`Observer.event_received`."""
        if self._observers:
            self._call("event_received", sid, namespace, event, args)

    def event_sent(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        """See :meth:`Observer.event_sent`."""
        if self._observers:
            self._call("event_sent", sid, namespace, event, args)
