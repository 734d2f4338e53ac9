"""One timer task per server: ``call_later`` without a task per timer."""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable

from .base import Driver

__all__ = ["Scheduler", "TimerHandle"]

logger = logging.getLogger(__name__)


def _noop(*args: object) -> None:
    return None


class TimerHandle:
    """A pending call; :meth:`cancel` stops it from running."""

    __slots__ = ("when", "fn", "args", "cancelled")

    def __init__(self, when: float, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this call (a no-op once it ran). The callable and its arguments are
        dropped at once, so a cancelled timer does not keep a session alive in the heap."""
        self.cancelled = True
        self.fn = _noop
        self.args = ()


class Scheduler:
    """Runs callbacks at given times from a single task started on first use.

    Callbacks run in the scheduler task, one after the other, and must not block.
    """

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._lock = driver.lock()
        self._wake = driver.event()
        self._started = False
        self._stopped = False

    def call_later(self, delay: float, fn: Callable[..., object], *args: object) -> TimerHandle:
        """Run ``fn(*args)`` after ``delay`` seconds."""
        handle = TimerHandle(self._driver.monotonic() + delay, fn, args)
        with self._lock:
            first = not self._heap or handle.when < self._heap[0][0]
            heapq.heappush(self._heap, (handle.when, next(self._counter), handle))
            start = not self._started and not self._stopped
            self._started = True
        if start:
            self._driver.spawn(self._run)
        elif first:
            self._wake.set()
        return handle

    def stop(self) -> None:
        """Stop the task and drop every pending call."""
        with self._lock:
            self._stopped = True
            self._heap.clear()
        self._wake.set()

    def _next_due(self) -> tuple[list[TimerHandle], float | None]:
        now = self._driver.monotonic()
        due: list[TimerHandle] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
            wait = self._heap[0][0] - now if self._heap else None
        return due, wait

    def _run(self) -> None:
        while not self._stopped:
            due, wait = self._next_due()
            for handle in due:
                if handle.cancelled:
                    continue
                try:
                    handle.fn(*handle.args)
                except Exception:
                    logger.exception("timer callback %r failed", handle.fn)
            if due:
                continue
            self._wake.wait(wait if wait is None else max(wait, 0.0))
            self._wake.clear()
