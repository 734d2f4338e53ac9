"""Driver on plain OS threads."""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

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


#: How long an idle WebSocket's reader thread waits for its client before the
#: connection parks (gunicorn's gthread worker): a busy connection keeps its
#: thread, an idle one gives it back.
PARK_AFTER = 0.1
#: a ``SO_RCVTIMEO`` of zero: no receive timeout
_NO_TIMEOUT = struct.pack("@ll", 0, 0)

_ONE_SHOT = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)


class _ReadinessWatcher:
    """One daemon thread waiting on an epoll set for the parked sockets, each
    armed once (``EPOLLONESHOT``); a readable one's callback goes to ``submit``.
    The thread and the epoll set start with the first socket armed."""

    def __init__(self, submit: Callable[[Callable[..., object], tuple[object, ...]], None]) -> None:
        self._submit = submit
        self._lock = threading.Lock()
        self._armed: dict[int, Callable[[], None]] = {}
        self._epoll: Any = None

    def arm(self, reader: _ThreadReader, fn: Callable[[], None]) -> bool:
        """Run ``fn`` once on a pooled thread when ``reader``'s fd is readable (or fails).

        :returns: False when the fd is armed already, the reader was closed, or the
            fd cannot be watched.
        """
        with self._lock:
            fd = reader.fd
            if reader.closed or fd in self._armed:
                return False
            epoll = self._epoll
            if epoll is None:
                epoll = self._epoll = select.epoll()
                threading.Thread(
                    target=self._run, args=(epoll,), name="sio_wsgi-parked", daemon=True
                ).start()
            try:
                try:  # armed before (fired, so disabled), unless the fd is new to the set
                    epoll.modify(fd, _ONE_SHOT)
                except FileNotFoundError:
                    epoll.register(fd, _ONE_SHOT)
            except OSError:
                return False
            self._armed[fd] = fn
        return True

    def forget(self, reader: _ThreadReader) -> None:
        """Stop watching ``reader``'s fd for good (before it is closed): its callback
        never runs, and it cannot be armed again.

        Only the first call acts. The fd number is reused as soon as the socket is
        closed, so a later call (the reader's own, after another thread closed the
        connection) must not touch the new connection's registration.
        """
        with self._lock:
            if reader.closed:
                return
            reader.closed = True
            fd = reader.fd
            if self._armed.pop(fd, None) is None and self._epoll is None:
                return
            with contextlib.suppress(OSError, ValueError):  # not in the set: nothing to do
                self._epoll.unregister(fd)

    def _run(self, epoll: Any) -> None:
        while True:
            try:
                events = epoll.poll()
            except InterruptedError:
                continue
            for fd, _mask in events:
                with self._lock:
                    fn = self._armed.pop(fd, None)
                if fn is not None:
                    self._submit(fn, ())


class _ThreadReader:
    """A reader thread's blocking ``recv()``, which gives up after
    :data:`PARK_AFTER` without bytes once :meth:`park_now` was asked (the socket's
    ``SO_RCVTIMEO``: no system call more per read), and the parking itself
    (:class:`_ReadinessWatcher`)."""

    __slots__ = ("recv", "fd", "closed", "_sock", "_watcher", "_timeout_set")

    def __init__(self, sock: Any, watcher: _ReadinessWatcher) -> None:
        self.recv: Callable[..., bytes] = sock.recv  # waits in the kernel
        self._sock = sock
        #: the socket's fd when the reader was made (the readiness watcher's key)
        self.fd: int = sock.fileno()
        if self.fd < 0:
            raise ValueError("the socket is closed")
        #: set by the first :meth:`close` (under the watcher's lock)
        self.closed = False
        self._watcher = watcher
        self._timeout_set = False

    def wait(self) -> None:
        """Nothing: the blocking ``recv()`` that follows waits."""

    def park_now(self) -> bool:
        """Not at once: set the receive timeout (the first time), after which
        ``recv()`` raises ``BlockingIOError`` and the connection parks."""
        if not self._timeout_set:
            self._timeout_set = True
            seconds = int(PARK_AFTER)
            micros = int((PARK_AFTER - seconds) * 1_000_000)
            with contextlib.suppress(OSError):
                self._sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", seconds, micros)
                )
        return False

    def keep_reading(self) -> None:
        """Clear the receive timeout: ``recv()`` waits as long as it takes again."""
        if self._timeout_set:
            self._timeout_set = False
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)

    def when_readable(self, fn: Callable[[], None]) -> bool:
        return self._watcher.arm(self, fn)

    def close(self) -> None:
        self._watcher.forget(self)


class ThreadingDriver:
    """Every task is a daemon OS thread; primitives come from :mod:`threading`."""

    name = "threading"
    #: parked sockets wait in one epoll set (Linux)
    can_park = hasattr(select, "epoll")

    def __init__(self) -> None:
        self._pool = _WorkerPool()
        self._watcher = _ReadinessWatcher(self._pool.submit)

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

    def socket_reader(self, sock: Any) -> _ThreadReader | None:
        """A reader that can park (a blocking ``recv()`` waits in the kernel meanwhile)."""
        if not self.can_park:
            return None
        try:
            return _ThreadReader(sock, self._watcher)
        except (AttributeError, OSError, ValueError):  # not a socket, or closed already
            return None

    def raw_socket(self, sock: _S) -> _S:
        return sock

    def in_foreign_thread(self) -> bool:
        return False
