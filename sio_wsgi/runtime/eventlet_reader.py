"""A socket's reader under eventlet, with one hub listener kept across its waits.

eventlet's blocking ``recv()`` adds a hub listener for every wait and removes it
afterwards; with the epoll hub that is two ``epoll_ctl`` system calls (and the
trampoline's bookkeeping) for every message a busy WebSocket receives.
:class:`EventletReader` adds its listener on the first wait and keeps it: the fd
stays registered (level-triggered), and the hub switches into the parked reader
when it is readable. :meth:`EventletReader.when_readable` uses the same listener
to park a connection with no green thread at all: the hub runs a callback that
resumes the reading in a pooled green thread. Imported only when eventlet is chosen.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import greenlet

from .green import GreenWorkerPool

__all__ = ["EventletReader"]


class EventletReader:
    """Reads one non-blocking OS socket for its one reader green thread.

    The listener goes away on :meth:`close`, or when the fd turns readable while
    the reader is not parked here (it is busy elsewhere: the hub must not poll a
    readable fd in a loop meanwhile; the next wait adds the listener again), or
    when the hub finds the fd reused by a new socket (eventlet's ``notify_opened``:
    the parked reader gets the hub's ``IOClosed``, an ``OSError``).

    :param hub: the eventlet hub of this OS thread.
    :param raw: the OS socket (non-blocking) under the green one.
    :param call_soon: runs a call in the hub's thread (inline when already there):
        :meth:`close` may come from another OS thread.
    :param pool: runs a parked connection's callback (:meth:`when_readable`).
    """

    __slots__ = (
        "_hub",
        "_fd",
        "_recv",
        "_listener",
        "_waiter",
        "_on_ready",
        "_closed",
        "_call_soon",
        "_pool",
    )

    def __init__(
        self, hub: Any, raw: Any, call_soon: Callable[..., None], pool: GreenWorkerPool
    ) -> None:
        self._hub = hub
        self._fd: int = raw.fileno()
        self._recv: Callable[[int, int], bytes] = raw.recv
        self._call_soon = call_soon
        self._pool = pool
        self._listener: Any = None
        self._waiter: greenlet.greenlet | None = None  # the reader, while parked here
        self._on_ready: Callable[[], None] | None = None  # parked without a reader
        self._closed = False

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Up to ``size`` bytes, parking in the hub until there are some."""
        while True:
            try:
                return self._recv(size, flags)
            except BlockingIOError:
                self.wait()

    def wait(self) -> None:
        """Park until the fd is readable.

        :raises OSError: closed (before or while parked).
        """
        if self._closed:
            raise OSError(errno.EBADF, "the socket's reader was closed")
        hub = self._hub
        self._listen()
        self._waiter = greenlet.getcurrent()
        try:
            hub.switch()
        finally:
            self._waiter = None
        if self._closed:
            raise OSError(errno.EBADF, "the socket's reader was closed")

    def park_now(self) -> bool:
        """Park at once (a parked connection costs next to nothing to wake)."""
        return True

    def keep_reading(self) -> None:
        """Nothing: :meth:`park_now` set nothing up."""

    def when_readable(self, fn: Callable[[], None]) -> bool:
        """Run ``fn()`` once in a pooled green thread when the fd is readable; no
        green thread waits meanwhile. Call it from the hub's OS thread; :meth:`close`
        cancels it.

        :returns: False when closed or already armed.
        """
        if self._closed or self._on_ready is not None or self._waiter is not None:
            return False
        self._listen()
        self._on_ready = fn
        return True

    def _listen(self) -> None:
        if self._listener is None:
            hub = self._hub
            listener = hub.add(hub.READ, self._fd, self._readable, self._obsolete, None)
            # the listener serves the connection, not the green thread that added it
            # (which may end while the connection parks): eventlet keeps that one
            # only to skip the throwback once it is dead, so give it the hub's own
            listener.greenlet = hub.greenlet
            self._listener = listener

    def _readable(self, fd: int) -> None:
        """The hub's callback (in the hub greenlet)."""
        waiter = self._waiter
        if waiter is not None:
            waiter.switch()
            return
        ready, self._on_ready = self._on_ready, None
        if ready is not None:  # parked: read on in a pooled green thread, now
            self._pool.run_from_hub(ready, ())
        else:  # the reader is busy elsewhere: stop watching until it waits again
            self._unlisten()

    def _obsolete(self, exc: BaseException) -> None:
        """The hub's throwback: the fd was reused, the hub dropped the listener."""
        self._listener = None
        self._closed = True
        waiter = self._waiter
        ready, self._on_ready = self._on_ready, None
        if waiter is not None:
            waiter.throw(exc)
        elif ready is not None:  # parked: the reading resumes and finds the socket gone
            self._pool.submit(ready, ())

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and self._hub.listeners[self._hub.READ].get(self._fd) is listener:
            self._hub.remove(listener)  # unregisters the fd unless a writer waits on it

    def close(self) -> None:
        """Remove the listener (before the fd is closed) and wake a parked reader."""
        if not self._closed:
            self._call_soon(self._close)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_ready = None  # a parked connection: whoever closes it ends it
        self._unlisten()
        waiter = self._waiter
        if waiter is not None:
            self._hub.schedule_call_global(0, self._wake, waiter)

    def _wake(self, waiter: greenlet.greenlet) -> None:
        parked = self._waiter
        if parked is not None and parked is waiter:  # still in wait(): it raises OSError now
            parked.switch()
