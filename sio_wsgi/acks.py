"""Acknowledgements: the :meth:`Server.call` waiters, and acknowledgement arguments.

A :class:`Waiter` is one ``call()`` waiting for its client's acknowledgement.
:class:`Waiters` holds them by sid, so that a client leaving fails its waiters
at once (:class:`~sio_wsgi.exceptions.DisconnectedError`) instead of letting
them run into their timeout. Acknowledgements themselves are routed by the
manager's callbacks (:meth:`~sio_wsgi.manager.Manager.trigger_callback`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from sio_wsgi.exceptions import DisconnectedError, TimeoutError
from sio_wsgi.runtime.base import Event, Lock

__all__ = ["Waiter", "Waiters", "as_args", "ack_result"]


def as_args(data: Any) -> list[Any]:
    """Packet arguments of emitted data or of a handler's return value: a tuple
    is several arguments, ``None`` none, anything else one."""
    if data is None:
        return []
    if isinstance(data, tuple):
        return list(data)
    return [data]


def ack_result(args: Sequence[Any]) -> Any:
    """What :meth:`Server.call` returns for the client's ack arguments: ``None``
    for none, the value for one, a tuple for several."""
    if not args:
        return None
    return args[0] if len(args) == 1 else tuple(args)


class Waiter:
    """One :meth:`Server.call` waiting for its acknowledgement.

    :param event: set when the ack arrives or the client leaves.
    """

    __slots__ = ("event", "result", "error")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.result: tuple[Any, ...] = ()
        self.error: Exception | None = None

    def resolve(self, *args: Any) -> None:
        """The ack callback: keep the client's arguments and wake the caller."""
        self.result = args
        self.event.set()

    def fail(self, error: Exception) -> None:
        """Wake the caller with ``error``."""
        self.error = error
        self.event.set()

    def outcome(self, timeout: float, what: str) -> Any:
        """Wait for the ack; return it as :func:`ack_result` does.

        :param what: names the call in the timeout message.
        :raises TimeoutError: when nothing arrives within ``timeout`` seconds.
        :raises DisconnectedError: when the client left meanwhile.
        """
        if not self.event.wait(timeout):
            raise TimeoutError(f"no acknowledgement for {what} within {timeout}s")
        if self.error is not None:
            raise self.error
        return ack_result(self.result)


class Waiters:
    """The :class:`Waiter` s of every sid, failed together when the sid leaves.

    :param lock: guards the table (never held while waking a waiter).
    """

    def __init__(self, lock: Lock) -> None:
        self._lock = lock
        self._by_sid: dict[str, set[Waiter]] = {}

    @contextlib.contextmanager
    def watching(self, sid: str, waiter: Waiter) -> Iterator[Waiter]:
        """Register ``waiter`` for ``sid`` for the duration of the block."""
        with self._lock:
            self._by_sid.setdefault(sid, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._by_sid.get(sid)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._by_sid[sid]

    def fail(self, sid: str) -> None:
        """``sid`` left: every call waiting on it raises :class:`DisconnectedError`."""
        with self._lock:
            waiters = self._by_sid.pop(sid, None)
        if waiters:
            for waiter in waiters:
                waiter.fail(DisconnectedError(f"{sid} disconnected"))
