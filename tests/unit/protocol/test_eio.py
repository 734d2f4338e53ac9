"""Engine.IO v4 packet and payload codec: golden strings and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_wsgi.exceptions import RemoteProtocolError
from sio_wsgi.protocol.eio import (
    Packet,
    PacketType,
    decode_payload,
    decode_text,
    decode_wire,
    encode_payload,
    message,
)


def test_golden_payload_with_binary() -> None:
    assert encode_payload(["4hello", b"\x01\x02\x03\x04"]) == "4hello\x1ebAQIDBA=="
    assert decode_payload("4hello\x1ebAQIDBA==") == [
        Packet(PacketType.MESSAGE, "hello"),
        Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04"),
    ]


@pytest.mark.parametrize(
    ("text", "ptype", "data"),
    [
        ("0{}", PacketType.OPEN, "{}"),
        ("1", PacketType.CLOSE, ""),
        ("2", PacketType.PING, ""),
        ("3probe", PacketType.PONG, "probe"),
        ("4", PacketType.MESSAGE, ""),
        ("5", PacketType.UPGRADE, ""),
        ("6", PacketType.NOOP, ""),
    ],
)
def test_decode_each_type(text: str, ptype: PacketType, data: str) -> None:
    assert decode_text(text) == Packet(ptype, data)


@pytest.mark.parametrize("body", ["", "abc", "7", "4a\x1e", "\x1e", "b!!!", "bAQ=\x1e9x"])
def test_bad_payloads_raise_protocol_error(body: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_payload(body)


def test_wire_and_message() -> None:
    assert decode_wire(b"\x00") == Packet(PacketType.MESSAGE, b"\x00")
    assert decode_wire("4x") == Packet(PacketType.MESSAGE, "x")
    assert message("x") == "4x" and message(b"x") == b"x"


items = st.lists(
    st.one_of(st.text().map(lambda t: "4" + t.replace("\x1e", "")), st.binary()), min_size=1
)


@given(items)
def test_payload_round_trip(wire: list[str | bytes]) -> None:
    decoded = decode_payload(encode_payload(wire))
    assert [p.data if isinstance(p.data, bytes) else "4" + p.data for p in decoded] == wire


@given(st.text())
def test_random_text_only_raises_protocol_error(body: str) -> None:
    try:
        decode_payload(body)
    except RemoteProtocolError:
        pass
