"""Socket.IO v5 codec: golden strings, round trips, and hostile input."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sio_wsgi.exceptions import ConfigError, LocalProtocolError, RemoteProtocolError
from sio_wsgi.protocol.serializers import (
    JSONSerializer,
    MsgpackSerializer,
    get_serializer,
)
from sio_wsgi.protocol.sio import (
    AttachmentAssembler,
    Limits,
    Packet,
    PacketType,
    decode,
    encode,
)

JSON = JSONSerializer()


def on_wire(messages: list[str | bytes]) -> list[str | bytes]:
    """What the client sees: Engine.IO adds the message type ``4`` to text."""
    return ["4" + m if isinstance(m, str) else m for m in messages]


def from_wire(text: str) -> str:
    """Strip the Engine.IO message type (the engine hands the rest to us)."""
    assert text.startswith("4")
    return text[1:]


PH0 = {"_placeholder": True, "num": 0}
PH1 = {"_placeholder": True, "num": 1}


# --------------------------------------------------------------------- golden strings

ENCODE_GOLDEN = [
    (Packet(PacketType.EVENT, data=["foo"]), ['42["foo"]']),
    (Packet(PacketType.CONNECT, "/admin", {"sid": "x"}), ['40/admin,{"sid":"x"}']),
    (Packet(PacketType.CONNECT), ["40"]),
    (Packet(PacketType.DISCONNECT, "/admin"), ["41/admin,"]),
    (Packet(PacketType.ACK, data=[1, "2", {"3": [False]}], id=456), ['43456[1,"2",{"3":[false]}]']),
    (Packet(PacketType.ACK, "/admin", ["bar"], 13), ['43/admin,13["bar"]']),
    (
        Packet(PacketType.CONNECT_ERROR, "/random", {"message": "Invalid namespace"}),
        ['44/random,{"message":"Invalid namespace"}'],
    ),
    (
        Packet(PacketType.EVENT, data=["baz", b"\x01\x02"]),
        ['451-["baz",{"_placeholder":true,"num":0}]', b"\x01\x02"],
    ),
    (
        Packet(PacketType.ACK, data=[b"a", {"k": b"b"}], id=15),
        ['462-15[{"_placeholder":true,"num":0},{"k":{"_placeholder":true,"num":1}}]', b"a", b"b"],
    ),
    (Packet(PacketType.EVENT, "/chat", ["é", "\u2603"], 7), ['42/chat,7["é","☃"]']),
]


@pytest.mark.parametrize(("packet", "wire"), ENCODE_GOLDEN)
def test_encode_golden(packet: Packet, wire: list[str | bytes]) -> None:
    assert on_wire(encode(packet, JSON)) == wire


DECODE_GOLDEN = [
    ('42["foo"]', Packet(PacketType.EVENT, "/", ["foo"])),
    ("40", Packet(PacketType.CONNECT)),
    ("40/admin,", Packet(PacketType.CONNECT, "/admin")),
    ("40/random", Packet(PacketType.CONNECT, "/random")),
    ('40{"token":"123"}', Packet(PacketType.CONNECT, "/", {"token": "123"})),
    ('40/admin,{"sid":"x"}', Packet(PacketType.CONNECT, "/admin", {"sid": "x"})),
    ("41", Packet(PacketType.DISCONNECT)),
    ("41/custom,", Packet(PacketType.DISCONNECT, "/custom")),
    (
        '42456["message-with-ack",1,"2",{"3":[false]}]',
        Packet(PacketType.EVENT, "/", ["message-with-ack", 1, "2", {"3": [False]}], 456),
    ),
    ('43456[1,"2",{"3":[false]}]', Packet(PacketType.ACK, "/", [1, "2", {"3": [False]}], 456)),
    ("4313[]", Packet(PacketType.ACK, "/", [], 13)),
    ('43/admin,13["bar"]', Packet(PacketType.ACK, "/admin", ["bar"], 13)),
    ('44{"message":"x"}', Packet(PacketType.CONNECT_ERROR, "/", {"message": "x"})),
]


@pytest.mark.parametrize(("wire", "packet"), DECODE_GOLDEN)
def test_decode_golden(wire: str, packet: Packet) -> None:
    assert decode(from_wire(wire), JSON) == packet


def test_decode_binary_event_with_assembler() -> None:
    head = decode(
        '52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', JSON
    )
    assert head.type is PacketType.BINARY_EVENT
    assert head.attachments == 2
    assembler = AttachmentAssembler(head)
    assert assembler.add(b"\x01") is None
    done = assembler.add(b"\x02\x03")
    assert done == Packet(PacketType.BINARY_EVENT, "/", ["message", b"\x01", b"\x02\x03"])
    assert assembler.done
    with pytest.raises(RemoteProtocolError):
        assembler.add(b"extra")


def test_decode_binary_ack_golden() -> None:
    head = decode('61-15["x",{"_placeholder":true,"num":0}]', JSON)
    assert (head.type, head.id, head.attachments) == (PacketType.BINARY_ACK, 15, 1)
    assert AttachmentAssembler(head).add(b"z") == Packet(
        PacketType.BINARY_ACK, "/", ["x", b"z"], 15
    )


def test_assembler_rejects_text() -> None:
    head = decode('51-["a",{"_placeholder":true,"num":0}]', JSON)
    with pytest.raises(RemoteProtocolError):
        AttachmentAssembler(head).add("4text")


def test_placeholder_in_plain_event_is_data() -> None:
    packet = decode('2["a",{"_placeholder":true,"num":0}]', JSON)
    assert packet.data == ["a", PH0]


def test_encode_tuple_and_bytearray() -> None:
    wire = encode(Packet(PacketType.EVENT, data=("e", (1, 2), bytearray(b"x"))), JSON)
    assert wire == ['51-["e",[1,2],{"_placeholder":true,"num":0}]', b"x"]


# --------------------------------------------------------------------- hostile input

HOSTILE = [
    "",
    "abc",
    "4abc",
    "42{}",
    "42abc[]",
    '42abc["x"]',
    "42[]",
    "42[1]",
    '42"x"',
    "42",
    '42["connect"]',
    '42["disconnect",1]',
    '42["newListener"]',
    '42["connect_error"]',
    "7",
    "9[]",
    "-1",
    "40[]",
    '40"x"',
    "40123",
    "41{}",
    '41["x"]',
    "43[]",
    "431",
    '431{"a":1}',
    "44",
    "44[]",
    '45["x"]',
    '45-["x"]',
    '4a-["x"]',
    '411-["x"]',
    '4511-["x",{"_placeholder":true,"num":0}]',
    '451-["x",{"_placeholder":true,"num":1}]',
    '451-["x",{"_placeholder":true,"num":-1}]',
    '452-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]',
    '451-["x",{"_placeholder":true,"num":"0"}]',
    '451-["x",{"_placeholder":true,"num":true}]',
    '451-["x",{"_placeholder":true}]',
    '451-["x",{"_placeholder":true,"num":0,"more":1}]',
    '42["x"]garbage',
    '42["x"]]',
    "42[NaN]",
    '42["x",Infinity]',
    '421234567890123456["x"]',
    "4" + "2" * 30 + '["x"]',
    '42admin,["x"]',
    '4999999999-["x"]',
    '42["x",' + "[" * 100 + "]" * 100 + "]",
    '42["x",' + "[" * 100_000 + "]" * 100_000 + "]",
    "\u0662" + '["x"]',
    "4\u0662" + '["x"]',
    '42\u0661["x"]',
]


EXTRA_HOSTILE = [  # Socket.IO level (no Engine.IO prefix)
    '5999999-["x"]',
    '511-["x"]',
    "2/chat",
    '2/chat,abc["x"]',
    '0/chat,{"a":1}x',
    "6",
    "3/x,[]",
]


@pytest.mark.parametrize("wire", HOSTILE)
def test_hostile_wire_raises_remote_protocol_error(wire: str) -> None:
    # written as seen on the wire; the engine strips the leading message type 4
    with pytest.raises(RemoteProtocolError):
        decode(wire[1:] if wire.startswith("4") else wire, JSON)


@pytest.mark.parametrize("text", EXTRA_HOSTILE)
def test_hostile_packet_raises_remote_protocol_error(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(text, JSON)


def test_binary_message_in_text_mode_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        decode(b"2", JSON)


def test_limits_are_configurable() -> None:
    wire = '53-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},1]'
    assert decode(wire, JSON, Limits(max_attachments=3)).attachments == 3
    with pytest.raises(RemoteProtocolError):
        decode(wire, JSON, Limits(max_attachments=2))
    nested = '2["x",[[[1]]]]'
    assert decode(nested, JSON, Limits(max_json_depth=4)).data == ["x", [[[1]]]]
    with pytest.raises(RemoteProtocolError):
        decode(nested, JSON, Limits(max_json_depth=3))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_text_only_raises_remote_protocol_error(wire: str) -> None:
    try:
        packet = decode(wire, JSON)
    except RemoteProtocolError:
        return
    assert isinstance(packet, Packet)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "51-", "61-", "52-"]),
    st.sampled_from(["", "/", "/a,", "/a", "/,", ","]),
    st.sampled_from(["", "1", "12", "0" * 16]),
    st.sampled_from(["", "[]", '["e"]', "{}", '"s"', "1", '["e",{"_placeholder":true,"num":0}]']),
)
def test_fuzz_structured_only_raises_remote_protocol_error(
    head: str, nsp: str, ack: str, body: str
) -> None:
    try:
        decode(head + nsp + ack + body, JSON)
    except RemoteProtocolError:
        pass


# --------------------------------------------------------------------- round trips

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
values = st.recursive(
    json_scalars | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=5).filter(lambda k: k != "_placeholder"), children, max_size=4
        )
    ),
    max_leaves=12,
)
event_names = st.text(min_size=0, max_size=10).filter(
    lambda name: (
        name
        not in {
            "connect",
            "connect_error",
            "disconnect",
            "disconnecting",
            "newListener",
            "removeListener",
        }
    )
)
namespaces = st.sampled_from(["/", "/admin", "/a/b", "/ü"])
ack_ids = st.none() | st.integers(min_value=0, max_value=10**15 - 1)


def _count_bytes(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, list):
        return sum(_count_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_bytes(v) for v in value.values())
    return 0


def _decode_all(wire: list[str | bytes], serializer: Any, limits: Limits) -> Packet:
    head = decode(wire[0], serializer, limits)
    if not head.attachments:
        assert len(wire) == 1
        return head
    assembler = AttachmentAssembler(head)
    results = [assembler.add(item) for item in wire[1:]]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] is not None
    return results[-1]


@settings(max_examples=200, deadline=None)
@given(event_names, st.lists(values, max_size=4), namespaces, ack_ids)
def test_event_round_trip(name: str, args: list[Any], nsp: str, ack: int | None) -> None:
    packet = Packet(PacketType.EVENT, nsp, [name, *args], ack)
    limits = Limits(max_attachments=1000, max_json_depth=1000)
    wire = encode(packet, JSON)
    result = _decode_all(wire, JSON, limits)
    binary = _count_bytes(args) > 0
    assert result.type is (PacketType.BINARY_EVENT if binary else PacketType.EVENT)
    assert (result.namespace, result.data, result.id) == (nsp, packet.data, ack)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=4), namespaces, st.integers(min_value=0, max_value=10**15 - 1))
def test_ack_round_trip(args: list[Any], nsp: str, ack: int) -> None:
    packet = Packet(PacketType.ACK, nsp, args, ack)
    limits = Limits(max_attachments=1000, max_json_depth=1000)
    result = _decode_all(encode(packet, JSON), JSON, limits)
    assert (result.namespace, result.data, result.id) == (nsp, args, ack)


@settings(max_examples=100, deadline=None)
@given(event_names, st.lists(values, max_size=4), namespaces, ack_ids)
def test_msgpack_round_trip(name: str, args: list[Any], nsp: str, ack: int | None) -> None:
    serializer = MsgpackSerializer()
    packet = Packet(PacketType.EVENT, nsp, [name, *args], ack)
    wire = encode(packet, serializer)
    assert len(wire) == 1
    assert isinstance(wire[0], bytes)
    assert decode(wire[0], serializer, Limits(max_json_depth=1000)) == packet


# --------------------------------------------------------------------- msgpack


def test_msgpack_shape_matches_socket_io_msgpack_parser() -> None:
    import msgpack

    serializer = MsgpackSerializer()
    [wire] = encode(Packet(PacketType.EVENT, "/chat", ["e", b"\x00"], 3), serializer)
    assert isinstance(wire, bytes)
    assert msgpack.unpackb(wire) == {"type": 2, "nsp": "/chat", "data": ["e", b"\x00"], "id": 3}
    [connect] = encode(Packet(PacketType.CONNECT), serializer)
    assert isinstance(connect, bytes)
    assert msgpack.unpackb(connect) == {"type": 0, "nsp": "/"}


@pytest.mark.parametrize(
    "obj",
    [
        [2, "/", ["e"]],
        {"type": 9, "nsp": "/"},
        {"type": 5, "nsp": "/", "data": ["e"]},
        {"type": "2", "nsp": "/", "data": ["e"]},
        {"type": 2, "nsp": 1, "data": ["e"]},
        {"type": 2, "nsp": "x", "data": ["e"]},
        {"type": 2, "nsp": "/", "data": {}},
        {"type": 2, "nsp": "/", "data": ["connect"]},
        {"type": 2, "nsp": "/", "data": ["e"], "id": -1},
        {"type": 2, "nsp": "/", "data": ["e"], "id": "1"},
        {"type": 2, "nsp": "/", "data": ["e"], "extra": 1},
        {"type": 3, "nsp": "/", "data": []},
    ],
)
def test_msgpack_hostile(obj: Any) -> None:
    import msgpack

    with pytest.raises(RemoteProtocolError):
        decode(msgpack.packb(obj), MsgpackSerializer())


@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x92\x01", b"\x81\x01\x02", "text"])
def test_msgpack_garbage(raw: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(raw, MsgpackSerializer())


# --------------------------------------------------------------------- serializers


def test_json_serializer_refuses_nan_both_ways() -> None:
    with pytest.raises(LocalProtocolError):
        JSON.dumps(math.nan)
    with pytest.raises(RemoteProtocolError):
        JSON.loads("NaN")


def test_json_serializer_unencodable() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Packet(PacketType.EVENT, data=["e", object()]), JSON)


def test_json_serializer_custom_module() -> None:
    class Module:
        calls: list[str] = []

        @classmethod
        def dumps(cls, obj: Any, separators: Any = None) -> str:
            cls.calls.append("dumps")
            import json

            return json.dumps(obj, separators=separators)

        @classmethod
        def loads(cls, text: str) -> Any:
            cls.calls.append("loads")
            import json

            return json.loads(text)

    serializer = JSONSerializer(Module)
    assert encode(Packet(PacketType.EVENT, data=["e", 1]), serializer) == ['2["e",1]']
    assert decode('2["e",1]', serializer).data == ["e", 1]
    assert Module.calls == ["dumps", "loads"]


def test_get_serializer() -> None:
    assert isinstance(get_serializer("default"), JSONSerializer)
    assert isinstance(get_serializer("json"), JSONSerializer)
    assert isinstance(get_serializer("msgpack"), MsgpackSerializer)
    custom = JSONSerializer()
    assert get_serializer(custom) is custom
    with pytest.raises(ConfigError):
        get_serializer("yaml")
    with pytest.raises(ConfigError):
        get_serializer(42)


def test_encode_rejects_bad_namespace_and_ack() -> None:
    for packet in (
        Packet(PacketType.EVENT, "chat", ["e"]),
        Packet(PacketType.EVENT, "/a,b", ["e"]),
        Packet(PacketType.EVENT, "/", ["e"], -1),
        Packet(PacketType.EVENT, "/", ["e"], 10**16),
        Packet(PacketType.CONNECT, "/", {"b": b"x"}),
    ):
        with pytest.raises(LocalProtocolError):
            encode(packet, JSON)


# A binary packet announcing 0 attachments had its placeholders accepted as plain data
# after a hot-path change; found by tests/fuzz.
@pytest.mark.parametrize(
    "text",
    ['50-["ev",{"_placeholder":true,"num":0}]', '60-1[{"_placeholder":true,"num":0}]'],
)
def test_placeholder_without_attachment_is_refused(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(text, JSONSerializer())


def test_binary_packet_with_zero_attachments_and_plain_data_is_fine() -> None:
    packet = decode('50-["ev",{"a":1}]', JSONSerializer())
    assert packet.data == ["ev", {"a": 1}]
