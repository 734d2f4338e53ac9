"""The bus message codec: typed, versioned JSON with binary preserved, never pickle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_wsgi.managers import messages as bus


def roundtrip(message: bus.BusMessage) -> bus.BusMessage:
    envelope = bus.decode(bus.encode(bus.Envelope("host-a", message)))
    assert envelope.host == "host-a"
    assert envelope.version == bus.WIRE_VERSION
    return envelope.message


ALL = [
    bus.Emit("chat", ["hi", 1, None], "/", ["room"], ["sid1"], 7, True),
    bus.Emit("e", [], "/ns"),
    bus.Disconnect("sid", "/"),
    bus.EnterRoom("sid", "/", "r"),
    bus.LeaveRoom("sid", "/", "r"),
    bus.CloseRoom("r", "/"),
    bus.AckReturn("host-b", 3, [1, "2", {"3": [False]}]),
    bus.Query("q1", "participants", "/", None),
    bus.Query("q2", "rooms", "/", "sid"),
    bus.Reply("host-b", "q1", ["a", "b"]),
    bus.ServerEvent("reload", [{"v": 2}], "/"),
    bus.Hello(reply=True),
    bus.Hello(),
    bus.Bye(),
]


@pytest.mark.parametrize("message", ALL, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips(message: bus.BusMessage) -> None:
    assert roundtrip(message) == message


def test_wire_format_is_plain_versioned_json() -> None:
    raw = bus.encode(bus.Envelope("h1", bus.Emit("ev", [1], "/", ["r"])))
    doc = json.loads(raw)
    assert doc["v"] == 1
    assert doc["type"] == "emit"
    assert doc["host"] == "h1"
    assert doc["data"]["event"] == "ev"
    assert doc["data"]["to"] == ["r"]


def test_binary_is_preserved_anywhere() -> None:
    args: list[Any] = [
        b"\x00\xff",
        {"blob": bytearray(b"abc"), "list": [b"x", 1]},
        memoryview(b"m"),
    ]
    out = roundtrip(bus.Emit("bin", args, "/"))
    assert isinstance(out, bus.Emit)
    assert out.args == [b"\x00\xff", {"blob": b"abc", "list": [b"x", 1]}, b"m"]
    assert isinstance(out.args[0], bytes)


def test_user_dicts_that_look_like_tags_survive() -> None:
    tricky: list[Any] = [{"$bin": "not base64 !"}, {"$esc": {"$bin": "x"}}, {"$bin": 1, "k": 2}]
    out = roundtrip(bus.ServerEvent("t", tricky, "/"))
    assert isinstance(out, bus.ServerEvent)
    assert out.args == tricky


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text()
        | st.binary()
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["$bin", "$esc", "a", "b"]), inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_any_json_or_binary_value_round_trips(value: Any) -> None:
    out = roundtrip(bus.Emit("e", [value], "/"))
    assert isinstance(out, bus.Emit)
    assert out.args == [value]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x80\x04pickle", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"v":2,"type":"emit","host":"h","data":{}}', "version"),
        (b'{"type":"emit","host":"h","data":{}}', "version"),
        (b'{"v":1,"type":"teleport","host":"h","data":{}}', "unknown message type"),
        (b'{"v":1,"type":"emit","data":{}}', "host"),
        (b'{"v":1,"type":"emit","host":"h","data":[]}', "must be an object"),
        (b'{"v":1,"type":"emit","host":"h","data":{"event":"e","namespace":"/"}}', "missing"),
        (
            b'{"v":1,"type":"emit","host":"h","data":{"event":1,"args":[],"namespace":"/"}}',
            "bad value",
        ),
        (
            b'{"v":1,"type":"ack","host":"h","data":{"target":"h","callback_id":true,"args":[]}}',
            "bad value",
        ),
        (
            b'{"v":1,"type":"emit","host":"h","data":{"event":"e","args":[{"$bin":"%%"}],'
            b'"namespace":"/"}}',
            "binary",
        ),
    ],
)
def test_invalid_messages_raise_bus_message_error(raw: bytes, why: str) -> None:
    with pytest.raises(bus.BusMessageError, match=why):
        bus.decode(raw)


def test_unserializable_arguments_raise_on_encode() -> None:
    with pytest.raises(TypeError):
        bus.encode(bus.Envelope("h", bus.Emit("e", [object()], "/")))
