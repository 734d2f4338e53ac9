"""A gunicorn worker on eventlet, for gunicorn releases without one (26 and later).

Usage::

    gunicorn -k sio_wsgi.gunicorn.EventletWorker -w 1 --worker-connections 1000 app:app

The worker is gunicorn's own :class:`~gunicorn.workers.base_async.AsyncWorker`
(HTTP parsing, keep-alive, ``environ['gunicorn.socket']``, access log) with an
eventlet accept loop:

- eventlet is imported and monkey-patched in the worker process, in
  :meth:`EventletWorker.init_process`, before the application is loaded; the
  master (arbiter) only checks that eventlet is installed.
- one green thread per connection (reused for the next one once it ends), at most
  ``--worker-connections`` of them;
  when the pool is full the accept loop waits for a free slot.
- ``SIGTERM``: stop accepting, let requests finish for ``--graceful-timeout``
  seconds, then shut the remaining client sockets down (WebSockets and long
  polls end as if the client had left) and exit. ``SIGINT``/``SIGQUIT``: the
  same without the grace period.
- ``sendfile`` is turned off: eventlet's green sockets cannot do it.
- do not combine with ``--preload``: the app would be imported, unpatched, in the
  master (a warning says so).

Only one worker per CPU is useful; concurrency comes from green threads.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.util
import logging
import os
import socket
import ssl
import time
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from gunicorn import sock as gunicorn_sock
from gunicorn.workers.base_async import ALREADY_HANDLED, AsyncWorker

if TYPE_CHECKING:  # pragma: no cover - eventlet and gunicorn are untyped: documentation
    from eventlet import Timeout
    from eventlet.greenio import GreenSocket
    from gunicorn.http.message import Request

__all__ = ["EventletWorker"]

logger = logging.getLogger(__name__)

#: accept() errors after which the loop just tries again.
_RETRY_ACCEPT = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EPROTO})
#: How often the main loop wakes to heartbeat and check for shutdown.
_TICK = 0.5
#: How long to wait for handlers after their sockets were shut down.
_SHUTDOWN_GRACE = 1.0


def _eventlet() -> ModuleType:
    """Import eventlet (only ever in the worker process)."""
    return importlib.import_module("eventlet")


class _ConnectionPool:
    """At most ``size`` connections served at once, each in a reused green thread.

    eventlet's ``GreenPool`` starts a new green thread per connection: a greenlet,
    its first switch and its own data stack (an ``mmap`` and a ``munmap``). A
    finished connection's green thread parks instead and takes the next one
    (:class:`~sio_wsgi.runtime.green.GreenWorkerPool`). The semaphore keeps
    ``--worker-connections``: the accept loop waits for a free slot.

    :param size: the most connections served at once.
    """

    def __init__(self, size: int) -> None:
        eventlet = _eventlet()
        from sio_wsgi.runtime.green import GreenWorkerPool

        hub = eventlet.hubs.get_hub()
        self._slots = eventlet.semaphore.Semaphore(size)
        soon = functools.partial(hub.schedule_call_global, 0)  # soon(fn, arg): a hub timer
        self._pool = GreenWorkerPool(lambda: hub.greenlet, soon, hub.switch)
        self._current = eventlet.getcurrent
        #: the green threads serving a connection now (killed at the end of shutdown)
        self.coroutines_running: set[Any] = set()

    def running(self) -> int:
        """How many connections are being served."""
        return len(self.coroutines_running)

    def spawn_n(self, fn: Any, *args: object) -> None:
        """Serve a connection: ``fn(*args)`` in a green thread, once a slot is free."""
        self._slots.acquire()
        self._pool.submit(self._serve, (fn, args))

    def _serve(self, fn: Any, args: tuple[object, ...]) -> None:
        me = self._current()
        running = self.coroutines_running
        running.add(me)
        try:
            fn(*args)
        finally:
            running.discard(me)
            self._slots.release()


class EventletWorker(AsyncWorker):  # type: ignore[misc]
    """gunicorn ``AsyncWorker`` running on eventlet green threads.

    :param args: passed to :class:`gunicorn.workers.base.Worker`.
    :param kwargs: passed to :class:`gunicorn.workers.base.Worker`.
    """

    sockets: list[GreenSocket]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._clients: set[GreenSocket] = set()  # TLS wrappers included
        self._quick_exit = False

    # ------------------------------------------------------------ setup

    @classmethod
    def setup(cls) -> None:
        """Called in the master: check eventlet is installed, without importing it.

        :raises RuntimeError: if eventlet is missing.
        """
        if importlib.util.find_spec("eventlet") is None:
            raise RuntimeError(
                "sio_wsgi.gunicorn.EventletWorker needs eventlet: pip install 'sio_wsgi[eventlet]'"
            )

    def patch(self) -> None:
        """Monkey-patch the process, give this thread a fresh hub, green the listeners."""
        eventlet = _eventlet()
        eventlet.monkey_patch()
        eventlet.hubs.use_hub()
        from eventlet.greenio import GreenSocket

        self.sockets = [GreenSocket(getattr(s, "sock", s)) for s in self.sockets]

    def init_process(self) -> None:
        """Patch first, then let gunicorn load the app and call :meth:`run`."""
        self.patch()
        self.cfg.set("sendfile", False)
        if self.cfg.preload_app:
            self.log.warning(
                "--preload imported the app before eventlet patched this process: its locks "
                "and threads are not green, and Server(async_mode=None) picked 'threading'. "
                "Drop --preload with this worker."
            )
        super().init_process()

    def timeout_ctx(self) -> Timeout:
        """A silent eventlet timeout around waiting for the next keep-alive request.

        :returns: an ``eventlet.Timeout`` that ends the ``with`` block quietly.
        """
        return _eventlet().Timeout(self.cfg.keepalive or None, False)

    # ------------------------------------------------------------ requests

    def is_already_handled(self, respiter: object) -> bool:
        """End the connection when the app took the socket over.

        Honours gunicorn's ``ALREADY_HANDLED`` and eventlet.wsgi's
        ``WSGI_LOCAL.already_handled`` flag.

        :param respiter: what the application returned.
        :returns: False (the request goes on normally).
        :raises StopIteration: if the application handled the socket itself.
        """
        local = self._wsgi_local()
        flagged = bool(getattr(local, "already_handled", False))
        if respiter is ALREADY_HANDLED or flagged:
            if local is not None:
                local.already_handled = False
            raise StopIteration()
        return False

    @staticmethod
    def _wsgi_local() -> Any:
        import sys

        return getattr(sys.modules.get("eventlet.wsgi"), "WSGI_LOCAL", None)

    def handle(self, listener: GreenSocket, client: GreenSocket, addr: object) -> None:
        """Serve one connection (TLS-wrapped first if configured)."""
        raw = client
        self._clients.add(raw)
        try:
            if self.cfg.is_ssl:
                client = gunicorn_sock.ssl_wrap_socket(client, self.cfg)
                self._clients.add(client)
            super().handle(listener, client, addr)
        except (ssl.SSLError, OSError) as exc:
            self.log.debug("TLS setup failed for %s: %s", addr, exc)
            with contextlib.suppress(OSError):
                client.close()
        finally:
            self._clients.discard(client)
            self._clients.discard(raw)  # the TLS wrapper and the socket it wraps

    def handle_request(
        self, listener_name: object, req: Request, sock: GreenSocket, addr: object
    ) -> bool:
        """Run one request; a killed green thread just ends its connection.

        :returns: True to keep the connection alive.
        :raises StopIteration: to close the connection.
        """
        local = self._wsgi_local()
        if local is not None:
            local.already_handled = False
        greenlet_exit = _eventlet().greenthread.greenlet.GreenletExit
        try:
            return bool(super().handle_request(listener_name, req, sock, addr))
        except greenlet_exit:
            raise StopIteration() from None

    # ------------------------------------------------------------ signals

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT / SIGQUIT: stop now (no grace period), from the main loop."""
        self._quick_exit = True
        self.alive = False

    # ------------------------------------------------------------ main loop

    def _accept_loop(self, listener: GreenSocket, pool: _ConnectionPool) -> None:
        while self.alive:
            try:
                client, addr = listener.accept()
            except OSError as exc:
                if exc.errno in _RETRY_ACCEPT:
                    continue
                if not self.alive or exc.errno in (errno.EBADF, errno.EINVAL):
                    return
                raise
            client.setblocking(True)
            pool.spawn_n(self.handle, listener, client, addr)

    def _parent_changed(self) -> bool:
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            return True
        return False

    def run(self) -> None:
        """Accept connections until told to stop, then shut down gracefully."""
        eventlet = _eventlet()
        pool = _ConnectionPool(self.worker_connections)
        acceptors = [eventlet.spawn(self._accept_loop, s, pool) for s in self.sockets]
        while self.alive:
            self.notify()
            if self._parent_changed():
                self.alive = False
                break
            eventlet.sleep(_TICK)
        for acceptor in acceptors:
            acceptor.kill()
        for listener in self.sockets:
            with contextlib.suppress(OSError):
                listener.close()
        if self._quick_exit:
            self.cfg.worker_int(self)
        else:
            self._drain(pool, self.cfg.graceful_timeout)
        self._shutdown_clients()
        self._drain(pool, _SHUTDOWN_GRACE)
        self._kill_remaining(pool)

    def _drain(self, pool: _ConnectionPool, seconds: float) -> None:
        """Wait (heartbeating) for running connections to end, at most ``seconds``."""
        eventlet = _eventlet()
        deadline = time.monotonic() + seconds
        while pool.running() and time.monotonic() < deadline:
            self.notify()
            eventlet.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _shutdown_clients(self) -> None:
        """Shut every open client socket down: blocked reads return EOF."""
        if self._clients:
            self.log.info("Closing %d open connection(s) (pid:%s)", len(self._clients), self.pid)
        for client in list(self._clients):
            with contextlib.suppress(OSError, ValueError):
                client.shutdown(socket.SHUT_RDWR)

    def _kill_remaining(self, pool: _ConnectionPool) -> None:
        eventlet = _eventlet()
        remaining = list(pool.coroutines_running)
        if remaining:
            self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
        for green in remaining:
            eventlet.greenthread.kill(green)
