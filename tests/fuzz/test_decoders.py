"""Property tests (hypothesis) of the decoders not already fuzzed elsewhere.

Already covered, not repeated here: ``eio.decode_payload`` on random text
(tests/unit/protocol/test_eio.py), the WebSocket ``FrameParser``
(tests/unit/protocol/test_websocket_fuzz.py), ``sio.decode`` on random text and
structured text packets (tests/unit/protocol/test_sio.py).

Here: the attachment assembler over arbitrary message sequences (the way the
server feeds it), ``eio.decode_wire`` / ``decode_text``, polling bodies as
bytes, msgpack whole packets from random bytes and random objects, the JSON
serializer both ways (lone surrogates included), the WebSocket opening
handshake, and the HTTP helpers that read request headers (Origin, Host,
Accept-Encoding). The rule everywhere: the only exception a decoder may raise
is :class:`~sio_wsgi.exceptions.RemoteProtocolError`.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sio_wsgi.engine import http as eio_http
from sio_wsgi.exceptions import RemoteProtocolError
from sio_wsgi.protocol import eio, sio
from sio_wsgi.protocol import websocket as ws
from sio_wsgi.protocol.serializers import JSONSerializer, MsgpackSerializer

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = JSONSerializer()
MSGPACK = MsgpackSerializer()
LIMITS = sio.Limits(max_attachments=4, max_json_depth=12)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


# ---------------------------------------------------------------- Socket.IO stream


def feed(messages: list[str | bytes], serializer: Any = JSON) -> list[sio.Packet]:
    """Feed messages the way the server does (decode, then the assembler).

    :returns: the completed packets.
    :raises RemoteProtocolError: on the first invalid message.
    """
    out: list[sio.Packet] = []
    assembler: sio.AttachmentAssembler | None = None
    for message in messages:
        if assembler is not None:
            packet = assembler.add(message)
            if packet is not None:
                assembler = None
                out.append(packet)
            continue
        packet = sio.decode(message, serializer, LIMITS)
        if packet.attachments:
            assembler = sio.AttachmentAssembler(packet)
        else:
            out.append(packet)
    return out


placeholder = st.builds(
    lambda n: {"_placeholder": True, "num": n}, st.integers(min_value=-2, max_value=6)
)
binary_headers = st.builds(
    lambda kind, count, nsp, ack, args: (
        f"{kind}{count}-{nsp}{ack}" + json.dumps(["ev", *args] if kind == 5 else list(args))
    ),
    st.sampled_from([5, 6]),
    st.integers(min_value=0, max_value=6),
    st.sampled_from(["", "/chat,", "/x,"]),
    st.sampled_from(["", "1", "42"]),
    st.lists(placeholder | json_values, max_size=5),
)
stream_items = (
    binary_headers
    | st.binary(max_size=64)
    | st.text(max_size=40)
    | st.sampled_from(['42["ev",1]', "40", '43/chat,1["a"]', "41"])
)


@FUZZ
@given(st.lists(stream_items, max_size=8))
def test_attachment_stream_only_raises_remote_protocol_error(messages: list[str | bytes]) -> None:
    try:
        packets = feed(messages)
    except RemoteProtocolError:
        return
    for packet in packets:
        assert packet.attachments == 0
        # no placeholder survives into a completed binary packet
        assert '"_placeholder": true' not in json.dumps(packet.data, default=repr)


@FUZZ
@given(st.lists(st.binary(min_size=0, max_size=32), min_size=1, max_size=4), json_values)
def test_attachments_round_trip(buffers: list[bytes], extra: Any) -> None:
    wire = sio.encode(sio.Packet(sio.PacketType.EVENT, "/", ["ev", *buffers, extra]), JSON)
    packets = feed(list(wire))
    assert len(packets) == 1
    assert packets[0].data == ["ev", *buffers, extra]


# ---------------------------------------------------------------- Engine.IO


@FUZZ
@given(st.text(max_size=64) | st.binary(max_size=64))
def test_decode_wire_only_raises_remote_protocol_error(item: str | bytes) -> None:
    try:
        packet = eio.decode_wire(item)
    except RemoteProtocolError:
        return
    assert isinstance(packet.type, eio.PacketType)
    if isinstance(item, bytes):
        assert packet == eio.Packet(eio.PacketType.MESSAGE, item)
    else:
        assert item[:1] + str(packet.data) == item


@FUZZ
@given(st.binary(max_size=256))
def test_polling_body_bytes(body: bytes) -> None:
    """What the polling transport does with a body: strict UTF-8, then the payload decoder."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        packets = eio.decode_payload(text)
    except RemoteProtocolError:
        return
    assert packets and len(packets) == text.count(eio.SEPARATOR) + 1


# ---------------------------------------------------------------- msgpack


@FUZZ
@given(st.binary(max_size=128))
def test_msgpack_random_bytes(raw: bytes) -> None:
    try:
        sio.decode(raw, MSGPACK, LIMITS)
    except RemoteProtocolError:
        pass


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=4) | st.integers(min_value=-(2**63), max_value=2**63 - 1),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.integers(min_value=-1, max_value=8) | msgpack_values,
            "nsp": st.sampled_from(["/", "/chat", "", "x"]) | msgpack_values,
            "data": msgpack_values,
            "id": st.integers(min_value=-1, max_value=2**64 - 1) | msgpack_values,
        },
    )
)
def test_msgpack_structured(obj: dict[str, Any]) -> None:
    try:
        packet = sio.decode(msgpack.packb(obj, use_bin_type=True), MSGPACK, LIMITS)
    except RemoteProtocolError:
        return
    assert packet.namespace.startswith("/")


# ---------------------------------------------------------------- JSON serializer


@FUZZ
@given(st.text(max_size=200))
def test_json_loads_only_raises_remote_protocol_error(text: str) -> None:
    try:
        JSON.loads(text)
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", '{"a":']))
def test_json_deep_nesting(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = '2["ev",' + opener * depth + "1" + closer * depth + "]"
    try:
        packet = sio.decode(text, JSON, LIMITS)
    except RemoteProtocolError:
        assert depth + 1 > LIMITS.max_json_depth
        return
    assert depth + 1 <= LIMITS.max_json_depth
    assert packet.data[0] == "ev"


surrogate_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()),
    max_size=20,
)


@FUZZ
@given(
    st.recursive(
        surrogate_text | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(surrogate_text, c, max_size=3),
        max_leaves=10,
    )
)
def test_json_dumps_is_always_utf8_encodable(value: Any) -> None:
    """Whatever a handler sends back (lone surrogates included) can go on the wire."""
    text = JSON.dumps(value)
    text.encode("utf-8")  # never raises
    assert json.loads(text) == json.loads(json.dumps(value))


# ---------------------------------------------------------------- WebSocket handshake


header_values = st.text(max_size=40) | st.sampled_from(
    ["websocket", "Upgrade", "upgrade, keep-alive", "13", "8", "dGhlIHNhbXBsZSBub25jZQ==", ""]
)


@FUZZ
@given(
    st.sampled_from(["GET", "POST", "get", ""]),
    st.dictionaries(
        st.sampled_from(
            [
                "upgrade",
                "connection",
                "sec-websocket-version",
                "sec-websocket-key",
                "origin",
                "host",
            ]
        ),
        header_values,
    ),
)
def test_check_handshake_only_raises_handshake_error(method: str, headers: dict[str, str]) -> None:
    try:
        accept = ws.check_handshake(method, headers)
    except ws.HandshakeError as exc:
        assert exc.status in (400, 426)
        return
    assert len(accept) == 28


# ---------------------------------------------------------------- HTTP request headers


hosts = st.text(max_size=30) | st.sampled_from(
    ["127.0.0.1:5000", "[::1]:80", "[::1", "a:xyz", "a:99999", "example.com", ""]
)
origins = st.text(max_size=40) | st.builds(
    lambda s, h: f"{s}://{h}", st.sampled_from(["http", "https", "ftp", "null"]), hosts
)


@FUZZ
@given(origins | st.none(), hosts | st.none(), st.sampled_from(["http", "https", "x"]))
def test_origin_check_never_raises(origin: str | None, host: str | None, scheme: str) -> None:
    for allowed in (None, "*", "http://a.example", ["http://a.example"], lambda o: o.endswith("x")):
        result = eio_http.origin_allowed(origin, allowed, host, scheme)
        assert isinstance(result, bool)
        if origin is None:
            assert result
        eio_http.cors_headers(origin, allowed, True, preflight=True, request_headers=host)


@FUZZ
@given(st.text(max_size=60) | st.none(), st.binary(max_size=2000))
def test_accept_encoding_never_raises(accept: str | None, body: bytes) -> None:
    out, encoding = eio_http.compress(body, accept, 100)
    assert encoding in (None, "gzip", "deflate")
    assert (out == body) == (encoding is None)
