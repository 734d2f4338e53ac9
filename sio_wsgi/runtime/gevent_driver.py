"""Driver on gevent greenlets (imported only when gevent is chosen)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
from gevent import monkey

from .green import GreenDriverBase, GreenWorkerPool

__all__ = ["GeventDriver"]


class _GreenletTask:
    def __init__(self, greenlet: gevent.Greenlet) -> None:
        self._greenlet = greenlet

    def join(self, timeout: float | None = None) -> None:
        self._greenlet.join(timeout)


def _readable(watcher: Any, pool: GreenWorkerPool, fn: Callable[[], None]) -> None:
    """A parked socket's read watcher fired (in the hub): stop it, run ``fn`` in a
    pooled greenlet at once.

    A module function, not a bound method: gevent's close throws into
    ``callback.__self__`` when there is one."""
    watcher.stop()
    pool.run_from_hub(fn, ())


class _GeventReader:
    """A gevent socket's own ``recv()``, a wait on its read watcher, and a
    one-shot callback on that watcher (parking)."""

    __slots__ = ("recv", "_sock", "_pool")

    def __init__(self, sock: Any, pool: GreenWorkerPool) -> None:
        self._sock = sock
        self._pool = pool
        self.recv: Callable[..., bytes] = sock.recv  # parks in the hub itself

    def wait(self) -> None:
        watcher = self._sock._read_event  # None once closed: the recv() that follows fails
        if watcher is not None:
            self._sock._wait(watcher)

    def park_now(self) -> bool:
        """Park at once (a parked connection costs next to nothing to wake)."""
        return True

    def keep_reading(self) -> None:
        """Nothing: :meth:`park_now` set nothing up."""

    def when_readable(self, fn: Callable[[], None]) -> bool:
        """Start the socket's own read watcher with a callback that stops it and
        runs ``fn`` in a pooled greenlet. Closing the socket cancels the watcher
        (gevent's close does)."""
        watcher = self._sock._read_event  # None once closed
        if watcher is None or watcher.active:
            return False
        watcher.start(_readable, watcher, self._pool, fn)
        return True

    def close(self) -> None:
        """Nothing to let go of: closing a gevent socket wakes its waiters."""


class GeventDriver(GreenDriverBase):
    """Tasks are greenlets of the hub running in the creating OS thread."""

    name = "gevent"
    can_park = True

    def __init__(self) -> None:
        super().__init__(
            monkey.get_original("_thread", "get_ident"),
            monkey.get_original("threading", "Event"),
            monkey.get_original("_thread", "allocate_lock"),
            "_sock",  # gevent's socket wraps a non-blocking OS socket
        )
        self._hub = gevent.get_hub()
        hub = self._hub
        self._pool = GreenWorkerPool(lambda: hub, hub.loop.run_callback, hub.switch)

    def spawn(self, fn: Callable[..., object], *args: object, **kwargs: object) -> _GreenletTask:
        return _GreenletTask(gevent.spawn(fn, *args, **kwargs))

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run a short job in a reused greenlet (see :class:`GreenWorkerPool`)."""
        self._pool.submit(fn, args)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def event(self) -> gevent.event.Event:
        return gevent.event.Event()

    def socket_reader(self, sock: Any) -> _GeventReader | None:
        # ``sock`` is a gevent socket (or not): its private _wait and _read_event are used
        if getattr(sock, "_wait", None) is None or getattr(sock, "_read_event", None) is None:
            return None  # not a gevent socket
        return _GeventReader(sock, self._pool)

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        if not self.in_foreign_thread():
            fn(*args)
            return
        self._hub.loop.run_callback_threadsafe(fn, *args)
