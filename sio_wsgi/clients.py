"""Per-client state of the Socket.IO layer, and the queue that starts a client's
handlers in arrival order.

A :class:`Client` is one Engine.IO connection: the namespaces it joined (and
their sids), what is held back until a namespace's CONNECT reply went out, the
user sessions, a binary packet being assembled, and its serial queue. Its
``lock`` guards the fields the transport reader and the handler tasks share.

:class:`SerialQueue` decides *when* a client's tasks run: they start in the
order they were submitted, one after the other; an event handler still running
:data:`HANDOFF_AFTER` seconds after it started no longer holds back the tasks
behind it (they go on in a new drain while it finishes), unless the queue is
strictly serial. How a task is started is not its business: it calls the ``run``
function it was given (the engine's ``dispatch`` in a server).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.protocol.sio import AttachmentAssembler
from sio_wsgi.runtime.base import Lock

__all__ = ["Client", "Environ", "Run", "SerialQueue", "Timer", "HANDOFF_AFTER"]

#: an event handler running this long (seconds) stops holding back its client's next tasks
HANDOFF_AFTER = 0.02

Environ = dict[str, Any]
"""A WSGI environ."""

Task = tuple[Callable[..., object], tuple[Any, ...], int, bool]
"""A queued call: the function, its arguments, the received bytes it stands for, and
whether a later task may start while it still runs (an event handler)."""


class Timer(Protocol):
    """A scheduled call that can be cancelled."""

    def cancel(self) -> None: ...


class CallLater(Protocol):
    """``call_later(delay, fn, *args) -> Timer``: run ``fn(*args)`` in ``delay`` seconds."""

    def __call__(self, delay: float, fn: Callable[..., object], /, *args: Any) -> Timer: ...


class Run(Protocol):
    """``run(eio_sid, fn, *args)``: run ``fn(*args)`` soon, for that client.

    In a server this is the engine's ``dispatch``: a pooled task, or, in
    threading mode, inline on the client's WebSocket reader (which hands the
    reading to a new thread when ``fn`` blocks).
    """

    def __call__(self, eio_sid: str, fn: Callable[..., object], /, *args: Any) -> None: ...


class Client:
    """State of one Engine.IO connection, guarded by ``lock``.

    :param eio_sid: the Engine.IO session id.
    :param environ: the WSGI environ of the handshake request.
    :param lock: guards the fields shared by the reader and the handler tasks.
    """

    __slots__ = (
        "eio_sid",
        "environ",
        "lock",
        "namespaces",
        "pending",
        "sessions",
        "assembler",
        "tasks",
        "draining",
        "drainer",
        "busy_since",
        "rx_unqueued",
        "rx_queued",
        "ever_connected",
        "closed",
        "timer",
        "pids",
        "recovered",
        "missed",
    )

    def __init__(self, eio_sid: str, environ: Environ, lock: Lock) -> None:
        self.eio_sid = eio_sid
        self.environ = environ
        self.lock = lock
        #: namespace -> sid, from the CONNECT packet until the client or server leaves it
        self.namespaces: dict[str, str] = {}
        #: sid -> messages held back until that namespace's CONNECT reply went out
        self.pending: dict[str, list[Outgoing]] = {}
        #: namespace -> the user session (``Server.get_session``)
        self.sessions: dict[str, dict[str, Any]] = {}
        #: namespace -> private session id (connection state recovery)
        self.pids: dict[str, str] = {}
        #: sids of this connection that were recovered
        self.recovered: dict[str, None] = {}  # a dict: 64 bytes empty, a set 216
        #: sid -> a recovered session's missed packets, sent just before its CONNECT reply
        self.missed: dict[str, list[Outgoing]] = {}
        #: the binary packet whose attachments are arriving
        self.assembler: AttachmentAssembler | None = None
        # created when a task is queued, dropped when the drain emptied it (an empty
        # deque is 760 bytes, per idle connection)
        self.tasks: deque[Task] | None = None
        self.draining = False
        #: which drain is the current one; a drain left behind by a slow handler is stale
        self.drainer = 0
        #: when the current drain started an event handler still running (0: none)
        self.busy_since = 0.0
        self.rx_unqueued = 0  # bytes received since the last queued task (reader only)
        self.rx_queued = 0  # bytes of the events waiting in ``tasks``
        self.ever_connected = False
        self.closed = False
        #: the connect timeout
        self.timer: Timer | None = None

    def connected_as(self, sid: str, namespace: str) -> bool:
        """Whether ``sid`` is this client's live connection to ``namespace``."""
        with self.lock:
            return not self.closed and self.namespaces.get(namespace) == sid

    def session(self, namespace: str) -> dict[str, Any]:
        """The user session of ``namespace`` (created empty)."""
        with self.lock:
            return self.sessions.setdefault(namespace, {})

    def save_session(self, namespace: str, session: dict[str, Any]) -> None:
        """Replace the user session of ``namespace``."""
        with self.lock:
            self.sessions[namespace] = session


class SerialQueue:
    """Starts each client's tasks in the order they are submitted.

    With ``concurrent`` (the server's ``async_handlers``) a client's tasks wait
    in its deque, drained by one task at a time started with ``run``; without it
    they run inline, in the caller (the transport reader). ``max_bytes`` bounds
    the received bytes waiting in a client's deque: a task that would exceed it
    is not queued and ``on_overflow(client)`` is called instead. A task is
    always accepted when the deque is empty, and once the client is closed (its
    disconnect handlers and final cleanup must run).

    Overlap: a task submitted with :meth:`submit_event` (an event handler) that is
    still running :data:`HANDOFF_AFTER` seconds after it started is left to
    finish on its own: :meth:`sweep` (armed with ``call_later`` while such a task
    runs) makes its drain stale and starts a new one for the tasks behind it.
    So events start in arrival order and a slow handler delays the next ones by
    at most that long. CONNECT and disconnect tasks never overlap: what follows
    them waits until they return. ``serial`` turns overlap off (strict order).

    The ordering rule lives in :meth:`_queue`, :meth:`_drain` and :meth:`sweep`.

    :param run: starts a drain for a client (see :class:`Run`).
    :param on_overflow: called with a client whose deque is over ``max_bytes``.
    :param concurrent: queue and drain (True) or run inline (False).
    :param max_bytes: see above (:attr:`ServerOptions.max_pending_bytes`).
    :param logger: where a task's exception is logged.
    :param serial: never start a task before the previous one returned.
    :param clock: a monotonic clock (seconds).
    :param lock: guards the sweep's timer (an OS lock in every mode: never held
        across a wait).
    """

    def __init__(
        self,
        run: Run,
        on_overflow: Callable[[Client], None],
        *,
        concurrent: bool,
        max_bytes: int,
        logger: logging.Logger,
        serial: bool = False,
        clock: Callable[[], float] = time.monotonic,
        lock: Lock | None = None,
    ) -> None:
        self.concurrent = concurrent
        self.max_bytes = max_bytes
        self.serial = serial
        #: starts a drain; may be replaced until the first submit
        self.run = run
        #: arms the sweep; None: nothing calls :meth:`sweep` but the caller
        self.call_later: CallLater | None = None
        self._clock = clock
        self._on_overflow = on_overflow
        self._logger = logger
        self._drain_fn = self._drain  # bound once: started for every busy spell
        #: clients whose drain runs an overlapping task now
        self._busy: dict[Client, None] = {}
        self._sweeping = False
        self._active = False  # an overlapping task started since the last sweep
        self._sweep_lock: Lock = lock if lock is not None else threading.Lock()

    def submit(self, client: Client, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` once the client's earlier tasks started and returned
        (the later ones wait for it: CONNECT, disconnects).

        The bytes the client sent since the previous submit are charged to this
        task (the reader calls it for the message it just received).
        """
        self._queue(client, fn, args, False)

    def submit_event(self, client: Client, fn: Callable[..., object], *args: Any) -> None:
        """:meth:`submit` for an event handler: it may overlap the tasks behind it."""
        self._queue(client, fn, args, not self.serial)

    def _queue(
        self, client: Client, fn: Callable[..., object], args: tuple[Any, ...], overlap: bool
    ) -> None:
        size, client.rx_unqueued = client.rx_unqueued, 0
        if not self.concurrent:
            self._call(fn, args)
            return
        with client.lock:
            overflow = (
                bool(client.tasks)  # a task is always taken when none waits
                and not client.closed  # nor are a closed client's disconnect handlers refused
                and client.rx_queued + size > self.max_bytes
            )
            if not overflow:
                if client.tasks is None:
                    client.tasks = deque()
                client.tasks.append((fn, args, size, overlap))
                client.rx_queued += size
                start = not client.draining
                client.draining = True
        if overflow:
            self._on_overflow(client)
        elif start:
            self.run(client.eio_sid, self._drain_fn, client)

    def _drain(self, client: Client) -> None:
        me = client.drainer  # a newer drain starts only after this number changed
        watched = False  # the client is in ``_busy`` for this drain (an event ran)
        while True:
            with client.lock:
                if client.drainer != me:
                    return  # left behind by a slow handler: a newer drain goes on
                client.busy_since = 0.0  # the previous task returned in time
                if not client.tasks:
                    client.draining = False
                    client.tasks = None  # 760 bytes an idle connection need not keep
                    if watched:
                        self._busy.pop(client, None)
                    return
                fn, args, size, overlap = client.tasks.popleft()
                client.rx_queued -= size
                if overlap:
                    client.busy_since = self._clock()
                    if not watched:
                        self._busy[client] = None
            if overlap and not watched:
                watched = True
                self._watch()
            self._call(fn, args)

    def sweep(self) -> None:
        """Leave every handler that has run for :data:`HANDOFF_AFTER` to finish on
        its own: its drain goes stale, and a new one starts its client's next tasks."""
        now = self._clock()
        for client in list(self._busy):
            with client.lock:
                since = client.busy_since
                if not since or now - since < HANDOFF_AFTER:
                    continue
                client.drainer += 1
                client.busy_since = 0.0
                self._busy.pop(client, None)
                restart = bool(client.tasks)
                client.draining = restart
            if restart:
                self.run(client.eio_sid, self._drain_fn, client)

    def _watch(self) -> None:
        """Make sure a sweep runs while a client is busy (one timer for the server).

        The timer keeps going while handlers start (``_active``) and stops after a
        quiet interval, so a steady stream of events arms it once, not per event.
        """
        self._active = True
        if self._sweeping or self.call_later is None:
            return
        with self._sweep_lock:
            if self._sweeping:
                return
            self._sweeping = True
        self.call_later(HANDOFF_AFTER, self._timed_sweep)

    def _timed_sweep(self) -> None:
        try:
            self.sweep()
        finally:
            with self._sweep_lock:
                again = self._sweeping = bool(self._busy) or self._active
                self._active = False
            if again and self.call_later is not None:
                self.call_later(HANDOFF_AFTER, self._timed_sweep)
            elif self._busy:  # a client got busy while this stopped, and saw it still on
                self._watch()

    def _call(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            self._logger.exception("error in a socket.io handler")
