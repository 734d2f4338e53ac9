"""One Engine.IO session: its state, its outbox and who may write to it now.

The outbox holds :data:`~sio_wsgi.protocol.eio.Wire` items (text packets with
their type digit, or bytes for binary messages). Whichever transport owns the
session drains it: a polling GET (woken through ``wake``), or the WebSocket
connection (told through its ``kick()``). ``wake`` is set whenever there is
something for a GET to drain or the session is closing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from typing import Any

from ..protocol.eio import Wire
from ..runtime.base import Driver
from ..runtime.scheduler import TimerHandle

__all__ = ["State", "EngineSession"]

logger = logging.getLogger(__name__)


class State(enum.Enum):
    """Lifecycle of a session."""

    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSED = "closed"


def _size(item: Wire) -> int:
    return len(item)


class EngineSession:
    """State of one client connection, shared by its transports.

    :param sid: the Engine.IO session id.
    :param transport: ``"polling"`` or ``"websocket"``.
    :param environ: the WSGI environ of the handshake request.
    :param driver: concurrency driver (lock and event).
    :param max_pending_bytes: queued bytes beyond which a non-volatile send closes the session.
    """

    __slots__ = (
        "sid",
        "transport",
        "environ",
        "state",
        "outbox",
        "pending_bytes",
        "max_pending_bytes",
        "lock",
        "wake",
        "polling_get",
        "polling_post",
        "write_state",
        "ws_attached",
        "close_reason",
        "close_packet",
        "ping_timer",
        "pong_timer",
        "pong_deadline",
        "upgrade_timer",
        "extra",
    )

    def __init__(
        self,
        sid: str,
        transport: str,
        environ: dict[str, Any],
        driver: Driver,
        max_pending_bytes: int,
    ) -> None:
        self.sid = sid
        self.transport = transport
        self.environ = environ
        self.state = State.OPEN
        self.outbox: list[Wire] = []
        self.pending_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.lock = driver.lock()
        self.wake = driver.event()
        self.polling_get = False
        self.polling_post = False
        self.write_state = 0  # WebSocket: 0 idle, else someone is writing
        self.ws_attached = False
        self.close_reason: str | None = None
        self.close_packet = False
        self.ping_timer: TimerHandle | None = None
        self.pong_timer: TimerHandle | None = None
        self.pong_deadline: float | None = None  # monotonic time a pong is due by
        self.upgrade_timer: TimerHandle | None = None
        self.extra: Any = None

    @property
    def closed(self) -> bool:
        """True once the session is closed (or closing)."""
        return self.state is State.CLOSED

    def writable(self) -> bool:
        """Can the client take a packet right now (for volatile sends)?

        Polling: a GET is waiting and nothing is queued. WebSocket: nothing is
        queued and the writer is not in the middle of a write.
        """
        if self.state is not State.OPEN or self.outbox:
            return False
        if self.transport == "websocket":
            return self.ws_attached and self.write_state == 0
        return self.polling_get

    def push(self, items: Sequence[Wire], volatile: bool = False) -> bool | None:
        """Queue ``items`` atomically. Returns True when queued, False when dropped,
        and None when the client is too far behind (the caller closes the session)."""
        with self.lock:
            if self.state is State.CLOSED:
                return False
            if volatile and not self.writable():
                return False
            size = sum(map(_size, items))
            if self.pending_bytes + size > self.max_pending_bytes and self.outbox:
                return None
            self.outbox.extend(items)
            self.pending_bytes += size
            attached = self.ws_attached
        if not attached:  # polling (or upgrading): wake the waiting GET
            self.wake.set()
        return True

    def drain(self) -> list[Wire]:
        """Take everything queued."""
        with self.lock:
            items = self.outbox
            self.outbox = []
            self.pending_bytes = 0
            self.wake.clear()
            if self.state is State.CLOSED:
                self.wake.set()
        return items

    def mark_closed(self, reason: str, send_close_packet: bool) -> bool:
        """Move to CLOSED; return False when it already was."""
        with self.lock:
            if self.state is State.CLOSED:
                return False
            self.state = State.CLOSED
            self.close_reason = reason
            self.close_packet = send_close_packet
        for timer in (self.ping_timer, self.pong_timer, self.upgrade_timer):
            if timer is not None:
                timer.cancel()
        self.wake.set()
        return True
