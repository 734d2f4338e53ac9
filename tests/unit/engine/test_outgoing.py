"""Outgoing: one object per broadcast, its encodings built once."""

from __future__ import annotations

from sio_wsgi.engine.outgoing import NOOP_OUT, PING_OUT, Outgoing
from sio_wsgi.protocol import websocket as ws
from sio_wsgi.protocol.eio import encode_payload


def test_messages_get_the_message_type_digit_and_binary_stays_raw() -> None:
    out = Outgoing.messages(['2["chat","hi"]', b"\x01\x02"])
    assert out.items == ('42["chat","hi"]', b"\x01\x02")
    assert out.size == len('42["chat","hi"]') + 2


def test_frames_are_one_frame_per_packet_and_built_once() -> None:
    out = Outgoing.messages(["2[1]", b"\x00"])
    frames = out.frames()
    assert frames == ws.encode_text("42[1]") + ws.encode_binary(b"\x00")
    assert out.frames() is frames


def test_payload_is_the_polling_encoding_and_built_once() -> None:
    out = Outgoing.messages(["2[1]", b"\x01\x02\x03\x04"])
    text = out.payload()
    assert text == "42[1]\x1ebAQIDBA==" == encode_payload(out.items)
    assert out.payload() is text


def test_join_keeps_order() -> None:
    a, b = Outgoing.messages(["0{}"]), Outgoing.messages(["2[1]", b"x"])
    assert Outgoing.join([a, b]).items == ("40{}", "42[1]", b"x")


def test_control_packets_are_prebuilt() -> None:
    assert PING_OUT.payload() == "2" and PING_OUT.frames() == ws.encode_text("2")
    assert NOOP_OUT.items == ("6",)
