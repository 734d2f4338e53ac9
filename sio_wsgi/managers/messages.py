"""Typed, versioned messages between server nodes, and their JSON codec.

Every message on the bus is one JSON object (UTF-8)::

    {"v": 1, "type": "emit", "host": "<sender host id>", "data": {...fields...}}

- ``v`` is :data:`WIRE_VERSION`. A node drops (and logs) messages of a version
  it does not speak, so a node of a later release can tell what it receives.
- ``type`` names one of the message classes below (:class:`MessageType`);
  ``data`` holds exactly that class's fields, type-checked on decode.
- Binary values anywhere in ``data`` travel as ``{"$bin": "<base64>"}``; a user
  dict that happens to have the single key ``$bin`` or ``$esc`` is wrapped as
  ``{"$esc": {...}}``, so every value comes back exactly as it was sent.
- There is no pickle, ever: a message that does not parse raises
  :class:`BusMessageError` and the caller logs and drops it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import types
import typing
from typing import Any, ClassVar, Union

from sio_wsgi.exceptions import SioError
from sio_wsgi.protocol.serializers import Payload

__all__ = [
    "WIRE_VERSION",
    "MessageType",
    "BusMessage",
    "BusMessageError",
    "Envelope",
    "Emit",
    "Disconnect",
    "EnterRoom",
    "LeaveRoom",
    "CloseRoom",
    "AckReturn",
    "Query",
    "QueryKind",
    "Reply",
    "ServerEvent",
    "Hello",
    "Bye",
    "encode",
    "decode",
]

WIRE_VERSION = 1
"""Version of the bus format written by this release."""

_BIN = "$bin"
_ESC = "$esc"


class BusMessageError(SioError, ValueError):
    """A bus message that does not parse (bad JSON, version, type or field)."""


class MessageType(str, enum.Enum):
    """The ``type`` of a bus message."""

    EMIT = "emit"
    DISCONNECT = "disconnect"
    ENTER_ROOM = "enter_room"
    LEAVE_ROOM = "leave_room"
    CLOSE_ROOM = "close_room"
    ACK = "ack"
    QUERY = "query"
    REPLY = "reply"
    SERVER_EVENT = "server_event"
    HELLO = "hello"
    BYE = "bye"


class QueryKind(str, enum.Enum):
    """What a :class:`Query` asks for."""

    PARTICIPANTS = "participants"  # sids in a room (or a whole namespace)
    ROOMS = "rooms"  # rooms of one sid


@dataclasses.dataclass(frozen=True)
class Emit:
    """Emit an event to the clients of every node that match ``to`` / ``skip_sid``.

    ``callback_id`` set: each receiving client's ack goes back to the sending
    node as an :class:`AckReturn` with that id.
    """

    TYPE: ClassVar[MessageType] = MessageType.EMIT
    event: str
    args: list[Payload]
    namespace: str
    to: list[str] | None = None
    skip_sid: list[str] | None = None
    callback_id: int | None = None
    volatile: bool = False
    compress: bool = True  # permessage-deflate allowed (absent from older nodes' messages)
    #: connection state recovery: the stream id the shared store gave it (last argument)
    offset: str | None = None


@dataclasses.dataclass(frozen=True)
class Disconnect:
    """Disconnect ``sid`` from ``namespace`` on the node that owns it."""

    TYPE: ClassVar[MessageType] = MessageType.DISCONNECT
    sid: str
    namespace: str


@dataclasses.dataclass(frozen=True)
class EnterRoom:
    """Add ``sid`` to ``room`` on the node that owns it."""

    TYPE: ClassVar[MessageType] = MessageType.ENTER_ROOM
    sid: str
    namespace: str
    room: str


@dataclasses.dataclass(frozen=True)
class LeaveRoom:
    """Remove ``sid`` from ``room`` on the node that owns it."""

    TYPE: ClassVar[MessageType] = MessageType.LEAVE_ROOM
    sid: str
    namespace: str
    room: str


@dataclasses.dataclass(frozen=True)
class CloseRoom:
    """Empty ``room`` on every node."""

    TYPE: ClassVar[MessageType] = MessageType.CLOSE_ROOM
    room: str
    namespace: str


@dataclasses.dataclass(frozen=True)
class AckReturn:
    """A client acknowledged an emit of node ``target``."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    target: str
    callback_id: int
    args: list[Payload]


@dataclasses.dataclass(frozen=True)
class Query:
    """Ask every node about its local state; answered with :class:`Reply`."""

    TYPE: ClassVar[MessageType] = MessageType.QUERY
    request_id: str
    kind: str
    namespace: str
    subject: str | None = None  # the room (PARTICIPANTS) or the sid (ROOMS)


@dataclasses.dataclass(frozen=True)
class Reply:
    """One node's answer to the :class:`Query` ``request_id`` of node ``target``."""

    TYPE: ClassVar[MessageType] = MessageType.REPLY
    target: str
    request_id: str
    result: list[str]


@dataclasses.dataclass(frozen=True)
class ServerEvent:
    """A server-to-server event (``Server.server_side_emit``)."""

    TYPE: ClassVar[MessageType] = MessageType.SERVER_EVENT
    event: str
    args: list[Payload]
    namespace: str


@dataclasses.dataclass(frozen=True)
class Hello:
    """A listening node is alive (sent on subscribe and every heartbeat)."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    reply: bool = False  # True: nodes that hear it answer with a Hello of their own
    #: ``ip:port`` of the node's direct links (:mod:`sio_wsgi.managers.direct`), or ""
    direct: str = ""
    #: the token a direct link to the node must show
    token: str = ""
    #: the node's machine (``socket.gethostname()``): a loopback ``direct`` address
    #: is only reachable from the same one
    machine: str = ""


@dataclasses.dataclass(frozen=True)
class Bye:
    """A node shuts down."""

    TYPE: ClassVar[MessageType] = MessageType.BYE


BusMessage = (
    Emit
    | Disconnect
    | EnterRoom
    | LeaveRoom
    | CloseRoom
    | AckReturn
    | Query
    | Reply
    | ServerEvent
    | Hello
    | Bye
)

_CLASSES: dict[MessageType, type[BusMessage]] = {
    cls.TYPE: cls for cls in typing.get_args(BusMessage)
}


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A message and the host id of the node that sent it."""

    host: str
    message: BusMessage
    version: int = WIRE_VERSION


# ------------------------------------------------------------------ binary tagging


def _tag(value: Payload) -> Payload:
    """Make ``value`` JSON-safe: bytes become ``{"$bin": base64}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BIN: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_tag(item) for item in value]
    if isinstance(value, dict):
        tagged = {key: _tag(item) for key, item in value.items()}
        if len(value) == 1 and (_BIN in value or _ESC in value):
            return {_ESC: tagged}
        return tagged
    return value


def _untag(value: Payload) -> Payload:
    """Inverse of :func:`_tag`."""
    if isinstance(value, list):
        return [_untag(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and _BIN in value:
        try:
            return base64.b64decode(value[_BIN], validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise BusMessageError(f"invalid binary value: {exc}") from exc
    if len(value) == 1 and _ESC in value and isinstance(value[_ESC], dict):
        return {key: _untag(item) for key, item in value[_ESC].items()}
    return {key: _untag(item) for key, item in value.items()}


# ------------------------------------------------------------------ field checks


def _matches(value: object, hint: Any) -> bool:
    """Whether a decoded JSON value fits a field's type hint (a class, ``Any``,
    ``list[...]`` or a union, as :func:`typing.get_type_hints` gives it)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _build(cls: type[BusMessage], data: object) -> BusMessage:
    if not isinstance(data, dict):
        raise BusMessageError(f"{cls.TYPE.value}: 'data' must be an object")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            if field.default is dataclasses.MISSING:
                raise BusMessageError(f"{cls.TYPE.value}: missing field {field.name!r}")
            continue
        value = data[field.name]
        if not _matches(value, hints[field.name]):
            raise BusMessageError(f"{cls.TYPE.value}: bad value for {field.name!r}")
        kwargs[field.name] = value
    message: BusMessage = cls(**kwargs)
    return message


# ------------------------------------------------------------------ codec


def encode(envelope: Envelope) -> bytes:
    """Serialize an envelope for the bus.

    :param envelope: the message and its sender.
    :returns: UTF-8 JSON.
    :raises TypeError: when an argument is not JSON-serializable (nor bytes).
    """
    fields = {
        f.name: getattr(envelope.message, f.name) for f in dataclasses.fields(envelope.message)
    }
    document = {
        "v": envelope.version,
        "type": envelope.message.TYPE.value,
        "host": envelope.host,
        "data": _tag(fields),
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(raw: bytes | str) -> Envelope:
    """Parse a bus message.

    :param raw: what the broker delivered.
    :returns: the envelope, binary values restored.
    :raises BusMessageError: for anything that is not a valid message of
        :data:`WIRE_VERSION`.
    """
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BusMessageError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BusMessageError("not a JSON object")
    version = document.get("v")
    if version != WIRE_VERSION:
        raise BusMessageError(f"unsupported bus format version {version!r}")
    host = document.get("host")
    if not isinstance(host, str) or not host:
        raise BusMessageError("missing sender host id")
    try:
        cls = _CLASSES[MessageType(document.get("type"))]
    except ValueError as exc:
        raise BusMessageError(f"unknown message type {document.get('type')!r}") from exc
    return Envelope(host, _build(cls, _untag(document.get("data"))), version)
