"""Socket.IO v5 packet codec (pure: no I/O, no clock).

Text wire format (default JSON serializer)::

    <type>[<attachments>-][<namespace>,][<ack id>][<json payload>]

The namespace is omitted for ``/``. ``encode`` moves every ``bytes`` value found
in the payload into a binary attachment, leaving ``{"_placeholder": true, "num": i}``
in its place, and turns EVENT/ACK into BINARY_EVENT/BINARY_ACK. ``decode`` parses the
text part; when the packet announces attachments, feed the binary messages that
follow to an :class:`AttachmentAssembler`.

With a whole-packet serializer (msgpack) each packet is a single binary message
holding the map ``{type, nsp, data, id}`` and never has attachments.

Examples::

    >>> from sio_wsgi.protocol.serializers import JSONSerializer
    >>> encode(Packet(PacketType.EVENT, data=["foo"]), JSONSerializer())
    ['42["foo"]']
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable, Iterator

from sio_wsgi.config import DEFAULTS, ServerOptions
from sio_wsgi.exceptions import LocalProtocolError, RemoteProtocolError
from sio_wsgi.protocol.serializers import Payload, Serializer

__all__ = [
    "PacketType",
    "Packet",
    "Limits",
    "AttachmentAssembler",
    "RESERVED_EVENTS",
    "MAX_ACK_ID_DIGITS",
    "encode",
    "decode",
]

RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
"""Event names a peer may not send (the socket.io-parser list)."""

MAX_ACK_ID_DIGITS = 15
"""Longest accepted ack id, in decimal digits."""

_MAX_ATTACHMENT_DIGITS = 6
_DIGITS = frozenset("0123456789")


class PacketType(enum.IntEnum):
    """Socket.IO packet types."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_BINARY_TYPES = frozenset({PacketType.BINARY_EVENT, PacketType.BINARY_ACK})
_ID_TYPES = frozenset(
    {PacketType.EVENT, PacketType.ACK, PacketType.BINARY_EVENT, PacketType.BINARY_ACK}
)
_TO_BINARY = {PacketType.EVENT: PacketType.BINARY_EVENT, PacketType.ACK: PacketType.BINARY_ACK}
_FROM_BINARY = {v: k for k, v in _TO_BINARY.items()}


@dataclasses.dataclass(slots=True)
class Packet:
    """One Socket.IO packet. Treat it as immutable: one packet may be shared by
    several recipients. (Not ``frozen``: a frozen dataclass takes four times as
    long to build, and two are built for every event with an ack.)

    :param namespace: the namespace, starting with ``/``.
    :param data: the payload (for events: ``[name, *args]``; for acks: ``[*args]``).
    :param id: the ack id, or ``None``.
    :param attachments: binary attachments still to be received (decode side).
    """

    type: PacketType
    namespace: str = "/"
    data: Payload = None
    id: int | None = None
    attachments: int = 0


@dataclasses.dataclass(frozen=True)
class Limits:
    """Decoder limits.

    :param max_attachments: attachments accepted per packet
        (:attr:`ServerOptions.max_attachments`).
    :param max_json_depth: nesting depth accepted in payloads
        (:attr:`ServerOptions.max_json_depth`).
    """

    max_attachments: int = DEFAULTS.max_attachments
    max_json_depth: int = DEFAULTS.max_json_depth

    @classmethod
    def from_options(cls, options: ServerOptions) -> Limits:
        """Build the limits from server options.

        :returns: the matching limits.
        """
        return cls(options.max_attachments, options.max_json_depth)


# --------------------------------------------------------------------------- encode


def _deconstruct(value: Payload, buffers: list[bytes]) -> Payload:
    """Copy ``value`` with every binary value replaced by a placeholder."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, (list, tuple)):
        return [_deconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, buffers) for key, item in value.items()}
    return value


#: the types :func:`_is_flat` accepts in a payload list (exact types: no subclass)
_SCALARS = frozenset({str, int, float, bool, type(None)})
#: each packet type's code as text
_TYPE_TEXT = {packet_type: str(int(packet_type)) for packet_type in PacketType}


def _is_flat(value: Payload) -> bool:
    """Whether ``value`` is None or a list of scalars: JSON as it is, nothing to
    replace nor copy (the arguments of most events and acks)."""
    if value is None:
        return True
    if type(value) is not list:
        return False
    return all(type(item) in _SCALARS for item in value)


def _plain(value: Payload) -> Payload:
    """Copy ``value`` with tuples turned into lists and buffers into bytes."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _check_outgoing(packet: Packet) -> None:
    if not packet.namespace.startswith("/") or "," in packet.namespace:
        raise LocalProtocolError(f"invalid namespace {packet.namespace!r}")
    if packet.id is not None and (packet.id < 0 or len(str(packet.id)) > MAX_ACK_ID_DIGITS):
        raise LocalProtocolError(f"invalid ack id {packet.id!r}")


def _encode_whole(packet: Packet, serializer: Serializer) -> list[str | bytes]:
    packet_type = _FROM_BINARY.get(packet.type, packet.type)
    obj: dict[str, Payload] = {"type": int(packet_type), "nsp": packet.namespace}
    if packet.data is not None:
        obj["data"] = _plain(packet.data)
    if packet.id is not None:
        obj["id"] = packet.id
    return [serializer.dumps(obj)]


def encode(packet: Packet, serializer: Serializer) -> list[str | bytes]:
    """Encode a packet into Engine.IO message payloads.

    :param packet: the packet; ``attachments`` is ignored (computed here).
    :returns: the text packet followed by its binary attachments (text
        serializers), or a single binary message (whole-packet serializers).
    :raises LocalProtocolError: for an invalid namespace or ack id, or a payload
        the serializer cannot encode.
    """
    _check_outgoing(packet)
    if serializer.whole_packet:
        return _encode_whole(packet, serializer)
    data = packet.data
    # the common case, an event or ack of scalars on the main namespace: no walk, no copy
    if packet.namespace == "/" and packet.type not in _BINARY_TYPES and _is_flat(data):
        head = _TYPE_TEXT[packet.type]
        if packet.id is not None:
            head += str(packet.id)
        return [head if data is None else head + str(serializer.dumps(data))]
    buffers: list[bytes] = []
    data = packet.data if packet.data is None else _deconstruct(packet.data, buffers)
    packet_type = packet.type
    if buffers:
        packet_type = _TO_BINARY.get(packet_type, packet_type)
        if packet_type not in _BINARY_TYPES:
            raise LocalProtocolError(f"{packet_type.name} packets cannot carry binary data")
    parts = [str(int(packet_type))]
    if packet_type in _BINARY_TYPES:
        parts.append(f"{len(buffers)}-")
    if packet.namespace != "/":
        parts.append(packet.namespace + ",")
    if packet.id is not None:
        parts.append(str(packet.id))
    if data is not None:
        parts.append(str(serializer.dumps(data)))
    return ["".join(parts), *buffers]


# --------------------------------------------------------------------------- decode


def _depth(value: object) -> int:
    """Nesting depth of containers in ``value`` (iterative)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _fail(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message)


def _check_event(packet: Packet) -> None:
    data = packet.data
    if not isinstance(data, list) or not data:
        raise _fail("event payload must be a non-empty array")
    if not isinstance(data[0], str):
        raise _fail("event name must be a string")
    if data[0] in RESERVED_EVENTS:
        raise _fail(f"reserved event name {data[0]!r}")


def _check_ack(packet: Packet) -> None:
    if packet.id is None:
        raise _fail("ack packet without an id")
    if not isinstance(packet.data, list):
        raise _fail("ack payload must be an array")


def _check_connect(packet: Packet) -> None:
    if packet.data is not None and not isinstance(packet.data, dict):
        raise _fail("connect payload must be an object")


def _check_disconnect(packet: Packet) -> None:
    if packet.data is not None:
        raise _fail("disconnect packet with a payload")


def _check_connect_error(packet: Packet) -> None:
    if not isinstance(packet.data, (dict, str)):
        raise _fail("connect_error payload must be an object or a string")


_VALIDATORS: dict[PacketType, Callable[[Packet], None]] = {
    PacketType.CONNECT: _check_connect,
    PacketType.DISCONNECT: _check_disconnect,
    PacketType.EVENT: _check_event,
    PacketType.ACK: _check_ack,
    PacketType.CONNECT_ERROR: _check_connect_error,
    PacketType.BINARY_EVENT: _check_event,
    PacketType.BINARY_ACK: _check_ack,
}


def _too_deep(data: object, limits: Limits, body: str | None) -> bool:
    """Whether ``data`` nests deeper than allowed; with the JSON ``body`` it came from,
    the walk runs only when the body has more brackets than the limit."""
    if body is not None and body.count("[") + body.count("{") <= limits.max_json_depth:
        return False
    return data is not None and _depth(data) > limits.max_json_depth


def _validate(packet: Packet, limits: Limits, body: str | None = None) -> Packet:
    if not packet.namespace.startswith("/"):
        raise _fail("namespace must start with '/'")
    if packet.id is not None and packet.type not in _ID_TYPES:
        raise _fail(f"{packet.type.name} packets cannot carry an ack id")
    if _too_deep(packet.data, limits, body):
        raise _fail("payload nested too deeply")
    _VALIDATORS[packet.type](packet)
    return packet


class _Cursor:
    """Reads the header of a text packet left to right."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def digits(self, limit: int) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _DIGITS:
            self.pos += 1
            if self.pos - start > limit:
                raise _fail("number too long")
        return self.text[start : self.pos]

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def until_comma(self) -> str:
        end = self.text.find(",", self.pos)
        if end < 0:
            value, self.pos = self.text[self.pos :], len(self.text)
        else:
            value, self.pos = self.text[self.pos : end], end + 1
        return value

    def rest(self) -> str:
        return self.text[self.pos :]


_TYPES_BY_CODE = tuple(sorted(PacketType))


def _packet_type(code: object) -> PacketType:
    if isinstance(code, bool) or not isinstance(code, int):
        raise _fail("packet type must be an integer")
    if 0 <= code < len(_TYPES_BY_CODE):
        return _TYPES_BY_CODE[code]
    raise _fail(f"unknown packet type {code!r}")


def _read_attachments(cursor: _Cursor, limits: Limits) -> int:
    count = cursor.digits(_MAX_ATTACHMENT_DIGITS)
    if not count or cursor.peek() != "-":
        raise _fail("binary packet without an attachment count")
    cursor.pos += 1
    attachments = int(count)
    if attachments > limits.max_attachments:
        raise _fail(f"too many attachments ({attachments})")
    return attachments


#: the head of the packets clients send most, an EVENT or ACK on the main namespace
#: with its JSON array right after the type and ack id: ``2["chat",...]``, ``212[...]``
_PLAIN_HEAD = re.compile(f"([23])([0-9]{{0,{MAX_ACK_ID_DIGITS}}})(?=\\[)")
_PLAIN_CHECKS: dict[str, tuple[PacketType, Callable[[Packet], None]]] = {
    "2": (PacketType.EVENT, _check_event),
    "3": (PacketType.ACK, _check_ack),
}


def _decode_plain(text: str, serializer: Serializer, limits: Limits) -> Packet | None:
    """The fast path of :func:`_decode_text` for what :data:`_PLAIN_HEAD` matches
    (no cursor object, none of the checks it makes certain); None otherwise."""
    head = _PLAIN_HEAD.match(text)
    if head is None:
        return None
    packet_type, check = _PLAIN_CHECKS[head[1]]
    digits = head[2]
    body = text[head.end() :]
    packet = Packet(packet_type, "/", serializer.loads(body), int(digits) if digits else None)
    if _too_deep(packet.data, limits, body):
        raise _fail("payload nested too deeply")
    check(packet)
    return packet


def _decode_text(text: str, serializer: Serializer, limits: Limits) -> Packet:
    plain = _decode_plain(text, serializer, limits)
    if plain is not None:
        return plain
    if not text or text[0] not in _DIGITS:
        raise _fail("missing packet type")
    packet_type = _packet_type(int(text[0]))
    cursor = _Cursor(text)
    cursor.pos = 1
    attachments = _read_attachments(cursor, limits) if packet_type in _BINARY_TYPES else 0
    namespace = cursor.until_comma() if cursor.peek() == "/" else "/"
    ack_digits = cursor.digits(MAX_ACK_ID_DIGITS) if packet_type in _ID_TYPES else ""
    body = cursor.rest()
    data = serializer.loads(body) if body else None
    packet = Packet(
        packet_type, namespace, data, int(ack_digits) if ack_digits else None, attachments
    )
    packet = _validate(packet, limits, body)
    if packet_type in _BINARY_TYPES:  # with 0 attachments too: no placeholder may remain
        _check_placeholders(packet.data, attachments)
    return packet


def _decode_whole(raw: str | bytes, serializer: Serializer, limits: Limits) -> Packet:
    obj = serializer.loads(raw)
    if not isinstance(obj, dict) or not set(obj) <= {"type", "nsp", "data", "id"}:
        raise _fail("packet must be a map of type, nsp, data and id")
    packet_type = _packet_type(obj.get("type"))
    if packet_type in _BINARY_TYPES:
        raise _fail("binary packet types are not used with this serializer")
    namespace = obj.get("nsp", "/")
    ack_id = obj.get("id")
    if not isinstance(namespace, str):
        raise _fail("namespace must be a string")
    if ack_id is not None and (
        isinstance(ack_id, bool)
        or not isinstance(ack_id, int)
        or not 0 <= ack_id < 10**MAX_ACK_ID_DIGITS
    ):
        raise _fail("invalid ack id")
    return _validate(Packet(packet_type, namespace, obj.get("data"), ack_id), limits)


def decode(data: str | bytes, serializer: Serializer, limits: Limits | None = None) -> Packet:
    """Decode one Socket.IO packet.

    :param data: one Engine.IO message (text for text serializers).
    :param limits: decoder limits; :class:`Limits` defaults when ``None``.
    :returns: the packet; when ``packet.attachments`` is non-zero its payload still
        holds placeholders: feed the following binary messages to
        ``AttachmentAssembler(packet)``.
    :raises RemoteProtocolError: for anything invalid.
    """
    limits = limits or Limits()
    if serializer.whole_packet:
        return _decode_whole(data, serializer, limits)
    if not isinstance(data, str):
        raise _fail("unexpected binary message")
    return _decode_text(data, serializer, limits)


# --------------------------------------------------------------------------- binary


def _placeholder_num(value: dict[object, object]) -> int | None:
    """The placeholder index of ``value``, ``None`` when it is plain data."""
    if value.get("_placeholder") is not True:
        return None
    num = value.get("num")
    if len(value) != 2 or isinstance(num, bool) or not isinstance(num, int):
        raise _fail("malformed binary placeholder")
    return num


def _walk_dicts(value: object) -> Iterator[dict[object, object]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_placeholders(data: object, attachments: int) -> None:
    seen: set[int] = set()
    for item in _walk_dicts(data):
        num = _placeholder_num(item)
        if num is None:
            continue
        if not 0 <= num < attachments or num in seen:
            raise _fail(f"invalid placeholder number {num}")
        seen.add(num)


def _reconstruct(value: Payload, buffers: list[bytes]) -> Payload:
    if isinstance(value, list):
        return [_reconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        num = _placeholder_num(value)
        if num is not None:
            return buffers[num]
        return {key: _reconstruct(item, buffers) for key, item in value.items()}
    return value


class AttachmentAssembler:
    """Collects the binary attachments announced by a decoded packet.

    :param packet: a packet returned by :func:`decode` with ``attachments > 0``.

    Example::

        assembler = AttachmentAssembler(packet)
        for message in binary_messages:
            complete = assembler.add(message)
        # complete is the packet with the bytes in place of the placeholders
    """

    def __init__(self, packet: Packet) -> None:
        self.packet = packet
        self._buffers: list[bytes] = []

    @property
    def done(self) -> bool:
        """Whether every announced attachment arrived."""
        return len(self._buffers) >= self.packet.attachments

    def add(self, data: str | bytes) -> Packet | None:
        """Add the next attachment.

        :param data: the next Engine.IO message.
        :returns: the completed packet (``attachments == 0``) after the last
            attachment, else ``None``.
        :raises RemoteProtocolError: when ``data`` is not binary or nothing is expected.
        """
        if not isinstance(data, bytes):
            raise _fail("expected a binary attachment")
        if self.done:
            raise _fail("unexpected binary attachment")
        self._buffers.append(data)
        if len(self._buffers) < self.packet.attachments:
            return None
        data_ = _reconstruct(self.packet.data, self._buffers)
        return dataclasses.replace(self.packet, data=data_, attachments=0)
