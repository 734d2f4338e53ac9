"""Connection state recovery: a client that drops for a moment comes back as itself.

Wire-compatible with the Node server's ``connectionStateRecovery`` and the official
client (v4.6 and later), which needs nothing special:

- the CONNECT reply carries a private session id besides the sid:
  ``{"sid": ..., "pid": ...}``; the client keeps the ``pid``;
- every recoverable packet carries an *offset* as its last argument: an event
  emitted without an ack callback and not volatile (acks cannot be replayed, and
  volatile means "fine to lose"); the client remembers the last offset it got;
- a reconnecting client puts ``pid`` and ``offset`` in its CONNECT ``auth``. When
  the session dropped for a recoverable reason (:data:`RECOVERABLE`: the transport
  closed or failed, the client closed its transport without leaving the namespace,
  or the ping timed out; never an explicit disconnect by either side) less than
  ``max_disconnection_duration`` ago, it gets back its sid, its rooms and its
  session data, and every recoverable packet emitted to it after that offset, in
  order, exactly once, just before its CONNECT reply (as the Node server sends
  them) and before anything newer. A client
  with a ``pid`` but no offset (it had received no recoverable packet) gets
  everything emitted to it since it connected. Anything else is a normal new
  connection (a new sid and ``pid``), never an error.

How: :class:`RecoveryLog` keeps every recoverable packet once, encoded as it was
sent (one :class:`~sio_wsgi.engine.outgoing.Outgoing` for all its recipients),
with its addressing (namespace, rooms, skipped sids) and a sequence number; the
offset on the wire is ``<process epoch>-<sequence in hex>``. A dropped session is
kept as a :class:`Saved` record: its rooms, each with the sequence number at which
it joined (so a packet emitted to a room before the client was in it is never
replayed), and its session data. Replaying is a filter over the log. Recording a
packet with its recipients, and restoring a session into its rooms with its missed
packets queued, happen under one lock, so a packet is either replayed or delivered
live, never both and never neither.

Bounds: the log holds at most ``max_buffered_bytes`` of packets and none older
than ``max_disconnection_duration``; a restore that would replay more than
``max_replay_bytes``, or whose offset is older than the log, fails (a new
connection); saved sessions expire after ``max_disconnection_duration``.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .config import RecoveryOptions
from .engine.outgoing import Outgoing
from .engine.ports import DisconnectReason
from .runtime.base import Lock

__all__ = [
    "RECOVERABLE",
    "NO_OFFSET",
    "PERSIST_EVERY",
    "RecoveryStore",
    "RecoveryLog",
    "Saved",
    "Restored",
    "Room",
    "addressed",
]

#: disconnect reasons after which a session is kept for recovery
RECOVERABLE = frozenset(
    {
        DisconnectReason.TRANSPORT_CLOSE,
        DisconnectReason.TRANSPORT_ERROR,
        DisconnectReason.PING_TIMEOUT,
        # an Engine.IO CLOSE packet without a Socket.IO DISCONNECT before it (the client
        # closed its transport: the Node server's "transport close"); a DISCONNECT
        # packet is an explicit disconnect, which the dispatcher never saves
        DisconnectReason.CLIENT_DISCONNECT,
        # the server stops (a deploy, a gunicorn worker recycled): with a shared store the
        # client recovers on another process, as the Node server allows
        DisconnectReason.SERVER_SHUTTING_DOWN,
    }
)

#: seconds between writes of live sessions' changed state to a shared store
PERSIST_EVERY = 0.5

#: :meth:`RecoveryLog.restore`'s ``offset`` when the client sent none
NO_OFFSET = object()

Room = str | None
"""A room name; None is the namespace itself (everyone in it)."""


@dataclasses.dataclass(frozen=True)
class _Entry:
    seq: int
    namespace: str
    rooms: frozenset[str] | None  # None: the whole namespace
    skip: frozenset[str]
    message: Outgoing
    size: int
    at: float


@dataclasses.dataclass
class Saved:
    """A dropped session, kept for its recovery."""

    pid: str
    sid: str
    namespace: str
    #: room -> sequence number when it joined (None: the namespace, at connect)
    rooms: dict[Room, int]
    data: Any
    at: float = 0.0


@dataclasses.dataclass
class Restored:
    """What a recovered session gets back."""

    sid: str
    rooms: dict[Room, int]
    data: Any
    missed: list[Outgoing]


class RecoveryStore(Protocol):
    """Where recoverable packets and dropped sessions are kept: :class:`RecoveryLog`
    in this process, or a shared store that every node reads (a client manager's,
    e.g. :class:`~sio_wsgi.managers.recovery_redis.RedisRecoveryStore`).

    Marks (:attr:`head`, the joins of :attr:`Saved.rooms`) are ints that grow with
    the order in which packets are delivered.
    """

    options: RecoveryOptions
    #: held while recording or delivering a packet with its recipients, and while a
    #: session is put back into its rooms (see the module docstring)
    lock: Lock
    #: True: offsets come with the packets from the bus (the manager publishes
    #: through the store); False: :meth:`RecoveryLog.next_offset` gives them here
    shared: bool

    @property
    def head(self) -> int:
        """The mark of the newest packet delivered here (hold :attr:`lock`)."""

    def mark(self, offset: object) -> int | None:
        """The mark of a wire offset (None: not an offset of this store)."""

    def seen(self, mark: int) -> None:
        """A packet of a shared store is delivered here (hold :attr:`lock`)."""

    def changed(self, namespace: str, sid: str) -> None:
        """The rooms or session data of a live ``sid`` changed."""

    def publish_emit(self, host: str, message: Any, once: str) -> None:
        """A shared store: record a bus ``Emit`` and publish it with its offset (a
        retry with the same ``once`` id does nothing)."""

    def persist(self, sessions: list[Saved]) -> None:
        """A shared store: write live sessions' state."""

    def take_dirty(self) -> list[tuple[str, str]]:
        """A shared store: the ``(namespace, sid)`` whose state changed since the last call."""

    def since_head(self) -> list[tuple[str, Any]]:
        """A shared store: the ``(host, Emit)`` recorded after :attr:`head` (to catch up)."""

    def save(self, session: Saved) -> None:
        """Keep a dropped session for ``max_disconnection_duration``."""

    def take(self, pid: object, namespace: str) -> Saved | None:
        """Take back a dropped (or last persisted) session, once."""

    def missed(self, saved: Saved, offset: object, upto: int) -> list[Outgoing] | None:
        """What ``saved`` missed after ``offset`` up to mark ``upto`` (None: lost)."""

    def forget(self, pid: str) -> None:
        """An explicit disconnect: drop what is kept of ``pid``."""


class RecoveryLog:
    """Recoverable packets and dropped sessions of one process.

    :param options: the bounds.
    :param lock: the lock (:meth:`~sio_wsgi.runtime.base.Driver.lock`) that
        :meth:`record` and :meth:`restore` callers hold while they also read or
        change room membership (see the module docstring).
    :param clock: seconds, monotonic.
    """

    def __init__(
        self,
        options: RecoveryOptions,
        lock: Lock,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.lock = lock
        self.clock = clock
        self.epoch = secrets.token_hex(4)
        self._seq = 0
        self._entries: collections.deque[_Entry] = collections.deque()
        self._bytes = 0
        #: sequence number of the oldest packet dropped from the log (0: none yet)
        self._trimmed = 0
        self._saved: dict[str, Saved] = {}  # pid -> session, in the order they dropped
        self.stats = {"recorded": 0, "recovered": 0, "failed": 0, "expired": 0}
        self.shared = False

    # ------------------------------------------------------------ sequence

    @property
    def head(self) -> int:
        """The sequence number of the newest packet (0: none yet)."""
        return self._seq

    def offset(self, seq: int) -> str:
        """The wire offset of sequence number ``seq``."""
        return f"{self.epoch}-{seq:x}"

    def mark(self, offset: object) -> int | None:
        """The sequence number of a wire offset of this process (None: not one)."""
        if not isinstance(offset, str):
            return None
        epoch, _, seq = offset.partition("-")
        if epoch != self.epoch or not seq or len(seq) > 16:
            return None
        try:
            return int(seq, 16)
        except ValueError:
            return None

    def seen(self, mark: int) -> None:
        """Packets of this log are recorded here, not delivered from elsewhere."""

    def changed(self, namespace: str, sid: str) -> None:
        """Live sessions are only kept when they drop, here."""

    def publish_emit(self, host: str, message: Any, once: str) -> None:
        """Not a shared store: the manager records its emits itself."""
        raise RuntimeError("a RecoveryLog records emits in Manager.emit_local")

    def persist(self, sessions: list[Saved]) -> None:
        """Live sessions are only kept when they drop, here."""

    def take_dirty(self) -> list[tuple[str, str]]:
        """Nothing to write."""
        return []

    def since_head(self) -> list[tuple[str, Any]]:
        """Nothing to catch up on: every packet is recorded here."""
        return []

    def next_offset(self) -> tuple[int, str]:
        """Take the next sequence number (hold :attr:`lock`): ``(seq, offset)``."""
        self._seq += 1
        return self._seq, self.offset(self._seq)

    # ------------------------------------------------------------ recording

    def record(
        self,
        seq: int,
        namespace: str,
        rooms: Iterable[str] | None,
        skip: Iterable[str],
        message: Outgoing,
    ) -> None:
        """Keep a packet sent with :meth:`next_offset`'s ``seq`` (hold :attr:`lock`)."""
        size = message.size
        now = self.clock()
        self._entries.append(
            _Entry(
                seq,
                namespace,
                None if rooms is None else frozenset(rooms),
                frozenset(skip),
                message,
                size,
                now,
            )
        )
        self._bytes += size
        self.stats["recorded"] += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self.options.max_disconnection_duration
        entries = self._entries
        while entries and (
            self._bytes > self.options.max_buffered_bytes or entries[0].at < horizon
        ):
            dropped = entries.popleft()
            self._bytes -= dropped.size
            self._trimmed = dropped.seq
        saved = self._saved
        while saved:
            pid, oldest = next(iter(saved.items()))
            if oldest.at >= horizon:
                break
            del saved[pid]
            self.stats["expired"] += 1

    # ------------------------------------------------------------ sessions

    def save(self, session: Saved) -> None:
        """Keep a dropped session for ``max_disconnection_duration``."""
        with self.lock:
            session.at = self.clock()
            self._saved.pop(session.pid, None)
            self._saved[session.pid] = session
            self._trim(session.at)

    def take(self, pid: object, namespace: str) -> Saved | None:
        """Take back the dropped session ``pid`` of ``namespace`` (once)."""
        if not isinstance(pid, str):
            return None
        with self.lock:
            self._trim(self.clock())
            saved = self._saved.get(pid)
            if saved is None or saved.namespace != namespace:
                self.stats["failed"] += 1
                return None
            del self._saved[pid]  # one recovery per drop, whatever happens next
            return saved

    def missed(self, saved: Saved, offset: object, upto: int) -> list[Outgoing] | None:
        """The packets ``saved`` missed after ``offset`` (:data:`NO_OFFSET`: since it
        connected) up to sequence number ``upto``; None when they cannot all be had."""
        with self.lock:
            if offset is NO_OFFSET:
                after = saved.rooms.get(None, 0)
            else:
                parsed = self.mark(offset)
                if parsed is None or parsed > upto:
                    self.stats["failed"] += 1
                    return None
                after = parsed
            if after < self._trimmed:  # some of what it missed is gone
                self.stats["failed"] += 1
                return None
            missed: list[Outgoing] = []
            size = 0
            for entry in self._entries:
                if entry.seq <= after or entry.seq > upto or not _addressed(entry, saved):
                    continue
                size += entry.size
                if size > self.options.max_replay_bytes:
                    self.stats["failed"] += 1
                    return None
                missed.append(entry.message)
            self.stats["recovered"] += 1
            return missed

    def forget(self, pid: str) -> None:
        """An explicit disconnect: nothing of ``pid`` is kept (nothing to do here)."""

    def restore(self, pid: object, offset: object, namespace: str) -> Restored | None:
        """:meth:`take` then :meth:`missed` up to now (for tests and single calls)."""
        saved = self.take(pid, namespace)
        if saved is None:
            return None
        missed = self.missed(saved, offset, self.head)
        if missed is None:
            return None
        return Restored(saved.sid, saved.rooms, saved.data, missed)

    def __len__(self) -> int:
        """Packets in the log."""
        return len(self._entries)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of packets in the log."""
        return self._bytes

    @property
    def saved_sessions(self) -> int:
        """Dropped sessions waiting for their client."""
        return len(self._saved)


def _addressed(entry: _Entry, saved: Saved) -> bool:
    return addressed(entry.namespace, entry.rooms, entry.skip, entry.seq, saved)


def addressed(
    namespace: str,
    rooms: Iterable[str] | None,
    skip: Iterable[str],
    mark: int,
    saved: Saved,
) -> bool:
    """Whether a packet (its namespace, rooms (None: everyone), skipped sids and mark)
    was emitted to the session ``saved``: by the rooms it was in at that mark."""
    if namespace != saved.namespace or saved.sid in skip:
        return False
    joins = saved.rooms
    if rooms is None:
        joined = joins.get(None)
        return joined is not None and joined < mark
    for room in rooms:
        joined = joins.get(room)
        if joined is not None and joined < mark:
            return True
    return False
