"""Relayed WebSockets: the byte streams between a front and an owner process.

When the session relay (:mod:`sio_wsgi.engine.relay`) carries a WebSocket
upgrade, the connection becomes a stream of bytes on each side: the front pumps
what its client's socket reads into the owner's inbox, the owner pumps what its
WebSocket transport writes (into one end of a local socket pair) into the
front's. :class:`Stream` is one side of one such connection; :class:`StreamTable`
holds a process's streams by request id, routes the peer's data to them, and
ends those whose peer process is gone (checked every :data:`STREAM_CHECK_EVERY`
seconds while there are streams, and at once when a direct link to the peer
closes): the client then sees its WebSocket close and reconnects.

Messages on the wire are the relay's: a ``DATA`` message per chunk read, one
``END`` when a side is over (see :mod:`sio_wsgi.engine.relay_wire`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
from collections.abc import Callable

from ..exceptions import BusError
from ..runtime.base import Driver, Timer
from .relay_wire import DATA, END

__all__ = ["Stream", "StreamTable", "STREAM_CHECK_EVERY", "STREAM_QUEUE_LIMIT"]

logger = logging.getLogger("sio_wsgi.engine.relay")

#: how often the processes at the other end of this process's streams are checked
STREAM_CHECK_EVERY = 2.0
#: most bytes of stream data waiting for a slow socket before the stream is cut
STREAM_QUEUE_LIMIT = 8 * 1024 * 1024
#: bytes read from a stream socket at a time
CHUNK = 65536

#: ``send(to, kind, rid, payload) -> delivered``: one relay message to a process's inbox
Send = Callable[[str, bytes, str, bytes], bool]


class Stream:
    """One relayed WebSocket's bytes, on one side: a socket and the peer's inbox.

    :param table: the streams of this process (its send function and driver).
    :param peer: the host id of the process at the other end.
    :param rid: the relayed request's id, which names the stream on both sides.
    """

    def __init__(self, table: StreamTable, peer: str, rid: str) -> None:
        self.table = table
        self.peer = peer
        self.rid = rid
        self.sock: socket.socket | None = None
        self._queue: collections.deque[bytes | None] = collections.deque()
        self._queued = 0
        self._wake = table.driver.event()
        self._writer_done = table.driver.event()
        self.ended = False

    def feed(self, data: bytes | None) -> None:
        """Bytes from the peer for the socket (None: the peer's side ended)."""
        if self.ended:
            return
        if data is not None:
            self._queued += len(data)
            if self._queued > STREAM_QUEUE_LIMIT:
                logger.warning("relayed stream %s: its socket does not read; cut", self.rid)
                self._queue.clear()
                data = None
        self._queue.append(data)
        self._wake.set()

    def attach(self, sock: socket.socket) -> None:
        """Start writing what the peer sends into ``sock``."""
        self.sock = sock
        self.table.driver.spawn(self._write_loop)
        self.table.watch()

    def _write_loop(self) -> None:
        sock = self.sock
        assert sock is not None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._queue:
                    data = self._queue.popleft()
                    if data is None:
                        self.ended = True
                        # the peer's side is over: so is this socket (it wakes the reader)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                        return
                    self._queued -= len(data)
                    sock.sendall(data)
        except OSError:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        finally:
            self._writer_done.set()

    def pump(self) -> None:
        """Send what the socket reads to the peer until either side ends."""
        sock = self.sock
        assert sock is not None
        send = self.table.send
        try:
            while True:
                data = sock.recv(CHUNK)
                if not data:
                    break
                if not send(self.peer, DATA, self.rid, data):
                    break
        except (OSError, BusError):
            pass
        with contextlib.suppress(BusError):
            send(self.peer, END, self.rid, b"")
        self.feed(None)  # stop the writer too
        self._writer_done.wait(5.0)
        self.table.drop(self.rid)


class StreamTable:
    """This process's relayed streams, by request id.

    :param driver: the concurrency driver (writer tasks, events).
    :param call_later: the engine's timers.
    :param send: sends one relay message (:data:`Send`).
    :param alive: whether a process still lives (asks the bus; may block).
    """

    def __init__(
        self,
        driver: Driver,
        call_later: Callable[..., Timer],
        send: Send,
        alive: Callable[[str], bool],
    ) -> None:
        self.driver = driver
        self.call_later = call_later
        self.send = send
        self.alive = alive
        self._streams: dict[str, Stream] = {}
        self._watching = False

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, peer: str, rid: str) -> Stream:
        """A new stream with process ``peer``, named ``rid``."""
        stream = self._streams[rid] = Stream(self, peer, rid)
        return stream

    def drop(self, rid: str) -> None:
        """A stream is over on this side (or never started)."""
        self._streams.pop(rid, None)

    def feed(self, sender: str, rid: str, data: bytes | None) -> None:
        """Data (None: the end) from ``sender`` for stream ``rid``; others' are ignored."""
        stream = self._streams.get(rid)
        if stream is not None and stream.peer == sender:
            stream.feed(data)

    def has_peer(self, host: str) -> bool:
        """Whether a stream runs with process ``host``."""
        return any(s.peer == host for s in list(self._streams.values()))

    def check_peer(self, host: str) -> None:
        """End the streams with ``host`` if it is gone (asks the bus: run it in a task)."""
        if not self.alive(host):
            self._end_with(host, [s for s in list(self._streams.values()) if s.sock is not None])

    def watch(self) -> None:
        """Check the peers every STREAM_CHECK_EVERY seconds while there are streams."""
        if not self._watching:
            self._watching = True
            self.call_later(STREAM_CHECK_EVERY, self._check_soon)

    def _check_soon(self) -> None:
        self.driver.spawn(self._check)  # off the timer task: it asks the broker

    def _check(self) -> None:
        streams = [s for s in list(self._streams.values()) if s.sock is not None]
        for peer in {s.peer for s in streams}:
            if not self.alive(peer):
                self._end_with(peer, streams)
        self._watching = False
        if self._streams:
            self.watch()

    @staticmethod
    def _end_with(peer: str, streams: list[Stream]) -> None:
        logger.info("the process %s at the other end of relayed streams is gone", peer)
        for stream in streams:
            if stream.peer == peer:
                stream.feed(None)
