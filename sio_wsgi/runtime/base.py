"""The Driver protocol: the only way the upper layers spawn, sleep, wait and lock.

One implementation per concurrency library lives beside this module
(``threading_driver``, ``eventlet_driver``, ``gevent_driver``); the server code
is written once against :class:`Driver`. This module holds only the protocols
(no I/O), so every layer may name them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Driver", "Event", "Lock", "SocketReader", "Task", "Timer"]


class Task(Protocol):
    """A spawned unit of work."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for the task to finish (at most ``timeout`` seconds)."""


class Timer(Protocol):
    """A call scheduled for later (see :class:`~sio_wsgi.runtime.scheduler.Scheduler`)."""

    @property
    def when(self) -> float:
        """The monotonic time it is due at."""

    def cancel(self) -> None:
        """Do not run it (a no-op once it ran)."""


class Event(Protocol):
    """A flag tasks can wait on; :meth:`set` is safe from any OS thread."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout``; return whether the flag is set."""


class Lock(Protocol):
    """A mutual-exclusion lock; sio_wsgi only ever uses it as ``with lock:``.

    (An OS lock in every async mode; see :meth:`Driver.lock` for the rule that
    makes that safe under eventlet and gevent.)
    """

    def __enter__(self) -> Any: ...

    def __exit__(self, *args: Any) -> Any: ...


class SocketReader(Protocol):
    """Reads one socket for its one reader task (green drivers): the reader parks
    in the library's hub while no bytes are there."""

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Up to ``size`` bytes, parking until there are some; ``b""`` at the end.

        :raises OSError: the socket failed or was closed (:meth:`close` included).
        """

    def wait(self) -> None:
        """Park until the socket is readable (a ``recv()`` may still find nothing).

        :raises OSError: :meth:`close` was called.
        """

    def park_now(self) -> bool:
        """Whether the connection parks as soon as its socket is drained (green
        readers). False (OS threads): :meth:`recv` raises ``BlockingIOError`` once
        the client has sent nothing for a while (a receive timeout, set on the first
        call), and the connection parks then; a busy connection keeps its thread."""

    def keep_reading(self) -> None:
        """The connection parks no more: undo what :meth:`park_now` set up (OS
        threads: the receive timeout, so an idle reader stops waking up)."""

    def when_readable(self, fn: Callable[[], None]) -> bool:
        """Run ``fn()`` once in a pooled task when the socket becomes readable (or
        fails), with no task waiting meanwhile: an idle connection then holds no
        green thread and no stack. The caller's task goes on at once.

        :meth:`close` cancels it: ``fn`` then never runs, and whoever closes the
        connection ends it.

        :returns: False when it cannot be armed (closed, or already armed).
        """

    def close(self) -> None:
        """Let go of what the reader holds in the hub; a parked reader wakes up.

        Call it before the socket is closed (its fd may be reused at once); any
        task or OS thread may, any number of times.
        """


class Driver(Protocol):
    """Concurrency primitives of one library (threading, eventlet or gevent)."""

    name: str
    #: whether :meth:`SocketReader.when_readable` works: an idle WebSocket can
    #: then park, its request ending while the connection goes on
    can_park: bool

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Run ``fn(*args, **kwargs)`` concurrently."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a short job concurrently, without a handle (pooled where that is cheaper)."""

    def sleep(self, seconds: float) -> None:
        """Pause the calling task."""

    def event(self) -> Event:
        """Return a new, cleared :class:`Event`."""

    def thread_event(self) -> Event:
        """Return an OS-level event, for a plain OS thread to wait on."""

    def lock(self) -> Lock:
        """Return a new :class:`Lock`.

        Hold it only for a few operations that never block or yield (no I/O, no
        sleep, no waiting): under eventlet and gevent it is an OS lock, and a
        greenlet that yielded while holding it would stall its whole thread.
        """

    def monotonic(self) -> float:
        """Return a monotonic clock reading in seconds."""

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` soon in the driver's own context; callable from any OS thread."""

    def socket_reader(self, sock: Any) -> SocketReader | None:
        """A :class:`SocketReader` for the one task that reads ``sock``, or None.

        Its :meth:`~SocketReader.wait` lets a reader that expects no data yet park
        first, instead of a ``recv()`` that fails with EAGAIN before the green
        library waits anyway (OS threads: nothing to do, a blocking ``recv()`` waits
        in the kernel); its :meth:`~SocketReader.when_readable` parks a connection.
        None when the library's socket does not offer it (or, for OS threads, where
        there is no epoll).
        """

    def raw_socket(self, sock: Any) -> Any:
        """The OS socket under ``sock``: a ``send(data, MSG_DONTWAIT)`` on it never
        blocks nor yields to a hub (green libraries wrap the real socket)."""

    def in_foreign_thread(self) -> bool:
        """True when called from an OS thread the driver's loop does not run in."""
