"""Engine.IO v4 packets and polling payloads (pure, stdlib only).

A packet on the wire is either text -- one type digit followed by its data
(``"4hello"``, ``"2"``, ``"3probe"``) -- or, for a binary message, raw bytes
(a binary WebSocket frame, or ``"b" + base64`` inside a polling payload).
Polling payloads join packets with the record separator ``"\\x1e"``.

Packets travel through the server as :data:`Wire` values: ``str`` for a text
packet including its type digit, ``bytes`` for a binary message.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable
from typing import NamedTuple, Union

from ..exceptions import RemoteProtocolError

__all__ = [
    "PacketType",
    "Packet",
    "Wire",
    "SEPARATOR",
    "PROTOCOL_VERSION",
    "encode_payload",
    "decode_payload",
    "decode_text",
    "decode_wire",
    "encode_packet",
    "message",
    "MESSAGE_PREFIX",
    "PROBE",
    "PING",
    "PING_PROBE",
    "PONG_PROBE",
    "UPGRADE",
    "NOOP",
    "CLOSE",
]

SEPARATOR = "\x1e"

#: the ``EIO`` query parameter of an Engine.IO v4 request
PROTOCOL_VERSION = "4"

Wire = Union[str, bytes]  # noqa: UP007 - a runtime alias, Python 3.10 compatible


class PacketType(enum.IntEnum):
    """Engine.IO v4 packet types."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPES = {str(int(t)): t for t in PacketType}
_DIGITS = {t: str(int(t)) for t in PacketType}

#: the data of the upgrade's probe ping and pong
PROBE = "probe"


def encode_packet(ptype: PacketType, data: str = "") -> str:
    """Return the wire text of a text packet: its type digit, then ``data``."""
    return _DIGITS[ptype] + data


#: what a text MESSAGE packet starts with on the wire
MESSAGE_PREFIX = encode_packet(PacketType.MESSAGE)
#: the wire text of the packets the server sends without data
PING = encode_packet(PacketType.PING)
NOOP = encode_packet(PacketType.NOOP)
CLOSE = encode_packet(PacketType.CLOSE)
UPGRADE = encode_packet(PacketType.UPGRADE)
#: the upgrade handshake: the client's probe and the server's answer
PING_PROBE = encode_packet(PacketType.PING, PROBE)
PONG_PROBE = encode_packet(PacketType.PONG, PROBE)


class Packet(NamedTuple):
    """A decoded packet: its type and its data (``str``, or ``bytes`` for a binary message)."""

    type: PacketType
    data: Wire = ""


def message(data: Wire) -> Wire:
    """Return the wire form of a MESSAGE packet carrying ``data``."""
    return data if isinstance(data, bytes) else MESSAGE_PREFIX + data


def decode_text(text: str) -> Packet:
    """Decode one text packet (``"4hello"``).

    :raises RemoteProtocolError: empty text or unknown type.
    """
    ptype = _TYPES.get(text[:1])
    if ptype is None:
        raise RemoteProtocolError(f"invalid Engine.IO packet type in {text[:16]!r}")
    return Packet(ptype, text[1:])


def decode_wire(item: Wire) -> Packet:
    """Decode a WebSocket frame's payload: text is a packet, bytes a binary message."""
    if isinstance(item, bytes):
        return Packet(PacketType.MESSAGE, item)
    return decode_text(item)


def encode_payload(items: Iterable[Wire]) -> str:
    """Join wire items into a polling payload (binary as ``b`` + base64)."""
    return SEPARATOR.join(
        "b" + base64.b64encode(item).decode("ascii") if isinstance(item, bytes) else item
        for item in items
    )


def decode_payload(body: str) -> list[Packet]:
    """Split a polling payload into packets.

    :raises RemoteProtocolError: an empty payload, an empty packet, bad base64 or an unknown type.
    """
    if not body:
        raise RemoteProtocolError("empty payload")
    packets: list[Packet] = []
    for part in body.split(SEPARATOR):
        if part[:1] == "b":
            try:
                data = base64.b64decode(part[1:], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RemoteProtocolError("invalid base64 binary packet") from exc
            packets.append(Packet(PacketType.MESSAGE, data))
        else:
            packets.append(decode_text(part))
    return packets
