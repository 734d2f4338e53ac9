"""Driver on eventlet green threads (imported only when eventlet is chosen)."""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable
from typing import Any

import eventlet
import eventlet.hubs
from eventlet import patcher
from eventlet.green import threading as green_threading
from eventlet.greenio import GreenSocket

from .base import Event
from .eventlet_reader import EventletReader
from .green import GreenDriverBase, GreenWorkerPool, Job

__all__ = ["EventletDriver"]

logger = logging.getLogger(__name__)
_real_thread = patcher.original("_thread")
_real_threading = patcher.original("threading")


class _GreenTask:
    def __init__(self, gt: eventlet.greenthread.GreenThread) -> None:
        self._gt = gt

    def join(self, timeout: float | None = None) -> None:
        with eventlet.Timeout(timeout, False):
            try:
                self._gt.wait()
            except Exception:  # noqa: BLE001 - the task logged its own error
                pass


class EventletDriver(GreenDriverBase):
    """Tasks are green threads of the eventlet hub running in the creating OS thread."""

    name = "eventlet"
    can_park = True

    def __init__(self) -> None:
        super().__init__(
            _real_thread.get_ident,
            _real_threading.Event,
            _real_thread.allocate_lock,
            "fd",  # GreenSocket wraps a non-blocking OS socket
        )
        self._pending: collections.deque[Job] = collections.deque()
        self._pipe: tuple[int, int] | None = None
        self._pipe_lock = _real_thread.allocate_lock()
        hub = eventlet.hubs.get_hub()
        self._hub = hub
        #: hub callbacks waiting for the next batch (see :meth:`_schedule`)
        self._soon: collections.deque[tuple[Callable[[Any], object], object]] = collections.deque()
        self._armed = False  # a timer will make the batch's calls
        self._pool = GreenWorkerPool(lambda: hub.greenlet, self._schedule, hub.switch)
        self.start()

    def _schedule(self, fn: Callable[[Any], object], arg: object) -> None:
        """Make the hub call ``fn(arg)`` soon (in the loop's OS thread).

        eventlet's hub has timers only: one timer per call costs a ``Timer``
        object and a heap push and pop. The calls are batched instead: the first
        one of a batch arms a single zero-delay timer, which makes them all."""
        self._soon.append((fn, arg))
        if not self._armed:
            self._armed = True
            self._hub.schedule_call_global(0, self._run_soon)

    def _run_soon(self) -> None:
        """In the hub: make the calls of the batch. Those scheduled meanwhile (by
        the workers this switches into) wait for the next batch, after the hub
        has looked at its sockets, as each of them waited for its own timer."""
        soon = self._soon
        try:
            for _ in range(len(soon)):
                fn, arg = soon.popleft()
                try:
                    fn(arg)
                except Exception:  # one failed call must not drop the rest of the batch
                    logger.exception("a scheduled call failed")
        finally:
            if soon:
                self._hub.schedule_call_global(0, self._run_soon)
            else:
                self._armed = False

    def spawn(self, fn: Callable[..., object], *args: object, **kwargs: object) -> _GreenTask:
        return _GreenTask(eventlet.spawn(fn, *args, **kwargs))

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run a short job in a reused green thread (see :class:`GreenWorkerPool`)."""
        self._pool.submit(fn, args)

    def sleep(self, seconds: float) -> None:
        eventlet.sleep(seconds)

    def event(self) -> Event:
        event: Event = green_threading.Event()
        return event

    def socket_reader(self, sock: object) -> EventletReader | None:
        if not isinstance(sock, GreenSocket):
            return None
        hub = eventlet.hubs.get_hub()
        return EventletReader(hub, self.raw_socket(sock), self.call_soon_threadsafe, self._pool)

    def raw_socket(self, sock: object) -> Any:
        """The OS socket under a green one, however many times it is wrapped.

        (A socket accepted by a listener created before monkey-patching is a
        ``GreenSocket`` around a ``GreenSocket`` around the OS socket: the patched
        ``socket.socket.accept`` builds a green one, which eventlet wraps again.)
        """
        while isinstance(sock, GreenSocket) and sock.fd is not None:
            sock = sock.fd
        return sock

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        if not self.in_foreign_thread():
            fn(*args)
            return
        self._pending.append((fn, args))
        os.write(self._wakeup_fd(), b"x")

    def _wakeup_fd(self) -> int:
        with self._pipe_lock:
            if self._pipe is None:  # pragma: no cover - start() runs in __init__
                raise RuntimeError("the eventlet driver was not started")
            return self._pipe[1]

    def start(self) -> None:
        """Create the wake-up pipe and spawn its pump in the loop thread (idempotent)."""
        with self._pipe_lock:
            if self._pipe is not None:
                return
            rfd, wfd = os.pipe()
            os.set_blocking(rfd, False)
            self._pipe = (rfd, wfd)
        eventlet.spawn(self._pump, rfd)

    def _pump(self, rfd: int) -> None:
        while True:
            eventlet.hubs.trampoline(rfd, read=True)
            try:
                os.read(rfd, 4096)
            except BlockingIOError:
                pass
            while self._pending:
                fn, args = self._pending.popleft()
                try:
                    fn(*args)
                except Exception:  # a callback must not kill the pump
                    logger.exception("callback from a foreign thread failed")
