"""Driver on plain OS threads."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .base import Lock

__all__ = ["ThreadingDriver"]

logger = logging.getLogger(__name__)

_S = TypeVar("_S")

Job = tuple[Callable[..., object], tuple[object, ...]]


class _Thread:
    def __init__(
        self, fn: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        self._thread = threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class _WorkerPool:
    """Reusable daemon threads for short jobs: no thread start per job.

    A job goes to an idle worker when there is one, else a new worker starts.
    Workers idle for ``linger`` seconds exit, so the pool shrinks back by itself.
    """

    def __init__(self, linger: float = 30.0) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a job that nobody has reserved
        self._linger = linger

    def submit(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        with self._lock:
            reserved = self._idle > 0
            if reserved:
                self._idle -= 1
        self._jobs.put((fn, args))
        if not reserved:
            threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                fn, args = self._jobs.get(timeout=self._linger)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue  # a job was reserved for us and is on its way
            try:
                fn(*args)
            except Exception:
                logger.exception("pooled job %r failed", fn)
            with self._lock:
                self._idle += 1


class ThreadingDriver:
    """Every task is a daemon OS thread; primitives come from :mod:`threading`."""

    name = "threading"
    can_park = False

    def __init__(self) -> None:
        self._pool = _WorkerPool()

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run a short job on a pooled thread (no handle to join)."""
        self._pool.submit(fn, args)

    def spawn(self, fn: Callable[..., object], *args: object, **kwargs: object) -> _Thread:
        return _Thread(fn, args, kwargs)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def event(self) -> threading.Event:
        return threading.Event()

    def thread_event(self) -> threading.Event:
        """An OS-level event (the same as :meth:`event` here)."""
        return threading.Event()

    def lock(self) -> Lock:
        return threading.Lock()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        fn(*args)

    def socket_reader(self, sock: object) -> None:
        return None  # a blocking recv() waits in the kernel

    def raw_socket(self, sock: _S) -> _S:
        return sock

    def in_foreign_thread(self) -> bool:
        return False
