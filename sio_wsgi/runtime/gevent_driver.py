"""Driver on gevent greenlets (imported only when gevent is chosen)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent import monkey

__all__ = ["GeventDriver"]

_real_get_ident = monkey.get_original("_thread", "get_ident")
_RealEvent = monkey.get_original("threading", "Event")


class _GreenletTask:
    def __init__(self, greenlet: gevent.Greenlet) -> None:
        self._greenlet = greenlet

    def join(self, timeout: float | None = None) -> None:
        self._greenlet.join(timeout)


class _Lock:
    """A green lock with the :class:`threading.Lock` interface."""

    def __init__(self) -> None:
        self._sem = gevent.lock.Semaphore(1)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._sem.acquire(blocking, None if timeout < 0 else timeout))

    def release(self) -> None:
        self._sem.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()


class GeventDriver:
    """Tasks are greenlets of the hub running in the creating OS thread."""

    name = "gevent"

    def __init__(self) -> None:
        self._loop_thread = _real_get_ident()
        self._hub = gevent.get_hub()

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> _GreenletTask:
        return _GreenletTask(gevent.spawn(fn, *args, **kwargs))

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a short job in a new green thread (no handle to join)."""
        gevent.spawn(fn, *args)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def event(self) -> gevent.event.Event:
        return gevent.event.Event()

    def thread_event(self) -> Any:
        """An OS-level event, for a foreign OS thread to wait on."""
        return _RealEvent()

    def lock(self) -> _Lock:
        return _Lock()

    def monotonic(self) -> float:
        return time.monotonic()

    def try_send(self, sock: Any, data: bytes) -> int:
        raw = getattr(sock, "_sock", sock)  # gevent's socket wraps a non-blocking one
        try:
            return int(raw.send(data, socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return 0

    def in_foreign_thread(self) -> bool:
        return bool(_real_get_ident() != self._loop_thread)

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        if not self.in_foreign_thread():
            fn(*args)
            return
        self._hub.loop.run_callback_threadsafe(fn, *args)
