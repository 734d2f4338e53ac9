"""Unit tests of sio_wsgi.protocol.websocket (RFC 6455 sans-I/O layer)."""

from __future__ import annotations

import base64
import os
import struct

import pytest

from sio_wsgi.exceptions import LocalProtocolError, RemoteProtocolError
from sio_wsgi.protocol.websocket import (
    BinaryMessage,
    CloseReceived,
    Event,
    FrameError,
    FrameParser,
    HandshakeError,
    Opcode,
    Ping,
    Pong,
    TextMessage,
    accept_key,
    check_handshake,
    encode_binary,
    encode_close,
    encode_frame,
    encode_ping,
    encode_pong,
    encode_text,
    handshake_response,
    headers_from_environ,
    is_valid_close_code,
    unmask,
)

RFC_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


# ---------------------------------------------------------------------------
# client-side helper: builds masked frames with an independent implementation
# ---------------------------------------------------------------------------


def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes | None = RFC_MASK,
    rsv: int = 0,
    length_bytes: int | None = None,
    length: int | None = None,
) -> bytes:
    """Build a client frame the slow, obvious way.

    :param opcode: raw opcode (may be invalid on purpose).
    :param payload: clear payload.
    :param fin: FIN bit.
    :param mask: masking key, or ``None`` for an unmasked frame.
    :param rsv: RSV bits (0-7).
    :param length_bytes: force 0, 2 or 8 extended length bytes (non-minimal).
    :param length: announced length (defaults to ``len(payload)``).
    :return: the frame.
    """
    announced = len(payload) if length is None else length
    if length_bytes is None:
        length_bytes = 0 if announced <= 125 else 2 if announced <= 0xFFFF else 8
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length_bytes == 0:
        head = bytes([first, mask_bit | announced])
    elif length_bytes == 2:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", announced)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", announced)
    if mask is None:
        return head + payload
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return head + mask + body


def feed_all(data: bytes, chunk: int | None = None, **kwargs: int) -> list[Event]:
    """Feed ``data`` to a new parser, optionally in chunks.

    :param data: stream.
    :param chunk: chunk size, or ``None`` for one feed.
    :param kwargs: FrameParser arguments.
    :return: all events.
    """
    parser = FrameParser(**kwargs)
    if chunk is None:
        return parser.feed(data)
    events: list[Event] = []
    for start in range(0, len(data), chunk):
        events.extend(parser.feed(data[start : start + chunk]))
    return events


def expect_error(data: bytes, code: int, **kwargs: int) -> FrameError:
    """Assert that feeding ``data`` raises a FrameError with ``code``.

    :param data: stream.
    :param code: expected close code.
    :param kwargs: FrameParser arguments.
    :return: the error.
    """
    parser = FrameParser(**kwargs)
    with pytest.raises(FrameError) as info:
        parser.feed(data)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.close_code == code, str(info.value)
    return info.value


# ---------------------------------------------------------------------------
# handshake
# ---------------------------------------------------------------------------

GOOD_HEADERS = {
    "host": "example.com",
    "upgrade": "websocket",
    "connection": "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
}


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_check_handshake_ok() -> None:
    assert check_handshake("GET", GOOD_HEADERS) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_check_handshake_is_lenient_on_case_and_token_lists() -> None:
    headers = dict(
        GOOD_HEADERS,
        upgrade="WebSocket",
        connection="keep-alive, UPGRADE",
        **{"sec-websocket-key": " dGhlIHNhbXBsZSBub25jZQ== "},
    )
    assert check_handshake("GET", headers) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("method", "changes", "fragment"),
    [
        ("POST", {}, "GET"),
        ("GET", {"upgrade": None}, "upgrade"),
        ("GET", {"upgrade": "h2c"}, "websocket"),
        ("GET", {"connection": None}, "connection"),
        ("GET", {"connection": "keep-alive"}, "upgrade"),
        ("GET", {"connection": "upgrades"}, "upgrade"),
        ("GET", {"sec-websocket-key": None}, "sec-websocket-key"),
        ("GET", {"sec-websocket-key": "not base64!"}, "base64"),
        ("GET", {"sec-websocket-key": "é" * 24}, "base64"),
        ("GET", {"sec-websocket-key": base64.b64encode(b"x" * 15).decode()}, "16"),
        ("GET", {"sec-websocket-key": base64.b64encode(b"x" * 17).decode()}, "16"),
        ("GET", {"sec-websocket-version": None}, "version"),
    ],
)
def test_check_handshake_rejects(
    method: str, changes: dict[str, str | None], fragment: str
) -> None:
    headers = {k: v for k, v in {**GOOD_HEADERS, **changes}.items() if v is not None}
    with pytest.raises(HandshakeError) as info:
        check_handshake(method, headers)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.status == 400
    assert fragment.lower() in str(info.value).lower()


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_check_handshake_wrong_version_is_426(version: str) -> None:
    headers = dict(GOOD_HEADERS, **{"sec-websocket-version": version})
    with pytest.raises(HandshakeError) as info:
        check_handshake("GET", headers)
    assert info.value.status == 426
    assert info.value.headers == [("Sec-WebSocket-Version", "13")]


def test_headers_from_environ() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "HTTP_UPGRADE": "websocket",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_CONNECTION": "Upgrade",
        "wsgi.input": object(),
    }
    headers = headers_from_environ(environ)
    assert headers == {
        "upgrade": "websocket",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "connection": "Upgrade",
    }
    assert check_handshake("GET", headers) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_response() -> None:
    assert handshake_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )


def test_handshake_response_extra_headers() -> None:
    head = handshake_response("abc=", [("Set-Cookie", "io=x; Path=/")])
    assert head.endswith(b"Sec-WebSocket-Accept: abc=\r\nSet-Cookie: io=x; Path=/\r\n\r\n")


@pytest.mark.parametrize(
    "header",
    [("X-Evil", "a\r\nInjected: 1"), ("X\nEvil", "a"), ("", "a"), ("X:Y", "a"), ("X", "€")],
)
def test_handshake_response_refuses_bad_headers(header: tuple[str, str]) -> None:
    with pytest.raises(LocalProtocolError):
        handshake_response("abc=", [header])


# ---------------------------------------------------------------------------
# encoding: golden frames of RFC 6455 section 5.7
# ---------------------------------------------------------------------------


def test_encode_text_hello() -> None:
    assert encode_text("Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])


def test_encode_fragmented_hello() -> None:
    assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
    assert encode_frame(Opcode.CONTINUATION, b"lo") == bytes([0x80, 0x02, 0x6C, 0x6F])


def test_encode_ping_pong_hello() -> None:
    assert encode_ping(b"Hello") == bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert encode_pong(b"Hello") == bytes([0x8A, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert encode_ping() == b"\x89\x00"
    assert encode_pong() == b"\x8a\x00"


def test_encode_binary_256() -> None:
    data = os.urandom(256)
    assert encode_binary(data) == bytes([0x82, 0x7E, 0x01, 0x00]) + data


def test_encode_binary_64k() -> None:
    data = os.urandom(65536)
    frame = encode_binary(data)
    assert frame[:10] == bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00])
    assert frame[10:] == data


@pytest.mark.parametrize(("size", "head_len"), [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_encode_length_boundaries(size: int, head_len: int) -> None:
    frame = encode_binary(b"\0" * size)
    assert len(frame) == size + head_len


def test_encode_frame_accepts_bytearray_and_memoryview() -> None:
    assert encode_binary(bytearray(b"ab")) == b"\x82\x02ab"
    assert encode_frame(Opcode.BINARY, memoryview(b"ab")) == b"\x82\x02ab"


def test_encode_close() -> None:
    assert encode_close() == b"\x88\x02\x03\xe8"
    assert encode_close(1001, "bye") == b"\x88\x05\x03\xe9bye"
    assert encode_close(4000, "é") == b"\x88\x04\x0f\xa0\xc3\xa9"
    assert encode_close(1005) == b"\x88\x00"


@pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 2000, 2999, 5000, 65535])
def test_encode_close_invalid_code(code: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_close(code)


def test_encode_close_reason_limits() -> None:
    assert len(encode_close(1000, "x" * 123)) == 2 + 125
    with pytest.raises(LocalProtocolError):
        encode_close(1000, "x" * 124)
    with pytest.raises(LocalProtocolError):
        encode_close(1005, "reason needs a code")


def test_encode_control_frame_limits() -> None:
    assert len(encode_ping(b"x" * 125)) == 127
    with pytest.raises(LocalProtocolError):
        encode_ping(b"x" * 126)
    with pytest.raises(LocalProtocolError):
        encode_frame(Opcode.PING, b"", fin=False)
    # An int where the signature says Opcode is the caller's type error: the pure module
    # rejects the reserved opcode itself, the mypyc-compiled one checks the argument's type
    # first (TypeError); either way nothing is encoded.
    with pytest.raises((LocalProtocolError, TypeError)):
        encode_frame(3, b"")  # type: ignore[arg-type]


def test_is_valid_close_code() -> None:
    valid = [c for c in range(6000) if is_valid_close_code(c)]
    assert valid == [1000, 1001, 1002, 1003, *range(1007, 1012), *range(3000, 5000)]


# ---------------------------------------------------------------------------
# unmask
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 8191, 8192, 8193, 65536])
def test_unmask_matches_reference(size: int) -> None:
    mask = os.urandom(4)
    payload = os.urandom(size)
    expected = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    assert unmask(mask, payload) == expected
    assert unmask(mask, bytearray(payload)) == expected
    assert unmask(mask, expected) == payload


# ---------------------------------------------------------------------------
# parsing: golden frames
# ---------------------------------------------------------------------------

RFC_MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
RFC_MASKED_PONG = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])


def test_client_frame_helper_matches_rfc() -> None:
    assert client_frame(0x1, b"Hello") == RFC_MASKED_HELLO
    assert client_frame(0xA, b"Hello") == RFC_MASKED_PONG


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7])
def test_parse_masked_hello(chunk: int | None) -> None:
    assert feed_all(RFC_MASKED_HELLO, chunk) == [TextMessage("Hello")]


def test_parse_masked_pong() -> None:
    assert feed_all(RFC_MASKED_PONG) == [Pong(b"Hello")]


def test_parse_ping_hello() -> None:
    assert feed_all(client_frame(0x9, b"Hello", mask=os.urandom(4))) == [Ping(b"Hello")]


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_parse_fragmented_hello(chunk: int | None) -> None:
    stream = client_frame(0x1, b"Hel", fin=False) + client_frame(0x0, b"lo")
    assert feed_all(stream, chunk) == [TextMessage("Hello")]


def test_parse_control_frames_between_fragments() -> None:
    stream = (
        client_frame(0x2, b"ab", fin=False)
        + client_frame(0x9, b"p1")
        + client_frame(0x0, b"cd", fin=False)
        + client_frame(0xA, b"p2")
        + client_frame(0x0, b"ef")
        + client_frame(0x1, b"next")
    )
    assert feed_all(stream) == [
        Ping(b"p1"),
        Pong(b"p2"),
        BinaryMessage(b"abcdef"),
        TextMessage("next"),
    ]


def test_parse_binary_256() -> None:
    data = os.urandom(256)
    frame = client_frame(0x2, data)
    assert frame[:4] == bytes([0x82, 0xFE, 0x01, 0x00])
    assert feed_all(frame) == [BinaryMessage(data)]


@pytest.mark.parametrize("chunk", [None, 1000, 4096])
def test_parse_binary_64k(chunk: int | None) -> None:
    data = os.urandom(65536)
    frame = client_frame(0x2, data, mask=os.urandom(4))
    assert frame[:10] == bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00])
    assert feed_all(frame, chunk) == [BinaryMessage(data)]


@pytest.mark.parametrize("length_bytes", [2, 8])
def test_parse_accepts_non_minimal_lengths(length_bytes: int) -> None:
    assert feed_all(client_frame(0x1, b"hi", length_bytes=length_bytes)) == [TextMessage("hi")]
    assert feed_all(client_frame(0x9, b"hi", length_bytes=length_bytes)) == [Ping(b"hi")]


def test_parse_empty_messages() -> None:
    stream = client_frame(0x1, b"") + client_frame(0x2, b"") + client_frame(0x9, b"")
    assert feed_all(stream) == [TextMessage(""), BinaryMessage(b""), Ping(b"")]


def test_parse_empty_fragments() -> None:
    stream = (
        client_frame(0x1, b"", fin=False)
        + client_frame(0x0, b"", fin=False)
        + client_frame(0x0, "é".encode())
    )
    assert feed_all(stream) == [TextMessage("é")]


def test_parse_utf8_split_across_fragments() -> None:
    raw = "h€llo 😀".encode()
    stream = b"".join(
        client_frame(0x1 if i == 0 else 0x0, raw[i : i + 1], fin=i == len(raw) - 1)
        for i in range(len(raw))
    )
    assert feed_all(stream) == [TextMessage("h€llo 😀")]


def test_parse_many_messages_in_one_feed() -> None:
    stream = b"".join(client_frame(0x1, f"m{i}".encode(), mask=os.urandom(4)) for i in range(500))
    assert feed_all(stream) == [TextMessage(f"m{i}") for i in range(500)]


def test_parse_empty_feed() -> None:
    parser = FrameParser()
    assert parser.feed(b"") == []
    assert parser.feed(RFC_MASKED_HELLO[:1]) == []
    assert parser.feed(b"") == []
    assert parser.feed(RFC_MASKED_HELLO[1:]) == [TextMessage("Hello")]


def test_parse_large_message_in_chunks() -> None:
    data = os.urandom(999_990)
    stream = client_frame(0x2, data[:500_000], fin=False) + client_frame(0x0, data[500_000:])
    assert feed_all(stream, 4096) == [BinaryMessage(data)]


# ---------------------------------------------------------------------------
# close frames
# ---------------------------------------------------------------------------


def test_close_empty_is_1005() -> None:
    assert feed_all(client_frame(0x8, b"")) == [CloseReceived(1005, "")]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_close_valid_codes(code: int) -> None:
    payload = struct.pack("!H", code) + "bye é".encode()
    assert feed_all(client_frame(0x8, payload)) == [CloseReceived(code, "bye é")]


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000, 2999, 5000, 65535]
)
def test_close_invalid_codes(code: int) -> None:
    expect_error(client_frame(0x8, struct.pack("!H", code)), 1002)


def test_close_one_byte_payload() -> None:
    expect_error(client_frame(0x8, b"\x03"), 1002)


def test_close_invalid_utf8_reason() -> None:
    expect_error(client_frame(0x8, b"\x03\xe8\xff"), 1007)


def test_bytes_after_close_are_ignored() -> None:
    parser = FrameParser()
    events = parser.feed(client_frame(0x8, b"\x03\xe8") + client_frame(0x1, b"late") + b"\xff\xff")
    assert events == [CloseReceived(1000, "")]
    assert parser.closed
    assert parser.feed(b"garbage, even invalid frames") == []


def test_close_between_fragments() -> None:
    stream = client_frame(0x1, b"He", fin=False) + client_frame(0x8, b"\x03\xe9")
    assert feed_all(stream) == [CloseReceived(1001, "")]


# ---------------------------------------------------------------------------
# protocol errors
# ---------------------------------------------------------------------------


def test_unmasked_frame() -> None:
    expect_error(client_frame(0x1, b"Hello", mask=None), 1002)


def test_unmasked_frame_fails_from_two_bytes() -> None:
    expect_error(b"\x81\x05", 1002)


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_rsv_bits(rsv: int) -> None:
    expect_error(client_frame(0x1, b"x", rsv=rsv), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcodes(opcode: int) -> None:
    expect_error(client_frame(opcode, b"x"), 1002)


@pytest.mark.parametrize("opcode", [0x8, 0x9, 0xA])
def test_control_frame_too_long(opcode: int) -> None:
    expect_error(client_frame(opcode, b"x" * 126), 1002)
    # non-minimal encoding of a too long control payload, header only
    expect_error(client_frame(opcode, b"", length=126, length_bytes=2), 1002)


@pytest.mark.parametrize("opcode", [0x8, 0x9, 0xA])
def test_control_frame_fragmented(opcode: int) -> None:
    expect_error(client_frame(opcode, b"", fin=False), 1002)


def test_continuation_without_message() -> None:
    expect_error(client_frame(0x0, b"x"), 1002)


def test_continuation_after_finished_message() -> None:
    expect_error(client_frame(0x1, b"a") + client_frame(0x0, b"b"), 1002)


@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_new_data_frame_inside_fragmented_message(opcode: int) -> None:
    expect_error(client_frame(0x2, b"a", fin=False) + client_frame(opcode, b"b"), 1002)


def test_64bit_length_top_bit() -> None:
    header = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + RFC_MASK
    expect_error(header, 1002, max_message_size=1 << 70)
    expect_error(header, 1002)


def test_too_big_single_frame_fails_on_header() -> None:
    # only the header of a 2 MB frame: the error comes before any payload
    header = bytes([0x82, 0xFF]) + struct.pack("!Q", 2_000_000) + RFC_MASK
    error = expect_error(header, 1009)
    assert "1000000" in str(error)


def test_too_big_16bit_frame() -> None:
    expect_error(client_frame(0x1, b"", length=200, length_bytes=2), 1009, max_message_size=100)


def test_message_at_limit_is_accepted() -> None:
    assert feed_all(client_frame(0x2, b"x" * 100), max_message_size=100) == [
        BinaryMessage(b"x" * 100)
    ]


def test_too_big_fragmented_message() -> None:
    stream = (
        client_frame(0x2, b"x" * 60, fin=False)
        + client_frame(0x9, b"control frames do not count" * 3)
        + client_frame(0x0, b"", fin=False, length=41)
    )
    expect_error(stream, 1009, max_message_size=100)
    ok = client_frame(0x2, b"x" * 60, fin=False) + client_frame(0x0, b"y" * 40)
    assert feed_all(ok, max_message_size=100) == [BinaryMessage(b"x" * 60 + b"y" * 40)]


def test_message_size_resets_between_messages() -> None:
    stream = b"".join(client_frame(0x1, b"x" * 80) for _ in range(5))
    assert feed_all(stream, max_message_size=100) == [TextMessage("x" * 80)] * 5


@pytest.mark.parametrize(
    "raw", [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"ok\xe2\x82"]
)
def test_invalid_utf8_text(raw: bytes) -> None:
    expect_error(client_frame(0x1, raw), 1007)


def test_invalid_utf8_in_first_fragment_fails_fast() -> None:
    expect_error(client_frame(0x1, b"\xff", fin=False), 1007)


def test_truncated_utf8_at_end_of_fragmented_message() -> None:
    stream = client_frame(0x1, b"ok", fin=False) + client_frame(0x0, b"\xe2\x82")
    expect_error(stream, 1007)


def test_invalid_utf8_is_fine_in_binary() -> None:
    assert feed_all(client_frame(0x2, b"\xff")) == [BinaryMessage(b"\xff")]


def test_parser_stays_failed() -> None:
    parser = FrameParser()
    with pytest.raises(FrameError) as first:
        parser.feed(client_frame(0x1, b"\xff"))
    assert parser.failed
    for _ in range(3):
        with pytest.raises(FrameError) as again:
            parser.feed(RFC_MASKED_HELLO)
        assert again.value.close_code == first.value.close_code == 1007
        assert str(again.value) == str(first.value)


def test_error_keeps_events_decoded_before_it() -> None:
    stream = RFC_MASKED_HELLO + client_frame(0x9, b"p") + client_frame(0x3, b"")
    error = expect_error(stream, 1002)
    assert error.events == [TextMessage("Hello"), Ping(b"p")]


def test_error_in_later_feed_has_no_old_events() -> None:
    parser = FrameParser()
    assert parser.feed(RFC_MASKED_HELLO) == [TextMessage("Hello")]
    with pytest.raises(FrameError) as info:
        parser.feed(b"\x81\x05")
    assert info.value.events == []
