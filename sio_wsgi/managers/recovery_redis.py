"""Connection state recovery across nodes and workers, on Redis (``RedisManager``).

The local store (:class:`sio_wsgi.recovery.RecoveryLog`) keeps packets and dropped
sessions in one process. With a ``RedisManager`` they live in Redis instead, so a
client that reconnects to any process (another worker, another node, after its
first process died) is recovered there:

- **Packets.** A recoverable emit (no ack callback, not volatile) is one Lua script
  call that appends the bus message to the Redis stream ``<channel>:recovery``
  (``XADD``; the oldest entries go while the stream holds more than
  ``max_buffered_bytes`` or is older than ``max_disconnection_duration``) and publishes
  it with the stream entry id inside, as its offset, on the bus channel, in one
  atomic step: the stream's order is the order in which every node receives the
  packets, the emitting node included (its own clients get it from its bus
  listener too, so that every client sees one order). The offset on the wire is
  the stream id (``<ms>-<n>``).
- **Sessions.** A live session's state (sid, rooms with the marks at which it
  joined, session data when it is JSON) is written to ``<channel>:recovery:<pid>``
  when it connects and after it changes (within ``PERSIST_EVERY`` seconds, see
  :data:`sio_wsgi.recovery.PERSIST_EVERY`), and again when it drops, each time with
  an expiry of ``max_disconnection_duration`` (refreshed while it lives). A reconnect takes it
  with ``GETDEL`` (one recovery per drop) and replays the stream after the
  client's offset, filtered by namespace, rooms (joined before the packet) and
  skipped sids; an explicit disconnect deletes it.

Guarantees and limits: every node must reach the same Redis; what Redis keeps is
what Redis persistence keeps (a Redis restart without persistence loses the
stream and the sessions: clients then get new connections); a process that dies
loses at most the last ``PERSIST_EVERY`` seconds of room and session changes of
its clients; session data that is not JSON is not carried to other processes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from sio_wsgi.config import RecoveryOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.managers import messages as bus
from sio_wsgi.protocol.sio import Packet, PacketType
from sio_wsgi.recovery import NO_OFFSET, Room, Saved, addressed
from sio_wsgi.runtime.base import Lock

if TYPE_CHECKING:
    from sio_wsgi.managers.redis import RedisManager

__all__ = ["RedisRecoveryStore"]

logger = logging.getLogger("sio_wsgi.managers.pubsub")

#: XADD and PUBLISH with the new id inside, atomically, once per emit (ARGV[5]: a retry after
#: a lost reply does nothing); then the oldest entries go while
#: the stream is over ARGV[4] bytes (its running total in KEYS[3]) or older than ARGV[3] ms
#: (at most 64 per call: the rest at the next ones)
_XADD_PUBLISH = """
if not redis.call('SET', KEYS[1] .. ':sent:' .. ARGV[5], '1', 'NX', 'PX', 60000) then
  return false
end
local id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1], 's', ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[1] .. id .. ARGV[2])
local total = redis.call('INCRBY', KEYS[3], #ARGV[1] + #ARGV[2] + #id)
local now = redis.call('TIME')
local horizon = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
for _ = 1, 64 do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if oldest == nil or oldest[1] == id then break end
  local ms = tonumber(string.match(oldest[1], '^(%d+)'))
  if total <= tonumber(ARGV[4]) and ms >= horizon then break end
  local fields = oldest[2]
  local size = #oldest[1]
  for i = 2, #fields, 2 do size = size + #fields[i] end
  redis.call('XDEL', KEYS[1], oldest[1])
  total = redis.call('DECRBY', KEYS[3], size)
end
return id
"""

_ID = re.compile(r"^(\d{1,15})-(\d{1,9})$")
_SEQ_BITS = 20


def _mark(stream_id: object) -> int | None:
    if isinstance(stream_id, bytes):
        stream_id = stream_id.decode("ascii", "replace")
    if not isinstance(stream_id, str):
        return None
    match = _ID.match(stream_id)
    if match is None or int(match.group(2)) >= 1 << _SEQ_BITS:
        return None
    return (int(match.group(1)) << _SEQ_BITS) | int(match.group(2))


def _stream_id(mark: int) -> str:
    return f"{mark >> _SEQ_BITS}-{mark & ((1 << _SEQ_BITS) - 1)}"


class RedisRecoveryStore:
    """Recovery state in Redis, read by every node of a ``RedisManager``.

    :param manager: the manager (its Redis client, channel and encoder).
    :param options: the bounds.
    :param lock: the dispatcher's lock for deliveries and restores.
    """

    shared = True

    def __init__(self, manager: RedisManager, options: RecoveryOptions, lock: Lock) -> None:
        self.manager = manager
        self.options = options
        self.lock = lock
        self.redis = manager.redis
        self.stream = f"{manager.channel}:recovery"
        self.key_prefix = f"{manager.channel}:recovery:"
        self._script = self.redis.register_script(_XADD_PUBLISH)
        self._head = 0
        self._window_ms = int(options.max_disconnection_duration * 1000)
        self._dirty: set[tuple[str, str]] = set()
        self._dirty_lock = threading.Lock()
        self.stats = {"published": 0, "recovered": 0, "failed": 0}

    # ------------------------------------------------------------ packets

    @property
    def head(self) -> int:
        """The mark of the newest packet this node delivered."""
        return self._head

    def seen(self, mark: int) -> None:
        """A packet of the stream was delivered here (hold :attr:`lock`)."""
        self._head = max(self._head, mark)

    def mark(self, offset: object) -> int | None:
        """The mark of a stream id (None: not one)."""
        return _mark(offset)

    def publish_emit(self, host: str, message: bus.Emit, once: str) -> None:
        """Append ``message`` to the stream and publish it with its offset.

        :param once: the emit's id: a retry with the same one (its reply was lost) does
            nothing.
        :raises Exception: the Redis client's errors (the manager retries them).
        """
        placeholder = secrets.token_hex(16)
        encoded = bus.encode(bus.Envelope(host, _with_offset(message, placeholder))).decode()
        head, found, tail = encoded.partition(placeholder)
        if not found or placeholder in tail:
            raise ValueError("the offset placeholder is not unique in the message")
        self._script(
            keys=[self.stream, self.manager.channel, self.stream + ":bytes"],
            args=[head, tail, self._window_ms, self.options.max_buffered_bytes, once],
        )
        self.stats["published"] += 1

    # ------------------------------------------------------------ sessions

    def _key(self, pid: str) -> str:
        return self.key_prefix + pid

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A Redis command, tried again once on a fresh connection (a pooled one may
        be dead after a Redis restart; the client itself does not retry)."""
        try:
            return fn(*args, **kwargs)
        except self.manager.retry_errors:
            self.redis.connection_pool.disconnect()
            return fn(*args, **kwargs)

    def save(self, session: Saved) -> None:
        """Write a dropped session (expires after ``max_disconnection_duration``)."""
        self._write([session])

    def persist(self, sessions: list[Saved]) -> None:
        """Write live sessions' state (a process that dies leaves them behind)."""
        self._write(sessions)

    def _write(self, sessions: list[Saved]) -> None:
        if not sessions:
            return
        try:

            def write() -> None:
                pipe = self.redis.pipeline(transaction=False)
                for session in sessions:
                    pipe.set(self._key(session.pid), _dump(session), px=self._window_ms)
                pipe.execute()

            self._call(write)
        except Exception as exc:  # noqa: BLE001 - a broker fault: recovery is best effort
            logger.warning("could not store %d recovery sessions: %s", len(sessions), exc)

    def take(self, pid: object, namespace: str) -> Saved | None:
        """``GETDEL`` the session ``pid`` (once)."""
        if not isinstance(pid, str) or not pid or len(pid) > 64:
            return None
        try:
            raw = self._call(self.redis.getdel, self._key(pid))
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not read recovery session: %s", exc)
            return None
        saved = None if raw is None else _load(pid, raw)
        if saved is None or saved.namespace != namespace:
            self.stats["failed"] += 1
            return None
        return saved

    def forget(self, pid: str) -> None:
        """An explicit disconnect: delete what is kept of ``pid``."""
        try:
            self._call(self.redis.delete, self._key(pid))
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not delete recovery session: %s", exc)

    def missed(self, saved: Saved, offset: object, upto: int) -> list[Outgoing] | None:
        """Replay the stream after ``offset`` up to mark ``upto`` for ``saved``."""
        if offset is NO_OFFSET:
            after = saved.rooms.get(None, 0)
        else:
            parsed = _mark(offset)
            if parsed is None:
                self.stats["failed"] += 1
                return None
            after = parsed
        try:
            info = self._call(self.redis.xinfo_stream, self.stream)
            deleted = _mark(info.get("max-deleted-entry-id")) or 0
            entries = (
                self._call(
                    self.redis.xrange, self.stream, f"({_stream_id(after)}", _stream_id(upto)
                )
                if upto > after
                else []
            )
        except Exception as exc:  # noqa: BLE001 - no stream yet, or Redis is gone
            if "no such key" in str(exc).lower():
                deleted, entries = 0, []
            else:
                logger.warning("could not read the recovery stream: %s", exc)
                self.stats["failed"] += 1
                return None
        if deleted > after:  # some of what it may have missed was trimmed
            self.stats["failed"] += 1
            return None
        encode = self.manager.encode_packet
        missed: list[Outgoing] = []
        size = 0
        for stream_id, fields in entries:
            message = _entry(stream_id, fields)
            mark = _mark(stream_id)
            if message is None or mark is None:
                continue
            if not addressed(message.namespace, message.to, message.skip_sid or (), mark, saved):
                continue
            packet = Packet(
                PacketType.EVENT, message.namespace, [message.event, *message.args, message.offset]
            )
            out = encode(packet)
            out.compress = message.compress
            size += out.size
            if size > self.options.max_replay_bytes:
                self.stats["failed"] += 1
                return None
            missed.append(out)
        self.stats["recovered"] += 1
        return missed

    def since_head(self) -> list[tuple[str, bus.Emit]]:
        """The emits recorded after the newest one delivered here (a node back on the
        bus catches up; at most 10000)."""
        if self._head == 0:
            return []
        entries = self.redis.xrange(self.stream, f"({_stream_id(self._head)}", "+", count=10000)
        found: list[tuple[str, bus.Emit]] = []
        for stream_id, fields in entries:
            envelope = _envelope(stream_id, fields)
            if envelope is not None and isinstance(envelope.message, bus.Emit):
                found.append((envelope.host, envelope.message))
        return found

    # ------------------------------------------------------------ live state

    def changed(self, namespace: str, sid: str) -> None:
        """The rooms or session of a live ``sid`` changed: written within PERSIST_EVERY."""
        with self._dirty_lock:
            self._dirty.add((namespace, sid))

    def take_dirty(self) -> list[tuple[str, str]]:
        """The sessions changed since the last call."""
        with self._dirty_lock:
            dirty, self._dirty = list(self._dirty), set()
        return dirty


def _with_offset(message: bus.Emit, offset: str) -> bus.Emit:
    return dataclasses.replace(message, offset=offset)


def _entry(stream_id: Any, fields: Any) -> bus.Emit | None:
    envelope = _envelope(stream_id, fields)
    message = None if envelope is None else envelope.message
    return message if isinstance(message, bus.Emit) else None


def _envelope(stream_id: Any, fields: Any) -> bus.Envelope | None:
    try:
        sid = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
        head = fields.get(b"p", fields.get("p"))
        tail = fields.get(b"s", fields.get("s"))
        if isinstance(head, bytes):
            head = head.decode()
        if isinstance(tail, bytes):
            tail = tail.decode()
        return bus.decode(f"{head}{sid}{tail}")
    except (bus.BusMessageError, AttributeError, UnicodeDecodeError):
        return None


def _dump(session: Saved) -> str:
    document: dict[str, Any] = {
        "sid": session.sid,
        "ns": session.namespace,
        "rooms": [[room, mark] for room, mark in session.rooms.items()],
    }
    try:
        document["data"] = json.loads(json.dumps(session.data))
    except (TypeError, ValueError):
        logger.info("the session of %s is not JSON: not kept for other processes", session.sid)
    return json.dumps(document, separators=(",", ":"))


def _load(pid: str, raw: bytes | str) -> Saved | None:
    try:
        document = json.loads(raw)
        rooms: dict[Room, int] = {}
        for room, mark in document["rooms"]:
            if (room is not None and not isinstance(room, str)) or not isinstance(mark, int):
                return None
            rooms[room] = mark
        sid, namespace = document["sid"], document["ns"]
        if not isinstance(sid, str) or not isinstance(namespace, str):
            return None
        return Saved(pid, sid, namespace, rooms, document.get("data"), time.monotonic())
    except (ValueError, KeyError, TypeError):
        return None
