"""Direct links: point-to-point sockets between the processes of one bus.

The session relay (:mod:`sio_wsgi.engine.relay`) sends every relayed request,
answer and WebSocket chunk to one process's inbox. Through the broker that is
two network hops per message (publisher to broker to subscriber) and a publish
call's worth of CPU; these links make it one socket write and one read:

- every relaying process listens on a TCP port of its own (the manager's
  ``relay_address``, an ephemeral port) and announces ``address:port`` and a
  random token in its bus heartbeats (:class:`~sio_wsgi.managers.messages.Hello`);
- a process that sends to another connects once, proves it heard the token on
  the bus (the handshake below), and then writes length-prefixed frames;
- a link that cannot be made or breaks makes :meth:`DirectLinks.send` return
  False, and the caller sends through the broker instead (which also tells
  whether anybody still listens there). The broker stays the source of truth
  for liveness; the links only carry bytes.

Wire, per connection (the connecting side writes, the listening side reads)::

    connect:  MAGIC (4 bytes) + the listener's token (32 hex digits) + the connector's host id (16)
    answer:   the listener's host id (16 bytes), or the connection is closed
    frames:   4-byte big-endian length + that many bytes (one inbox message), repeated

A writer sends without yielding whenever the socket takes the whole frame
(``MSG_DONTWAIT``), so a relayed request costs no task switch on the sending
side; what the socket does not take waits, in order, for the link's writer task.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable

from sio_wsgi.runtime.base import Driver, Event, Lock

__all__ = ["DirectLinks", "MAGIC", "MAX_FRAME"]

logger = logging.getLogger("sio_wsgi.managers.pubsub")

#: first bytes of a link's handshake
MAGIC = b"SIOL"
#: largest frame a link accepts (a relayed request is at most ``max_http_buffer_size``
#: plus its header; a WebSocket chunk 64 KiB); a peer that sends more is cut off
MAX_FRAME = 256 * 1024 * 1024
#: seconds to connect and hear the handshake's answer
CONNECT_TIMEOUT = 1.0
#: seconds a peer that could not be reached is sent to through the broker only
RETRY_AFTER = 5.0
#: bytes waiting for a slow link before it is cut (its messages then go through the broker)
QUEUE_LIMIT = 64 * 1024 * 1024
#: seconds between checks for shutdown by a listener waiting for connections
ACCEPT_POLL = 0.5

_LENGTH = struct.Struct(">I")
_HOST_ID = 16
_TOKEN = 32


class _Link:
    """An outgoing connection to one peer: frames written in order."""

    def __init__(self, sock: socket.socket, driver: Driver) -> None:
        self.sock = sock
        self.raw = driver.raw_socket(sock)
        self.lock: Lock = driver.lock()
        self.pending: collections.deque[bytes] = collections.deque()
        self.pending_bytes = 0
        self.writing = False
        self.broken = False
        self.wake: Event = driver.event()

    def send(self, frame: bytes) -> bool:
        """Write ``frame`` now if the socket takes it whole, else queue it for the writer."""
        with self.lock:  # never held across a blocking call (see Driver.lock)
            if self.broken:
                return False
            if not self.pending and not self.writing:
                try:
                    sent = self.raw.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self.broken = True
                    return False
                if sent == len(frame):
                    return True
                frame = frame[sent:]
            if self.pending_bytes + len(frame) > QUEUE_LIMIT:
                self.broken = True
                return False
            self.pending.append(frame)
            self.pending_bytes += len(frame)
        self.wake.set()
        return True

    def write_loop(self) -> None:
        """The link's writer task: what the socket did not take at once, in order."""
        try:
            while True:
                self.wake.wait()
                self.wake.clear()
                while True:
                    with self.lock:
                        if self.broken:
                            return
                        if not self.pending:
                            self.writing = False
                            break
                        chunk = self.pending.popleft()
                        self.pending_bytes -= len(chunk)
                        self.writing = True
                    self.sock.sendall(chunk)
        except OSError:
            self.close()

    def watch(self, gone: Callable[[], None]) -> None:
        """Wait for the peer to close (it never writes after the handshake)."""
        with contextlib.suppress(OSError):
            while self.sock.recv(4096):
                pass
        self.close()
        gone()

    def close(self) -> None:
        with self.lock:
            self.broken = True
            self.pending.clear()
            self.pending_bytes = 0
        self.wake.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class DirectLinks:
    """This process's listening socket and its links to the other processes.

    :param host_id: this process's host id.
    :param driver: the concurrency driver (listener, readers and writers are its tasks).
    :param deliver: called with each frame received, in the reading task.
    :param address: the IP address to listen on (and announce).
    :param lost: called with a process's host id when the link to it closes.
    """

    def __init__(
        self,
        host_id: str,
        driver: Driver,
        deliver: Callable[[bytes], None],
        address: str,
        lost: Callable[[str], None] | None = None,
    ) -> None:
        self.host_id = host_id
        self.lost = lost
        self.driver = driver
        self.deliver = deliver
        self.token = secrets.token_hex(_TOKEN // 2)
        self._lock = driver.lock()
        self._links: dict[str, _Link] = {}
        self._connecting: dict[str, Event] = {}
        self._failed: dict[str, float] = {}
        self._inbound: set[socket.socket] = set()
        self._closed = False
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((address, 0))
        self._listener.listen(128)
        self._listener.settimeout(ACCEPT_POLL)
        self.address = f"{address}:{self._listener.getsockname()[1]}"
        if family == socket.AF_INET6:
            self.address = f"[{address}]:{self._listener.getsockname()[1]}"
        self.counts = {"sent": 0, "received": 0, "fallbacks": 0}
        driver.spawn(self._accept_loop)

    # ------------------------------------------------------------ sending

    def send(self, host: str, address: str, token: str, data: bytes) -> bool:
        """Send one inbox message to process ``host`` over its link.

        :param address: its announced ``ip:port``.
        :param token: its announced token.
        :returns: False when there is no working link (the caller uses the broker).
        """
        link = self._links.get(host) or self._connect(host, address, token)
        if link is not None and link.send(_LENGTH.pack(len(data)) + data):
            self.counts["sent"] += 1
            return True
        if link is not None:
            self._drop(host, link)
        self.counts["fallbacks"] += 1
        return False

    def forget(self, host: str) -> None:
        """Process ``host`` left the bus: close its link."""
        link = self._links.get(host)
        if link is not None:
            self._drop(host, link)
        self._failed.pop(host, None)

    def close(self) -> None:
        """Stop listening and close every link."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for host, link in list(self._links.items()):
            self._drop(host, link)
        for sock in list(self._inbound):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _closed_by_peer(self, host: str, link: _Link) -> None:
        self._drop(host, link)
        if self.lost is not None and not self._closed:
            try:
                self.lost(host)
            except Exception:
                logger.exception("error handling a lost direct link")

    def _drop(self, host: str, link: _Link) -> None:
        with self._lock:
            if self._links.get(host) is link:
                del self._links[host]
        link.close()

    def _connect(self, host: str, address: str, token: str) -> _Link | None:
        if self._closed:
            return None
        failed = self._failed.get(host)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER:
            return None
        done = self.driver.event()
        with self._lock:
            waiting = self._connecting.setdefault(host, done)
        if waiting is not done:  # another task connects: wait for it
            waiting.wait(CONNECT_TIMEOUT * 2)
            return self._links.get(host)
        try:
            link = self._open(host, address, token)
            if link is None:
                self._failed[host] = time.monotonic()
            else:
                with self._lock:
                    self._links[host] = link
                self._failed.pop(host, None)
                self.driver.spawn(link.write_loop)
                self.driver.spawn(link.watch, lambda: self._closed_by_peer(host, link))
            return link
        finally:
            with self._lock:
                self._connecting.pop(host, None)
            done.set()

    def _open(self, host: str, address: str, token: str) -> _Link | None:
        ip, _, port = address.rpartition(":")
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((ip.strip("[]"), int(port)), CONNECT_TIMEOUT)
            sock.sendall(MAGIC + token.encode("ascii") + self.host_id.encode("ascii"))
            if _read(sock, _HOST_ID) != host.encode("ascii"):
                raise ConnectionError(f"{address} is not {host}")
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            logger.info("no direct link to %s at %s (%s): through the broker", host, address, exc)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
            return None
        return _Link(sock, self.driver)

    # ------------------------------------------------------------ receiving

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed:
                    return
                self.driver.sleep(ACCEPT_POLL)  # out of descriptors, say: try again later
                continue
            self.driver.spawn(self._read_loop, sock)

    def _read_loop(self, sock: socket.socket) -> None:
        self._inbound.add(sock)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            hello = _read(sock, len(MAGIC) + _TOKEN + _HOST_ID)
            token = hello[len(MAGIC) : len(MAGIC) + _TOKEN]
            if hello[: len(MAGIC)] != MAGIC or not hmac.compare_digest(
                token, self.token.encode("ascii")
            ):
                logger.warning("refused a direct link that did not show this process's token")
                return
            sock.sendall(self.host_id.encode("ascii"))
            sock.settimeout(None)
            reader = sock.makefile("rb", buffering=65536)
            while not self._closed:
                head = reader.read(_LENGTH.size)
                if len(head) < _LENGTH.size:
                    return
                (length,) = _LENGTH.unpack(head)
                if length > MAX_FRAME:
                    logger.warning("cut a direct link that sent a %d-byte frame", length)
                    return
                data = reader.read(length)
                if len(data) < length:
                    return
                self.counts["received"] += 1
                try:
                    self.deliver(data)
                except Exception:  # one bad message must not stop the link
                    logger.exception("error handling a direct link message")
        except (OSError, ValueError):
            return
        finally:
            self._inbound.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()


def _read(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes (fewer only at end of stream)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
