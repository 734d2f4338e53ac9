"""What the eventlet and gevent drivers share.

Of the green libraries only ``greenlet``, which both build on, is imported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import greenlet

from .base import Event, Lock

__all__ = ["GreenDriverBase", "GreenWorkerPool"]

logger = logging.getLogger(__name__)

Job = tuple[Callable[..., object], tuple[object, ...]]
"""``(fn, args)``: a call to run in a worker."""

#: Idle workers kept for reuse; more than this many finishing at once just end.
MAX_IDLE_WORKERS = 256


class GreenWorkerPool:
    """Runs short jobs in reused greenlets.

    Creating a greenlet per job (``spawn_raw`` / ``spawn_n``) costs about 10 µs,
    most of it the new greenlet's first switch; handing a job to a parked worker
    costs one hub callback and one switch (about 2 µs). A worker parks itself by
    switching to the hub after its job; :meth:`submit` asks the hub to switch
    back into it with the next job. Only the hub's OS thread may submit.

    :param hub_greenlet: returns the hub greenlet (the parent of every worker).
    :param schedule: ``schedule(fn, arg)`` makes the hub call ``fn(arg)`` soon.
    :param park: the library's ``hub.switch``: leaves the calling greenlet to the
        hub and returns what the hub later switches back in with.
    """

    def __init__(
        self,
        hub_greenlet: Callable[[], greenlet.greenlet],
        schedule: Callable[[Callable[..., object], object], object],
        park: Callable[[], Job],
    ) -> None:
        self._hub_greenlet = hub_greenlet
        self._schedule = schedule
        self._park = park
        self._idle: list[greenlet.greenlet] = []

    def submit(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        """Run ``fn(*args)`` soon in a worker greenlet."""
        if self._idle:
            self._schedule(self._idle.pop().switch, (fn, args))
            return
        worker = greenlet.greenlet(self._work, parent=self._hub_greenlet())
        # a new greenlet's first arguments stay referenced for as long as it lives
        # (greenlet keeps them on its C stack): hand the first job over in a box
        # that the worker empties, so the job can be freed once done
        self._schedule(worker.switch, [(fn, args)])

    def run_from_hub(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        """Run ``fn(*args)`` in a worker now, switching to it directly: call it only
        in the hub greenlet itself (a watcher's callback), which the worker switches
        back to when it parks or waits. Saves :meth:`submit`'s hub callback."""
        if self._idle:
            self._idle.pop().switch((fn, args))
            return
        greenlet.greenlet(self._work, parent=self._hub_greenlet()).switch([(fn, args)])

    def _work(self, box: list[Job]) -> None:
        me = greenlet.getcurrent()
        job = box.pop()
        while True:
            fn, args = job
            try:
                fn(*args)
            except Exception:
                logger.exception("a background job failed")
            del fn, args, job  # hold nothing while parked
            if len(self._idle) >= MAX_IDLE_WORKERS:
                return
            self._idle.append(me)
            job = self._park()


class GreenDriverBase:
    """Common part of the green-thread drivers.

    :param get_ident: the *unpatched* ``_thread.get_ident`` (OS thread identity).
    :param real_event: the unpatched ``threading.Event`` class.
    :param real_lock: the *unpatched* ``_thread.allocate_lock``.
    :param raw_attr: the attribute under which the library's socket keeps the
        non-blocking OS socket (``fd`` for eventlet, ``_sock`` for gevent).
    """

    name = "green"

    def __init__(
        self,
        get_ident: Callable[[], int],
        real_event: Callable[[], Event],
        real_lock: Callable[[], Lock],
        raw_attr: str,
    ) -> None:
        self._get_ident = get_ident
        self._loop_thread = get_ident()
        self._real_event = real_event
        self._real_lock = real_lock
        self._raw_attr = raw_attr

    def lock(self) -> Lock:
        """An OS lock (unpatched ``_thread.allocate_lock``), not a green one.

        Every critical section of sio_wsgi is a few dict / list operations that
        never block or yield to the hub, so a greenlet can never find such a lock
        held by another greenlet of its own thread: it is always free there, and
        a foreign OS thread holds it for microseconds at most. It costs a tenth
        of a green semaphore (no hub bookkeeping) on every packet.
        """
        return self._real_lock()

    def thread_event(self) -> Event:
        """An OS-level event, for a foreign OS thread to wait on."""
        return self._real_event()

    def monotonic(self) -> float:
        return time.monotonic()

    def in_foreign_thread(self) -> bool:
        return self._get_ident() != self._loop_thread

    def raw_socket(self, sock: object) -> Any:
        """The OS socket under a green socket (``sock`` itself for any other object)."""
        return getattr(sock, self._raw_attr, sock)
