"""Sans-I/O RFC 6455 WebSocket layer, server side.

This module does no I/O: it validates the opening handshake, builds the
``101 Switching Protocols`` response head, encodes (unmasked) server frames
and incrementally parses (masked) client frames into events.

The parser faces hostile clients, so it:

* fails on the first invalid byte it can judge (RSV bits, unknown opcodes,
  unmasked frames and malformed control frames are rejected from the first
  two header bytes);
* rejects a message larger than ``max_message_size`` as soon as the frame
  header announcing it is complete, before buffering its payload;
* keeps one :class:`bytearray` buffer plus an offset, so feeding a stream in
  any number of pieces costs linear time;
* unmasks a payload with a single big-integer XOR (no per-byte Python loop).

Every violation raises :class:`FrameError` (a
:class:`~sio_wsgi.exceptions.RemoteProtocolError`) whose ``close_code`` is the
WebSocket close code to send before dropping the connection. Events decoded
from the same :meth:`FrameParser.feed` call before the violation are kept in
:attr:`FrameError.events`.

Example::

    accept = check_handshake(environ["REQUEST_METHOD"], headers_from_environ(environ))
    sock.sendall(handshake_response(accept))
    parser = FrameParser(max_message_size=options.max_http_buffer_size)
    for event in parser.feed(sock.recv(65536)):
        ...
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import hashlib
import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, NamedTuple, TypeAlias

from sio_wsgi.config import DEFAULTS
from sio_wsgi.exceptions import LocalProtocolError, RemoteProtocolError

__all__ = [
    "WS_GUID",
    "WS_VERSION",
    "BinaryMessage",
    "Buffer",
    "CloseCode",
    "CloseReceived",
    "Event",
    "FrameError",
    "FrameParser",
    "HandshakeError",
    "Opcode",
    "Ping",
    "Pong",
    "TextMessage",
    "accept_key",
    "check_handshake",
    "encode_binary",
    "encode_close",
    "encode_compressed",
    "encode_data",
    "encode_frame",
    "encode_ping",
    "encode_pong",
    "encode_text",
    "handshake_response",
    "headers_from_environ",
    "is_valid_close_code",
    "unmask",
]

logger = logging.getLogger(__name__)

#: Bytes-like payloads the encoders accept.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: Magic string of RFC 6455 section 1.3, appended to the client key.
WS_GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The only ``Sec-WebSocket-Version`` we speak.
WS_VERSION: Final = "13"

_MAX_CONTROL_PAYLOAD: Final = 125
_MAX_CLOSE_REASON: Final = _MAX_CONTROL_PAYLOAD - 2
#: Size of the extended payload length, keyed by the 7-bit length field.
_EXTENDED_LENGTH: Final = {126: 2, 127: 8}
#: Payload size from which :func:`unmask` uses ``bytes.translate``.
_TRANSLATE_THRESHOLD: Final = 8192


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------


class Opcode(IntEnum):
    """Frame opcodes of RFC 6455 section 5.2."""

    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10

    @property
    def is_control(self) -> bool:
        """``True`` for CLOSE, PING and PONG."""
        return self >= Opcode.CLOSE


class CloseCode(IntEnum):
    """Close status codes of RFC 6455 section 7.4.1 that this package uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011


#: opcode value -> member, for the parser (``Opcode(raw)`` costs an Enum call per frame)
_OPCODE_OF: Final = {int(op): op for op in Opcode}
#: opcodes at or above this are control frames (CLOSE, PING, PONG)
_FIRST_CONTROL: Final = 8
#: the opcodes that start a message (the only frames that may carry RSV1)
_DATA: Final = (int(Opcode.TEXT), int(Opcode.BINARY))


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a Close frame on the wire.

    :return: ``True`` for 1000-1003, 1007-1011 and 3000-4999.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class FrameError(RemoteProtocolError):
    """The client sent an invalid frame or message.

    :param message: what was wrong.
    :param close_code: close code to send before closing the connection.
    :param events: events decoded by the failing ``feed`` call before the error.
    """

    def __init__(
        self,
        message: str,
        close_code: int = CloseCode.PROTOCOL_ERROR.value,
        events: Sequence[Event] = (),
    ) -> None:
        super().__init__(message, close_code=close_code)
        self.events: list[Event] = list(events)


class HandshakeError(RemoteProtocolError):
    """The client's opening handshake is invalid.

    :param message: what was wrong.
    :param status: HTTP status to answer with (400, or 426 for a wrong version).
    :param headers: extra response headers (``Sec-WebSocket-Version`` for 426).
    """

    def __init__(
        self, message: str, status: int = 400, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message, close_code=CloseCode.PROTOCOL_ERROR)
        self.status = status
        self.headers: list[tuple[str, str]] = list(headers)


# ---------------------------------------------------------------------------
# Opening handshake
# ---------------------------------------------------------------------------


def accept_key(client_key: str) -> str:
    """Compute the ``Sec-WebSocket-Accept`` value for a client key.

    :param client_key: the ``Sec-WebSocket-Key`` header value (latin-1, as WSGI gives it).
    :return: base64 of SHA-1(key + GUID).
    """
    digest = hashlib.sha1((client_key + WS_GUID).encode("latin-1"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(value: str) -> set[str]:
    """Split a comma-separated header value into lower-cased tokens.

    :return: the set of non-empty tokens.
    """
    return {token.strip().lower() for token in value.split(",") if token.strip()}


def _require(headers: Mapping[str, str], name: str) -> str:
    """Fetch a mandatory handshake header.

    :param headers: lower-cased header mapping.
    :param name: lower-cased header name.
    :return: the stripped value.
    :raises HandshakeError: if it is missing or empty.
    """
    value = headers.get(name, "").strip()
    if not value:
        raise HandshakeError(f"missing {name!r} header in WebSocket handshake")
    return value


def _check_key(key: str) -> None:
    """Validate ``Sec-WebSocket-Key``: base64 of exactly 16 bytes.

    :raises HandshakeError: if it is not.
    """
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise HandshakeError("Sec-WebSocket-Key is not valid base64") from None
    if len(raw) != 16:
        raise HandshakeError(f"Sec-WebSocket-Key decodes to {len(raw)} bytes, expected 16")


def check_handshake(method: str, headers: Mapping[str, str]) -> str:
    """Validate a client's opening handshake (RFC 6455 section 4.2.1).

    :param headers: request headers with lower-cased names.
    :return: the ``Sec-WebSocket-Accept`` value to answer with.
    :raises HandshakeError: (a ``RemoteProtocolError``) with ``status`` 400, or
        426 plus a ``Sec-WebSocket-Version`` header for an unsupported version.
    """
    if method.upper() != "GET":
        raise HandshakeError(f"WebSocket handshake must use GET, not {method!r}")
    if "websocket" not in _tokens(_require(headers, "upgrade")):
        raise HandshakeError("Upgrade header does not contain 'websocket'")
    if "upgrade" not in _tokens(_require(headers, "connection")):
        raise HandshakeError("Connection header does not contain 'upgrade'")
    version = _require(headers, "sec-websocket-version")
    if version != WS_VERSION:
        raise HandshakeError(
            f"unsupported Sec-WebSocket-Version {version!r}, only {WS_VERSION} is supported",
            status=426,
            headers=[("Sec-WebSocket-Version", WS_VERSION)],
        )
    key = _require(headers, "sec-websocket-key")
    _check_key(key)
    return accept_key(key)


def headers_from_environ(environ: Mapping[str, object]) -> dict[str, str]:
    """Collect the request headers of a WSGI environ, names lower-cased.

    ``HTTP_SEC_WEBSOCKET_KEY`` becomes ``sec-websocket-key`` and so on.

    :return: header mapping suitable for :func:`check_handshake`.
    """
    return {
        name[5:].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_") and isinstance(value, str)
    }


def _header_line(name: str, value: str) -> str:
    """Format one response header line, refusing header injection.

    :return: ``"Name: value\\r\\n"``.
    :raises LocalProtocolError: if either contains CR, LF or NUL, or the name ':'.
    """
    if any(c in name for c in "\r\n\0:") or any(c in value for c in "\r\n\0") or not name:
        raise LocalProtocolError(f"invalid response header {name!r}: {value!r}")
    return f"{name}: {value}\r\n"


def handshake_response(accept: str, extra_headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """Build the full ``101 Switching Protocols`` response head.

    :param accept: value returned by :func:`check_handshake`.
    :param extra_headers: more ``(name, value)`` headers (e.g. ``Set-Cookie``).
    :return: the head, ending with the empty line, encoded as latin-1.
    :raises LocalProtocolError: on a header containing CR/LF.
    """
    lines = [
        "HTTP/1.1 101 Switching Protocols\r\n",
        _header_line("Upgrade", "websocket"),
        _header_line("Connection", "Upgrade"),
        _header_line("Sec-WebSocket-Accept", accept),
    ]
    lines.extend(_header_line(name, value) for name, value in extra_headers)
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("response headers must be latin-1 encodable") from None


# ---------------------------------------------------------------------------
# Encoding (server -> client, never masked)
# ---------------------------------------------------------------------------


def _length_header(first: int, length: int) -> bytes:
    """Pack the first byte and the (minimal) payload length of a frame header.

    :param first: FIN/RSV/opcode byte.
    :return: 2, 4 or 10 header bytes.
    """
    if length <= _MAX_CONTROL_PAYLOAD:
        return struct.pack("!BB", first, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def encode_frame(opcode: Opcode, payload: Buffer, fin: bool = True) -> bytes:
    """Encode one unmasked server frame.

    :param fin: ``False`` for a non-final fragment.
    :return: the frame bytes.
    :raises LocalProtocolError: on a fragmented or oversized control frame,
        or a payload of 2**63 bytes or more.
    """
    try:
        op = Opcode(opcode)
    except ValueError:
        raise LocalProtocolError(f"unknown opcode {opcode!r}") from None
    data = bytes(payload)  # no copy when it already is ``bytes``
    if op.is_control and (not fin or len(data) > _MAX_CONTROL_PAYLOAD):
        raise LocalProtocolError(f"control frame {op.name} must be final and at most 125 bytes")
    if len(data) >= 1 << 63:
        raise LocalProtocolError("payload too large for a WebSocket frame")
    first = (0x80 if fin else 0) | op
    return _length_header(first, len(data)) + data


#: the first header byte of a final text / binary frame
_FIN_TEXT = 0x80 | Opcode.TEXT.value
_FIN_BINARY = 0x80 | Opcode.BINARY.value
_WHOLE_DATA = frozenset((_FIN_TEXT, _FIN_BINARY))
_SHORT_HEADERS = tuple(
    (bytes((_FIN_TEXT, n)), bytes((_FIN_BINARY, n))) for n in range(_MAX_CONTROL_PAYLOAD + 1)
)


def encode_data(data: bytes, binary: bool) -> bytes:
    """A final data frame of ``data`` (UTF-8 already, for a text frame): the hot
    path of every send, with no opcode checks to make."""
    length = len(data)
    if length <= _MAX_CONTROL_PAYLOAD:
        return _SHORT_HEADERS[length][binary] + data
    return _length_header(_FIN_BINARY if binary else _FIN_TEXT, length) + data


def encode_text(text: str) -> bytes:
    """Encode a complete text message in one frame.

    :return: frame bytes.
    """
    return encode_data(text.encode("utf-8"), False)


def encode_binary(data: Buffer) -> bytes:
    """Encode a complete binary message in one frame.

    :return: frame bytes.
    """
    return encode_data(bytes(data), True)  # no copy when it already is ``bytes``


#: RSV1: the frame starts a compressed message (permessage-deflate, RFC 7692)
_RSV1 = 0x40


def encode_compressed(payload: bytes, binary: bool) -> bytes:
    """A final data frame carrying a message compressed by permessage-deflate.

    :param payload: the compressed message (see :mod:`sio_wsgi.protocol.deflate`).
    """
    first = _RSV1 | (_FIN_BINARY if binary else _FIN_TEXT)
    return _length_header(first, len(payload)) + payload


def encode_close(code: int = CloseCode.NORMAL, reason: str = "") -> bytes:
    """Encode a Close frame.

    ``code`` 1005 ("no status") encodes a Close frame with an empty payload,
    so that ``encode_close(event.code)`` can echo any :class:`CloseReceived`.

    :param reason: UTF-8 reason, at most 123 bytes once encoded.
    :return: frame bytes.
    :raises LocalProtocolError: on an invalid code or too long a reason.
    """
    encoded = reason.encode("utf-8")
    if code == CloseCode.NO_STATUS and not encoded:
        return encode_frame(Opcode.CLOSE, b"")
    if not is_valid_close_code(code):
        raise LocalProtocolError(f"invalid close code {code}")
    if len(encoded) > _MAX_CLOSE_REASON:
        raise LocalProtocolError(f"close reason is {len(encoded)} bytes, at most 123 allowed")
    return encode_frame(Opcode.CLOSE, struct.pack("!H", code) + encoded)


def encode_ping(data: bytes = b"") -> bytes:
    """Encode a Ping frame.

    :param data: application data, at most 125 bytes.
    :return: frame bytes.
    """
    return encode_frame(Opcode.PING, data)


def encode_pong(data: bytes = b"") -> bytes:
    """Encode a Pong frame (echo a ping's data).

    :param data: application data, at most 125 bytes.
    :return: frame bytes.
    """
    return encode_frame(Opcode.PONG, data)


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TextMessage:
    """A complete text message.

    :param data: decoded text.
    """

    data: str


@dataclass(frozen=True)
class BinaryMessage:
    """A complete binary message."""

    data: bytes


@dataclass(frozen=True)
class Ping:
    """A Ping frame; answer with ``encode_pong(event.data)``."""

    data: bytes


@dataclass(frozen=True)
class Pong:
    """A Pong frame."""

    data: bytes


@dataclass(frozen=True)
class CloseReceived:
    """A Close frame; the parser ignores every byte after it.

    :param code: status code, 1005 when the frame had no payload.
    :param reason: UTF-8 reason (may be empty).
    """

    code: int
    reason: str


Event: TypeAlias = TextMessage | BinaryMessage | Ping | Pong | CloseReceived


# ---------------------------------------------------------------------------
# Decoding (client -> server, always masked)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _xor_table(key: int) -> bytes:
    """Translation table XOR-ing every byte with ``key``.

    :param key: one byte of the masking key.
    :return: a 256-byte table for :meth:`bytes.translate`.
    """
    return bytes(value ^ key for value in range(256))


def unmask(mask: bytes, payload: bytes | bytearray) -> bytes:
    """XOR a payload with a 4-byte masking key (RFC 6455 section 5.3).

    No per-byte Python loop: small payloads are XOR-ed as one big integer,
    large ones (from :data:`_TRANSLATE_THRESHOLD` bytes) with four strided
    :meth:`bytes.translate` calls, which is faster there.

    :param mask: the 4-byte masking key.
    :param payload: masked (or clear) payload.
    :return: the payload XOR-ed with the repeated key.
    """
    length = len(payload)
    if length >= _TRANSLATE_THRESHOLD:
        out = bytearray(payload)
        for index in range(4):
            out[index::4] = payload[index::4].translate(_xor_table(mask[index]))
        return bytes(out)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(length, "big")


class _Header(NamedTuple):
    """A parsed frame header."""

    fin: bool
    opcode: Opcode
    length: int
    mask: bytes
    size: int
    compressed: bool = False  # RSV1 on a message's first frame (permessage-deflate)


def _decode_utf8(data: bytes, what: str) -> str:
    """Decode UTF-8 strictly.

    :param what: what is decoded, for the error message.
    :return: the text.
    :raises FrameError: 1007 on invalid UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(
            f"invalid UTF-8 in {what}: {exc.reason}", CloseCode.INVALID_PAYLOAD
        ) from None


def _parse_close(payload: bytes) -> CloseReceived:
    """Decode a Close frame payload.

    :param payload: unmasked payload.
    :return: the event.
    :raises FrameError: 1002 on a 1-byte payload or invalid code, 1007 on a bad reason.
    """
    if not payload:
        return CloseReceived(int(CloseCode.NO_STATUS), "")
    if len(payload) == 1:
        raise FrameError("close frame payload of 1 byte")
    (code,) = struct.unpack_from("!H", payload)
    if not is_valid_close_code(code):
        raise FrameError(f"invalid close code {code}")
    return CloseReceived(code, _decode_utf8(payload[2:], "close reason"))


class FrameParser:
    """Incremental parser of the frames a client sends.

    Feeding the same byte stream split at any points yields the same events.
    After a :class:`FrameError` every further :meth:`feed` raises again; after
    a :class:`CloseReceived` every further byte is ignored.

    :param max_message_size: largest message (sum of its fragments) accepted;
        a larger one raises 1009 as soon as its frame header is parsed.
    :param inflate: with permessage-deflate negotiated, ``inflate(payload,
        max_size)`` decompresses a message whose first frame has RSV1 set (it
        raises :class:`FrameError` past ``max_size``); RSV1 is refused without it.
    """

    __slots__ = (
        "max_message_size",
        "_inflate",
        "_compressed",
        "_buf",
        "_pos",
        "_header",
        "_message_opcode",
        "_fragments",
        "_text_decoder",
        "_text_parts",
        "_message_size",
        "_error",
        "_closed",
    )

    def __init__(
        self,
        max_message_size: int = DEFAULTS.max_http_buffer_size,
        inflate: Callable[[bytes, int], bytes] | None = None,
    ) -> None:
        self.max_message_size = max_message_size
        self._inflate = inflate
        self._compressed = False  # the message in progress is compressed
        self._buf = bytearray()
        self._pos = 0
        self._header: _Header | None = None
        self._message_opcode: Opcode | None = None
        self._fragments: list[bytes] = []
        # created for the first fragmented text message only (memory per idle connection)
        self._text_decoder: codecs.IncrementalDecoder | None = None
        self._text_parts: list[str] = []
        self._message_size = 0
        self._error: FrameError | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """``True`` once a Close frame was parsed."""
        return self._closed

    @property
    def failed(self) -> bool:
        """``True`` once a protocol error was raised."""
        return self._error is not None

    @property
    def partial(self) -> bool:
        """``True`` while part of a frame, or of a fragmented message, waits for more bytes."""
        return bool(self._buf) or self._header is not None or self._message_opcode is not None

    def feed(self, data: bytes) -> list[Event]:
        """Consume bytes from the client and return the events they complete.

        :param data: the next bytes of the stream (may be empty).
        :return: events in stream order.
        :raises FrameError: on any protocol violation; ``close_code`` tells the
            close code, ``events`` holds events completed before the violation.
        """
        if self._error is not None:
            raise FrameError(str(self._error), self._error.close_code)
        if self._closed:
            return []
        events: list[Event] = []
        if not self._buf and self._header is None and self._message_opcode is None:
            taken = self._whole_frames(data, events)
            if taken == len(data):
                return events
            data = data[taken:]
        self._buf += data
        try:
            self._drain(events)
        except FrameError as exc:
            self._fail(exc)
            raise FrameError(str(exc), exc.close_code, events) from None
        finally:
            self._compact()
        return events

    # -- driver ------------------------------------------------------------

    def _whole_frames(self, data: bytes, events: list[Event]) -> int:
        """The fast path of :meth:`feed`, between messages with nothing buffered:
        take the leading frames of ``data`` that are each a whole, final, masked,
        uncompressed text or binary message of under 64 KiB and valid UTF-8 (a
        client's usual frames), without a header object. The first frame that is
        anything else (control, fragment, compressed, incomplete, too big, bad
        UTF-8) and all after it are left to the general path, which checks them
        and raises as it always does.

        :returns: how many bytes of ``data`` were taken.
        """
        pos = 0
        end = len(data)
        limit = self.max_message_size
        while end - pos >= 6:
            b0 = data[pos]
            if b0 not in _WHOLE_DATA:
                break
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if not b1 & 0x80 or length == 127:
                break
            start = pos + 6
            if length == 126:
                start = pos + 8
                if start > end:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            stop = start + length
            if stop > end or length > limit:
                break
            payload = unmask(data[start - 4 : start], data[start:stop])
            if b0 == _FIN_TEXT:
                try:
                    events.append(TextMessage(payload.decode("utf-8")))
                except UnicodeDecodeError:
                    break
            else:
                events.append(BinaryMessage(payload))
            pos = stop
        return pos

    def _drain(self, events: list[Event]) -> None:
        """Parse every complete frame in the buffer.

        :param events: list to append events to.
        """
        while not self._closed:
            if self._header is None:
                self._header = self._parse_header()
                if self._header is None:
                    return
            payload = self._take_payload(self._header)
            if payload is None:
                return
            header, self._header = self._header, None
            event = _HANDLERS[header.opcode](self, header, payload)
            if event is not None:
                events.append(event)

    def _fail(self, exc: FrameError) -> None:
        """Enter the failed state for good."""
        self._error = exc
        self._buf = bytearray()
        self._pos = 0
        self._fragments.clear()
        self._text_parts.clear()
        logger.debug("websocket protocol error (close code %s): %s", exc.close_code, exc)

    def _compact(self) -> None:
        """Drop consumed bytes from the buffer (once per feed)."""
        if self._closed:
            self._buf = bytearray()
            self._pos = 0
        elif self._pos:
            del self._buf[: self._pos]
            self._pos = 0

    # -- header --------------------------------------------------------------

    def _parse_header(self) -> _Header | None:
        """Parse the next frame header if it is complete.

        The first two bytes are validated as soon as they are available.

        :return: the header, or ``None`` if more bytes are needed.
        """
        available = len(self._buf) - self._pos
        if available < 2:
            return None
        b0, b1 = self._buf[self._pos], self._buf[self._pos + 1]
        opcode = self._check_first_bytes(b0, b1)
        compressed = bool(b0 & _RSV1)
        length = b1 & 0x7F
        ext = _EXTENDED_LENGTH.get(length, 0)
        size = 2 + ext + 4
        if available < size:
            return None
        start = self._pos + 2
        if ext == 2:
            (length,) = struct.unpack_from("!H", self._buf, start)
        elif ext == 8:
            (length,) = struct.unpack_from("!Q", self._buf, start)
        header = _Header(
            fin=bool(b0 & 0x80),
            opcode=opcode,
            length=length,
            mask=bytes(self._buf[start + ext : start + ext + 4]),
            size=size,
            compressed=compressed,
        )
        self._check_header(header)
        return header

    def _check_first_bytes(self, b0: int, b1: int) -> Opcode:
        """Validate the first two header bytes.

        :param b0: FIN/RSV/opcode byte.
        :param b1: MASK/length byte.
        :return: the opcode.
        :raises FrameError: 1002 on RSV bits, unknown opcode, missing mask,
            fragmented control frame, or bad fragmentation sequence.
        """
        raw = b0 & 0x0F
        reserved = b0 & 0x70
        # RSV1 marks a compressed message, on its first frame only, once negotiated
        if reserved and not (reserved == _RSV1 and self._inflate is not None and raw in _DATA):
            raise FrameError(f"reserved bits set ({reserved:#x}) without a negotiated extension")
        opcode = _OPCODE_OF.get(raw)
        if opcode is None:
            raise FrameError(f"unknown opcode {raw:#x}")
        if not b1 & 0x80:
            raise FrameError("client frame is not masked")
        if raw >= _FIRST_CONTROL:
            if not b0 & 0x80:
                raise FrameError(f"fragmented control frame {opcode.name}")
        elif opcode is Opcode.CONTINUATION:
            if self._message_opcode is None:
                raise FrameError("continuation frame without a message in progress")
        elif self._message_opcode is not None:
            raise FrameError(f"new {opcode.name} frame while a fragmented message is open")
        return opcode

    def _check_header(self, header: _Header) -> None:
        """Validate the announced payload length.

        :raises FrameError: 1002 on a 64-bit length with its top bit set or a
            control payload over 125 bytes; 1009 on a message over the limit.
        """
        if header.length >> 63:
            raise FrameError("64-bit payload length has its most significant bit set")
        if header.opcode >= _FIRST_CONTROL:
            if header.length > _MAX_CONTROL_PAYLOAD:
                raise FrameError(f"control frame payload of {header.length} bytes (max 125)")
            return
        total = header.length
        if header.opcode is Opcode.CONTINUATION:
            total += self._message_size
        if total > self.max_message_size:
            raise FrameError(
                f"message of at least {total} bytes exceeds the limit of {self.max_message_size}",
                CloseCode.MESSAGE_TOO_BIG,
            )

    # -- payload -------------------------------------------------------------

    def _take_payload(self, header: _Header) -> bytes | None:
        """Consume the frame's payload if it is complete.

        :return: the unmasked payload, or ``None`` if more bytes are needed.
        """
        start = self._pos + header.size
        end = start + header.length
        if len(self._buf) < end:
            return None
        payload = unmask(header.mask, self._buf[start:end])
        self._pos = end
        return payload

    # -- opcode handlers -----------------------------------------------------

    def _on_data(self, header: _Header, payload: bytes) -> Event | None:
        """Handle a TEXT, BINARY or CONTINUATION frame.

        :param payload: unmasked payload.
        :return: the message when this frame completes it.
        """
        if header.fin and self._message_opcode is None:  # a whole message in one frame
            if header.compressed:
                payload = self._inflated(payload)
            if header.opcode is Opcode.TEXT:
                try:
                    return TextMessage(payload.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise _invalid_utf8(exc) from None
            if header.opcode is Opcode.BINARY:
                return BinaryMessage(payload)
        if header.opcode is not Opcode.CONTINUATION:
            self._message_opcode = header.opcode
            self._compressed = header.compressed
        if self._message_opcode is Opcode.TEXT and not self._compressed:
            self._add_text(payload, header.fin)
        else:
            self._fragments.append(payload)
        self._message_size += len(payload)
        if not header.fin:
            return None
        return self._finish_message()

    def _add_text(self, payload: bytes, final: bool) -> None:
        """Decode a text fragment incrementally (fails fast on bad UTF-8).

        :param final: whether this is the last fragment.
        :raises FrameError: 1007 on invalid UTF-8.
        """
        if self._text_decoder is None:
            self._text_decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            self._text_parts.append(self._text_decoder.decode(payload, final))
        except UnicodeDecodeError as exc:
            raise _invalid_utf8(exc) from None

    def _finish_message(self) -> Event:
        """Build the completed message event and reset the message state.

        :return: TextMessage or BinaryMessage.
        """
        event: Event
        if self._compressed:
            data = self._inflated(b"".join(self._fragments))
            if self._message_opcode is Opcode.TEXT:
                event = TextMessage(_decode_utf8(data, "text message"))
            else:
                event = BinaryMessage(data)
            self._compressed = False
        elif self._message_opcode is Opcode.TEXT:
            event = TextMessage("".join(self._text_parts))
        else:
            event = BinaryMessage(b"".join(self._fragments))
        self._message_opcode = None
        self._message_size = 0
        self._fragments.clear()
        self._text_parts.clear()
        if self._text_decoder is not None:
            self._text_decoder.reset()
        return event

    def _inflated(self, payload: bytes) -> bytes:
        """A compressed message's payload, inflated within ``max_message_size``."""
        assert self._inflate is not None  # RSV1 is refused without it
        return self._inflate(payload, self.max_message_size)

    def _on_close(self, _header: _Header, payload: bytes) -> Event:
        """Handle a Close frame; stop parsing.

        :param payload: unmasked payload.
        :return: CloseReceived.
        """
        event = _parse_close(payload)
        self._closed = True
        return event


def _invalid_utf8(exc: UnicodeDecodeError) -> FrameError:
    """The 1007 error for a text message that is not UTF-8."""
    return FrameError(f"invalid UTF-8 in text message: {exc.reason}", CloseCode.INVALID_PAYLOAD)


#: what each opcode's frame turns into (one table for every parser)
_HANDLERS: dict[Opcode, Callable[[FrameParser, _Header, bytes], Event | None]] = {
    Opcode.CONTINUATION: FrameParser._on_data,
    Opcode.TEXT: FrameParser._on_data,
    Opcode.BINARY: FrameParser._on_data,
    Opcode.CLOSE: FrameParser._on_close,
    Opcode.PING: lambda _parser, _h, payload: Ping(payload),
    Opcode.PONG: lambda _parser, _h, payload: Pong(payload),
}
