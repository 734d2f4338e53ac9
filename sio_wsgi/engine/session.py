"""One Engine.IO session: its lifecycle, its outbox and the transport carrying it.

The lifecycle is an explicit table (:data:`TRANSITIONS`): a session is OPENING
while the handler decides on it, OPEN once accepted, UPGRADING while a
WebSocket probes it, CLOSING from the moment it is closed (nothing new is
queued; the transport still flushes what was) and CLOSED once its transport is
done with it. Every change goes through :meth:`EngineSession.apply`.

The outbox holds :class:`~sio_wsgi.engine.outgoing.Outgoing` objects. The
session's :attr:`~EngineSession.connection` (the polling slot or the WebSocket,
see :class:`~sio_wsgi.engine.ports.Connection`) drains it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ..runtime.base import Driver, Timer
from .outgoing import Outgoing

if TYPE_CHECKING:
    from .ports import Connection, DisconnectReason, Environ, UpgradeCandidate

__all__ = ["State", "Transition", "TRANSITIONS", "PushResult", "EngineSession"]


class State(enum.Enum):
    """Lifecycle of a session."""

    OPENING = "opening"
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSING = "closing"
    CLOSED = "closed"


class Transition(enum.Enum):
    """What can happen to a session."""

    ACCEPT = "accept"  # the handler accepted the handshake
    REFUSE = "refuse"  # the handler refused it
    START_UPGRADE = "start upgrade"  # a WebSocket arrived for a polling session
    FINISH_UPGRADE = "finish upgrade"  # the client sent "5": the WebSocket carries it
    CANCEL_UPGRADE = "cancel upgrade"  # the probe failed or timed out
    CLOSE = "close"  # either side closed it, or it failed
    FINISH = "finish"  # its transport has written all it will


TRANSITIONS: dict[tuple[State, Transition], State] = {
    (State.OPENING, Transition.ACCEPT): State.OPEN,
    (State.OPENING, Transition.REFUSE): State.CLOSED,
    (State.OPENING, Transition.CLOSE): State.CLOSING,
    (State.OPEN, Transition.START_UPGRADE): State.UPGRADING,
    (State.OPEN, Transition.CLOSE): State.CLOSING,
    (State.UPGRADING, Transition.FINISH_UPGRADE): State.OPEN,
    (State.UPGRADING, Transition.CANCEL_UPGRADE): State.OPEN,
    (State.UPGRADING, Transition.CLOSE): State.CLOSING,
    (State.CLOSING, Transition.FINISH): State.CLOSED,
}
"""``(state, transition) -> next state``; a pair that is missing is not allowed."""

_ENDED = (State.CLOSING, State.CLOSED)


class PushResult(enum.Enum):
    """What :meth:`EngineSession.push` did."""

    QUEUED = "queued"
    DROPPED = "dropped"  # closed, or volatile and the client cannot take it now
    OVERFLOW = "overflow"  # over ``max_pending_bytes``: the client is not reading


class EngineSession:
    """State of one client connection, shared by its transports.

    :param sid: the Engine.IO session id.
    :param transport: ``"polling"`` or ``"websocket"``.
    :param environ: the WSGI environ of the handshake request.
    :param driver: where the lock comes from.
    :param max_pending_bytes: queued bytes beyond which a push overflows.
    :param connection: the transport carrying the session from the start, if known.
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
        "connection",
        "close_reason",
        "ping_timer",
        "pong_timer",
        "pong_deadline",
        "upgrade_timer",
        "probe",
    )

    def __init__(
        self,
        sid: str,
        transport: str,
        environ: Environ,
        driver: Driver,
        max_pending_bytes: int,
        connection: Connection | None = None,
    ) -> None:
        self.sid = sid
        self.transport = transport
        self.environ = environ
        self.state = State.OPENING
        self.outbox: list[Outgoing] = []
        self.pending_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.lock = driver.lock()
        self.connection = connection
        self.close_reason: DisconnectReason | None = None
        self.ping_timer: Timer | None = None
        self.pong_timer: Timer | None = None
        self.pong_deadline: float | None = None  # monotonic time a pong is due by
        self.upgrade_timer: Timer | None = None
        #: the WebSocket that answered "2probe", until its upgrade ends (a GET
        #: during the upgrade asks it whether the client's "5" is on its way)
        self.probe: UpgradeCandidate | None = None

    @property
    def closed(self) -> bool:
        """True once the session is closing or closed."""
        return self.state in _ENDED

    def apply(self, transition: Transition) -> bool:
        """Take ``transition`` if the table allows it from the current state.

        The caller holds :attr:`lock`.

        :returns: whether the state changed.
        """
        new = TRANSITIONS.get((self.state, transition))
        if new is None:
            return False
        self.state = new
        return True

    def transition(self, transition: Transition) -> bool:
        """:meth:`apply` under :attr:`lock`."""
        with self.lock:
            return self.apply(transition)

    def push(self, out: Outgoing, volatile: bool = False) -> PushResult:
        """Queue ``out`` (atomically, after what is queued); the caller then
        kicks the connection when it was queued."""
        with self.lock:
            if self.state in _ENDED:
                return PushResult.DROPPED
            if volatile and not self._writable():
                return PushResult.DROPPED
            if self.outbox and self.pending_bytes + out.size > self.max_pending_bytes:
                return PushResult.OVERFLOW
            self.outbox.append(out)
            self.pending_bytes += out.size
        return PushResult.QUEUED

    def _writable(self) -> bool:
        """Can the client take a packet right now (for volatile sends)? Open,
        nothing queued, and its connection ready (a GET waiting, an idle writer)."""
        conn = self.connection
        return self.state is State.OPEN and not self.outbox and conn is not None and conn.writable()

    def take(self) -> list[Outgoing]:
        """Take everything queued; the caller holds :attr:`lock`."""
        items = self.outbox
        if items:
            self.outbox = []
            self.pending_bytes = 0
        return items

    def close(self, reason: DisconnectReason) -> bool:
        """Move to CLOSING and stop the session's timers.

        :returns: False when it was already closing or closed.
        """
        with self.lock:
            if not self.apply(Transition.CLOSE):
                return False
            self.close_reason = reason
        for timer in (self.ping_timer, self.pong_timer, self.upgrade_timer):
            if timer is not None:
                timer.cancel()
        return True
