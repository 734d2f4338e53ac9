"""An outgoing message, built once and handed to every recipient (no I/O here).

A broadcast to a thousand clients is one :class:`Outgoing`: its Engine.IO items
are prefixed once, and its WebSocket frames and its polling text are built the
first time a recipient's transport asks for them, then reused by all the others.
A session's outbox is a list of these objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..protocol import websocket as ws
from ..protocol.deflate import PerMessageDeflate
from ..protocol.eio import CLOSE, MESSAGE_PREFIX, NOOP, PING, Wire, encode_payload

__all__ = ["Outgoing", "PING_OUT", "NOOP_OUT", "CLOSE_OUT"]


_DEFAULT_WINDOW = 15


def _frame(item: Wire) -> bytes:
    return ws.encode_binary(item) if isinstance(item, bytes) else ws.encode_text(item)


def _deflated_frame(item: Wire, deflate: PerMessageDeflate) -> bytes:
    """The frame of one packet, compressed when it reaches the threshold."""
    binary = isinstance(item, bytes)
    data = item if isinstance(item, bytes) else item.encode("utf-8")
    if len(data) < deflate.threshold:
        return ws.encode_data(data, binary)
    return ws.encode_compressed(deflate.compress(data), binary)


class Outgoing:
    """Engine.IO packets to send together, in order, with their encodings cached.

    Treat it as immutable once built: the same object may sit in many outboxes.
    Two threads asking for the same encoding at once may both build it; they
    build the same bytes, so either result is kept.

    :param items: the packets' wire forms (text with its type digit, or bytes
        for a binary message).
    :param compress: False: never compressed, even where permessage-deflate is on
        (Node's ``socket.compress(false)``).
    """

    __slots__ = ("items", "size", "compress", "_frames", "_deflated", "_text")

    def __init__(self, items: Sequence[Wire], compress: bool = True) -> None:
        self.items = items
        #: what the packets weigh against ``max_pending_bytes``
        self.size = len(items[0]) if len(items) == 1 else sum(map(len, items))
        self.compress = compress
        self._frames: bytes | None = None
        self._deflated: bytes | None = None  # for the default window and threshold
        self._text: str | None = None

    @classmethod
    def messages(cls, messages: Sequence[Wire], compress: bool = True) -> Outgoing:
        """MESSAGE packets carrying ``messages`` (str: text, bytes: binary)."""
        if len(messages) == 1:  # most packets: no binary attachment
            first = messages[0]
            return cls((first if isinstance(first, bytes) else MESSAGE_PREFIX + first,), compress)
        items = tuple(m if isinstance(m, bytes) else MESSAGE_PREFIX + m for m in messages)
        return cls(items, compress)

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

    def deflated_frames(self, deflate: PerMessageDeflate) -> bytes:
        """The frames for a connection with permessage-deflate: each packet of at
        least ``deflate.threshold`` bytes compressed on its own (cached for the
        default window, so a broadcast compresses once; the threshold is the
        server's, the same for all its connections)."""
        if not self.compress or not deflate.compresses:
            return self.frames()
        shared = deflate.window_bits == _DEFAULT_WINDOW
        if shared and self._deflated is not None:
            return self._deflated
        frames = b"".join(_deflated_frame(item, deflate) for item in self.items)
        if shared:
            self._deflated = frames
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
