"""The session relay's messages, as bytes (no I/O).

Every message goes to one process's inbox and starts with
:data:`~sio_wsgi.engine.ports.DIRECT_MESSAGE_PREFIX`, then: the kind (one byte),
the sender's and the addressee's host ids (:data:`HOST_ID_LENGTH` hex digits each;
a process drops what is not addressed to it), the request id (16 hex digits),
then the payload: for requests and responses a 4-byte big-endian header length,
a JSON header and the body; for stream data the bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple

from .ports import DIRECT_MESSAGE_PREFIX

__all__ = [
    "HOST_ID_LENGTH",
    "REQUEST",
    "ACK",
    "RESPONSE",
    "UPGRADED",
    "DATA",
    "END",
    "Message",
    "message",
    "parse",
    "with_header",
    "split_header",
]

#: length of a host id (hex digits), the prefix of every session id of that host
HOST_ID_LENGTH = 16
#: length of a request id (hex digits)
RID_LENGTH = 16

#: a request for a session of the addressee (front to owner)
REQUEST = b"Q"
#: the owner serves the request, its answer will take a while (a long-poll)
ACK = b"A"
#: the owner's HTTP answer
RESPONSE = b"R"
#: the owner accepted a WebSocket upgrade: the payload is the 101 head; a stream follows
UPGRADED = b"U"
#: stream bytes
DATA = b"D"
#: the sender's side of a stream is over
END = b"E"

_PREFIX = len(DIRECT_MESSAGE_PREFIX)
#: bytes before the payload
HEAD = _PREFIX + 1 + 2 * HOST_ID_LENGTH + RID_LENGTH
_LENGTH = struct.Struct(">I")


class Message(NamedTuple):
    """One relay message, parsed."""

    kind: bytes
    sender: str
    to: bytes  # the addressee's host id, as bytes (compared, never decoded)
    rid: str
    payload: bytes


def message(kind: bytes, sender: str, to: str, rid: str, payload: bytes = b"") -> bytes:
    """One relay message, ready for an inbox."""
    return b"".join(
        (
            DIRECT_MESSAGE_PREFIX,
            kind,
            sender.encode("ascii"),
            to.encode("ascii"),
            rid.encode("ascii"),
            payload,
        )
    )


def parse(raw: bytes) -> Message | None:
    """The parts of a relay message (None: too short to be one)."""
    if len(raw) < HEAD:
        return None
    start = _PREFIX + 1
    return Message(
        kind=raw[_PREFIX:start],
        sender=raw[start : start + HOST_ID_LENGTH].decode("ascii", "replace"),
        to=raw[start + HOST_ID_LENGTH : start + 2 * HOST_ID_LENGTH],
        rid=raw[start + 2 * HOST_ID_LENGTH : HEAD].decode("ascii", "replace"),
        payload=raw[HEAD:],
    )


def with_header(header: dict[str, Any], body: bytes) -> bytes:
    """A request or response payload: the JSON header, then the body."""
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return _LENGTH.pack(len(encoded)) + encoded + body


def split_header(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """The header and body of a request or response payload.

    :raises ValueError: (or :class:`struct.error`) when it does not parse.
    """
    (length,) = _LENGTH.unpack_from(payload)
    end = _LENGTH.size + length
    header = json.loads(payload[_LENGTH.size : end])
    if not isinstance(header, dict):
        raise ValueError("relay header is not an object")
    return header, payload[end:]
