"""An outgoing message, built once and handed to every recipient (no I/O here).

A broadcast to a thousand clients is one :class:`Outgoing`: its Engine.IO items
are prefixed once, and its WebSocket frames and its polling text are built the
first time a recipient's transport asks for them, then reused by all the others.
A session's outbox is a list of these objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..protocol import websocket as ws
from ..protocol.eio import CLOSE, MESSAGE_PREFIX, NOOP, PING, Wire, encode_payload

__all__ = ["Outgoing", "PING_OUT", "NOOP_OUT", "CLOSE_OUT"]


def _frame(item: Wire) -> bytes:
    return ws.encode_binary(item) if isinstance(item, bytes) else ws.encode_text(item)


class Outgoing:
    """Engine.IO packets to send together, in order, with their encodings cached.

    Treat it as immutable once built: the same object may sit in many outboxes.
    Two threads asking for the same encoding at once may both build it; they
    build the same bytes, so either result is kept.

    :param items: the packets' wire forms (text with its type digit, or bytes
        for a binary message).
    """

    __slots__ = ("items", "size", "_frames", "_text")

    def __init__(self, items: Sequence[Wire]) -> None:
        self.items = items
        #: what the packets weigh against ``max_pending_bytes``
        self.size = sum(map(len, items))
        self._frames: bytes | None = None
        self._text: str | None = None

    @classmethod
    def messages(cls, messages: Iterable[Wire]) -> Outgoing:
        """MESSAGE packets carrying ``messages`` (str: text, bytes: binary)."""
        return cls(tuple(m if isinstance(m, bytes) else MESSAGE_PREFIX + m for m in messages))

    @classmethod
    def join(cls, parts: Iterable[Outgoing]) -> Outgoing:
        """One object with the items of ``parts``, in order (sent atomically)."""
        return cls(tuple(item for part in parts for item in part.items))

    def frames(self) -> bytes:
        """The WebSocket frames of every item (one frame per packet)."""
        frames = self._frames
        if frames is None:
            items = self.items
            frames = _frame(items[0]) if len(items) == 1 else b"".join(map(_frame, items))
            self._frames = frames
        return frames

    def payload(self) -> str:
        """The items as a polling payload (``\\x1e``-separated, binary as ``b`` + base64)."""
        text = self._text
        if text is None:
            text = encode_payload(self.items)
            self._text = text
        return text

    def __repr__(self) -> str:
        return f"Outgoing({self.items!r})"


def _control(text: str) -> Outgoing:
    out = Outgoing((text,))
    out.frames()
    out.payload()
    return out


#: the packets the engine itself sends, encoded once for the process
PING_OUT = _control(PING)
NOOP_OUT = _control(NOOP)
CLOSE_OUT = _control(CLOSE)
