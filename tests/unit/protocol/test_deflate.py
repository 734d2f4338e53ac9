"""permessage-deflate (RFC 7692): negotiation on strings, compression on bytes, the
inflate bound, and the parser's RSV1 rules."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest

from sio_wsgi.protocol.deflate import PerMessageDeflate, negotiate, parse_extensions
from sio_wsgi.protocol.websocket import (
    BinaryMessage,
    CloseCode,
    FrameError,
    FrameParser,
    TextMessage,
    encode_compressed,
)
from tests.unit.protocol.test_websocket import client_frame

RSV1 = 4  # client_frame's rsv bits: RSV1 RSV2 RSV3 = 4 2 1
DEFAULT = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def client_compress(data: bytes) -> bytes:
    """What a client sends: raw deflate, flushed, without the 00 00 ff ff tail."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_server(payload: bytes, window_bits: int = 15) -> bytes:
    return zlib.decompressobj(-window_bits).decompress(payload + b"\x00\x00\xff\xff")


# ----------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("permessage-deflate", [("permessage-deflate", [])]),
        (
            "permessage-deflate; client_max_window_bits",  # what browsers send
            [("permessage-deflate", [("client_max_window_bits", None)])],
        ),
        (
            'permessage-deflate; server_max_window_bits="10", x-webkit-deflate-frame',
            [
                ("permessage-deflate", [("server_max_window_bits", "10")]),
                ("x-webkit-deflate-frame", []),
            ],
        ),
        (
            "Permessage-Deflate ;  Client_No_Context_Takeover ",
            [("permessage-deflate", [("client_no_context_takeover", None)])],
        ),
        ("", []),
        ("permessage-deflate; =10", []),  # unreadable: nothing accepted from it
    ],
)
def test_parse_extensions(header: str, expected: list[object]) -> None:
    assert parse_extensions(header) == expected


@pytest.mark.parametrize(
    ("header", "response", "window"),
    [
        ("permessage-deflate", DEFAULT, 15),
        ("permessage-deflate; client_max_window_bits", DEFAULT, 15),
        ("permessage-deflate; client_max_window_bits=10", DEFAULT, 15),
        ("permessage-deflate; server_no_context_takeover", DEFAULT, 15),
        ("permessage-deflate; client_no_context_takeover", DEFAULT, 15),
        (
            "permessage-deflate; server_max_window_bits=10",
            DEFAULT + "; server_max_window_bits=10",
            10,
        ),
        ("permessage-deflate; server_max_window_bits=8", DEFAULT + "; server_max_window_bits=8", 8),
        # the first offer cannot be accepted (unknown parameter): the second is
        (
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=12",
            DEFAULT + "; server_max_window_bits=12",
            12,
        ),
        ("x-webkit-deflate-frame, permessage-deflate", DEFAULT, 15),
    ],
)
def test_accepted_offers(header: str, response: str, window: int) -> None:
    negotiated = negotiate(header, 1024)
    assert negotiated is not None
    assert negotiated[0] == response
    assert negotiated[1].window_bits == window


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",  # a value is required
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",  # no leading zero
        "permessage-deflate; client_max_window_bits=20",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    ],
)
def test_refused_offers(header: str | None) -> None:
    assert negotiate(header, 1024) is None


def test_a_window_too_small_for_zlib_is_accepted_but_not_used() -> None:
    assert PerMessageDeflate(8).compresses is False
    assert PerMessageDeflate(9).compresses is True


# ----------------------------------------------------------------- compression


@pytest.mark.parametrize("window", [9, 12, 15])
def test_every_message_is_compressed_on_its_own(window: int) -> None:
    deflate = PerMessageDeflate(window)
    data = b'42["chat",' + b'"hello world",' * 500 + b"0]"
    first, second = deflate.compress(data), deflate.compress(data)
    assert first == second  # no context carried over: a broadcast compresses once
    assert len(first) < len(data) // 10
    assert inflate_server(first, window) == data


def test_client_messages_inflate() -> None:
    data = b"x" * 50_000
    assert PerMessageDeflate.decompress(client_compress(data), 1_000_000) == data


def test_a_small_frame_inflating_past_the_limit_is_1009_without_allocating_it() -> None:
    bomb = client_compress(b"\0" * 50_000_000)  # ~50 KB on the wire
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(FrameError) as info:
            PerMessageDeflate.decompress(bomb, 1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.close_code == CloseCode.MESSAGE_TOO_BIG
    assert peak < 5_000_000, peak  # never the 50 MB


def test_garbage_is_1007() -> None:
    with pytest.raises(FrameError) as info:
        PerMessageDeflate.decompress(b"\xff\xff\xff\xff", 1000)
    assert info.value.close_code == CloseCode.INVALID_PAYLOAD


def test_compressed_frame_header() -> None:
    assert encode_compressed(b"abc", binary=False)[:2] == bytes((0xC1, 3))
    assert encode_compressed(b"abc", binary=True)[:2] == bytes((0xC2, 3))
    assert encode_compressed(b"x" * 200, binary=False)[:4] == bytes((0xC1, 126, 0, 200))


# ----------------------------------------------------------------- the parser


def parser(limit: int = 1_000_000) -> FrameParser:
    return FrameParser(limit, inflate=PerMessageDeflate.decompress)


def test_compressed_text_and_binary_messages() -> None:
    text = "héllo " * 1000
    events = parser().feed(
        client_frame(1, client_compress(text.encode()), rsv=RSV1)
        + client_frame(2, client_compress(b"\x00\x01" * 999), rsv=RSV1)
        + client_frame(1, b"plain")  # compression is per message
    )
    assert events == [TextMessage(text), BinaryMessage(b"\x00\x01" * 999), TextMessage("plain")]


def test_a_fragmented_compressed_message_has_rsv1_on_its_first_frame_only() -> None:
    payload = client_compress(b"abc" * 3000)
    third = len(payload) // 3
    frames = (
        client_frame(1, payload[:third], fin=False, rsv=RSV1)
        + client_frame(0, payload[third : 2 * third], fin=False)
        + client_frame(9, b"ping in between")
        + client_frame(0, payload[2 * third :])
    )
    events = parser().feed(frames)
    assert [type(e).__name__ for e in events] == ["Ping", "TextMessage"]
    assert events[1] == TextMessage("abc" * 3000)


@pytest.mark.parametrize(
    "frames",
    [
        client_frame(1, b"x", fin=False) + client_frame(0, b"y", rsv=RSV1),  # on a continuation
        client_frame(9, b"", rsv=RSV1),  # on a control frame
        client_frame(1, b"x", rsv=2),  # RSV2
        client_frame(1, b"x", rsv=1),  # RSV3
    ],
)
def test_reserved_bits_outside_the_rules_are_1002(frames: bytes) -> None:
    with pytest.raises(FrameError) as info:
        parser().feed(frames)
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def test_rsv1_without_the_extension_is_1002() -> None:
    with pytest.raises(FrameError) as info:
        FrameParser().feed(client_frame(1, client_compress(b"x"), rsv=RSV1))
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def test_invalid_utf8_inside_a_compressed_text_is_1007() -> None:
    with pytest.raises(FrameError) as info:
        parser().feed(client_frame(1, client_compress(b"\xff\xfe"), rsv=RSV1))
    assert info.value.close_code == CloseCode.INVALID_PAYLOAD


def test_the_parser_bounds_the_inflated_size() -> None:
    with pytest.raises(FrameError) as info:
        parser(limit=10_000).feed(client_frame(2, client_compress(b"\0" * 10_001), rsv=RSV1))
    assert info.value.close_code == CloseCode.MESSAGE_TOO_BIG
