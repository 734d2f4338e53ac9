"""permessage-deflate (RFC 7692): negotiation and per-message compression (pure).

The server always answers with ``server_no_context_takeover`` and
``client_no_context_takeover`` (RFC 7692 lets a server add both to any offer it
accepts): every message is compressed on its own, so

- a broadcast is compressed once and the same frame goes to every recipient
  that negotiated the same window, and
- no connection keeps a zlib state between messages (a deflate state with a
  32 KiB window costs about 256 KiB; idle connections keep nothing).

An inflated message is bounded by the parser's ``max_message_size``: zlib is
asked for at most that many bytes plus one, so a small frame that would inflate
past the limit fails with 1009 without the rest being produced.
"""

from __future__ import annotations

import re
import zlib

from .websocket import CloseCode, FrameError

__all__ = [
    "EXTENSION",
    "PerMessageDeflate",
    "negotiate",
    "parse_extensions",
]

EXTENSION = "permessage-deflate"
#: the tail every flushed deflate block ends with, removed from (and re-added to) a message
_TAIL = b"\x00\x00\xff\xff"
_MAX_WINDOW_BITS = 15
#: zlib cannot write a raw deflate stream with a 256-byte window (8 bits): with a client
#: that asks for one, messages go out uncompressed (allowed: compression is per message)
_MIN_ZLIB_WINDOW_BITS = 9
_LEVEL = 6
_MEM_LEVEL = 8

_NO_VALUE = ("server_no_context_takeover", "client_no_context_takeover")
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*(?:=\s*(?:({_TOKEN})|"((?:[^"\\]|\\.)*)"))?\s*(;|,|$)')

Params = list[tuple[str, str | None]]


def parse_extensions(header: str) -> list[tuple[str, Params]]:
    """Split a ``Sec-WebSocket-Extensions`` value into ``(name, [(param, value)])``.

    Values may be tokens or quoted strings; a parameter without ``=`` has the
    value None. Anything that does not parse ends the list (what came before it
    is kept): an unreadable offer is simply not accepted.
    """
    offers: list[tuple[str, Params]] = []
    current: tuple[str, Params] | None = None
    pos = 0
    while pos < len(header):
        match = _PARAM.match(header, pos)
        if match is None or match.end() == pos:
            break
        name, token, quoted, separator = match.groups()
        value = token if token is not None else quoted
        if current is None:
            if value is not None:  # an extension name takes no value
                break
            current = (name.lower(), [])
        else:
            current[1].append((name.lower(), value))
        if separator != ";":
            offers.append(current)
            current = None
        pos = match.end()
    return offers


class PerMessageDeflate:
    """The negotiated extension of one connection.

    :param window_bits: the largest window the client accepts for what the
        server sends (``server_max_window_bits``, 15 by default).
    :param threshold: messages (one Engine.IO packet each) smaller than this
        many bytes are sent uncompressed.
    """

    __slots__ = ("window_bits", "threshold", "compresses")

    def __init__(self, window_bits: int = _MAX_WINDOW_BITS, threshold: int = 1024) -> None:
        self.window_bits = window_bits
        self.threshold = threshold
        #: False when the client's window is too small for zlib: send uncompressed
        self.compresses = window_bits >= _MIN_ZLIB_WINDOW_BITS

    def compress(self, data: bytes) -> bytes:
        """One message's payload, compressed on its own (the tail removed)."""
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -self.window_bits, _MEM_LEVEL)
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out

    @staticmethod
    def decompress(data: bytes, max_size: int) -> bytes:
        """Inflate one message the client compressed (without context takeover).

        :raises FrameError: 1009 past ``max_size`` bytes (never more than one byte
            beyond it is produced); 1007 when the data is not a deflate stream.
        """
        inflater = zlib.decompressobj(-_MAX_WINDOW_BITS)
        try:
            out = inflater.decompress(data + _TAIL, max_size + 1)
        except zlib.error as exc:
            raise FrameError(
                f"invalid compressed message: {exc}", CloseCode.INVALID_PAYLOAD
            ) from None
        if len(out) > max_size:
            raise FrameError(
                f"compressed message inflates past the limit of {max_size} bytes",
                CloseCode.MESSAGE_TOO_BIG,
            )
        return out


def _window_bits(value: str | None) -> int | None:
    return int(value) if value is not None and _WINDOW_BITS.fullmatch(value) else None


def _accept(params: Params) -> tuple[int, str] | None:
    """The window and the response for one offer, or None when it cannot be accepted
    (an unknown, repeated or malformed parameter)."""
    seen: set[str] = set()
    window = _MAX_WINDOW_BITS
    response = [EXTENSION, *_NO_VALUE]
    for name, value in params:
        if name in seen:
            return None
        seen.add(name)
        if name in _NO_VALUE:
            if value is not None:
                return None
        elif name == "server_max_window_bits":
            bits = _window_bits(value)
            if bits is None:
                return None
            window = bits
            response.append(f"server_max_window_bits={bits}")
        elif name == "client_max_window_bits":
            # any window the client uses is inflated (with 15 bits): nothing to limit
            if value is not None and _window_bits(value) is None:
                return None
        else:
            return None
    return window, "; ".join(response)


def negotiate(header: str | None, threshold: int) -> tuple[str, PerMessageDeflate] | None:
    """Accept the first permessage-deflate offer of a ``Sec-WebSocket-Extensions``
    request header that can be accepted.

    :returns: the response header's value and the connection's extension, or None
        (no acceptable offer: the connection goes without compression).
    """
    if not header:
        return None
    for name, params in parse_extensions(header):
        if name != EXTENSION:
            continue
        accepted = _accept(params)
        if accepted is not None:
            window, response = accepted
            return response, PerMessageDeflate(window, threshold)
    return None
