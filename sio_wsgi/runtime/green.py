"""What the eventlet and gevent drivers share (no library is imported here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .base import nonblocking_send

__all__ = ["GreenDriverBase", "SemaphoreLock"]


class SemaphoreLock:
    """A green semaphore with the :class:`threading.Lock` interface."""

    def __init__(self, semaphore: Any) -> None:
        self._sem = semaphore

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._sem.acquire(blocking, None if timeout < 0 else timeout))

    def release(self) -> None:
        self._sem.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()


class GreenDriverBase:
    """Common part of the green-thread drivers.

    :param get_ident: the *unpatched* ``_thread.get_ident`` (OS thread identity).
    :param real_event: the unpatched ``threading.Event`` class.
    :param semaphore: the library's green semaphore class.
    :param raw_attr: the attribute under which the library's socket keeps the
        non-blocking OS socket (``fd`` for eventlet, ``_sock`` for gevent).
    """

    name = "green"

    def __init__(
        self,
        get_ident: Callable[[], int],
        real_event: Callable[[], Any],
        semaphore: Callable[[int], Any],
        raw_attr: str,
    ) -> None:
        self._get_ident = get_ident
        self._loop_thread = get_ident()
        self._real_event = real_event
        self._semaphore = semaphore
        self._raw_attr = raw_attr

    def lock(self) -> SemaphoreLock:
        """A green lock."""
        return SemaphoreLock(self._semaphore(1))

    def thread_event(self) -> Any:
        """An OS-level event, for a foreign OS thread to wait on."""
        return self._real_event()

    def monotonic(self) -> float:
        return time.monotonic()

    def in_foreign_thread(self) -> bool:
        return self._get_ident() != self._loop_thread

    def try_send(self, sock: Any, data: bytes) -> int:
        return nonblocking_send(getattr(sock, self._raw_attr, sock), data)
