"""JSONSerializer and the JSON packets it writes, with hostile strings from clients.

JSON from a client may carry lone surrogates (``"\\ud800"``); ``json.loads`` turns
them into ``str`` code points that UTF-8 cannot encode, so echoing or broadcasting
them raised ``UnicodeEncodeError`` in the WebSocket writer (the receiver's
connection dropped) or in the polling GET (a 500, messages lost); found by the
hostile catalogue (tests/hostile). ``JSONSerializer.dumps`` now escapes them.
"""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from sio_wsgi.protocol import sio
from sio_wsgi.protocol.serializers import JSONSerializer


@pytest.mark.parametrize(
    "value",
    [
        ["echo", "\ud800"],
        ["echo", "a\udfffb", {"\udc00": "\ud83d\ude00"}],
        ["echo", "caf\u00e9 \U0001f600", "\ud800"],
    ],
)
def test_dumps_escapes_lone_surrogates(value: Any) -> None:
    text = JSONSerializer().dumps(value)
    text.encode("utf-8")  # must not raise
    assert json.loads(text) == json.loads(json.dumps(value))


def test_dumps_keeps_non_ascii_as_is() -> None:
    assert JSONSerializer().dumps(["caf\u00e9", "\U0001f600"]) == '["caf\u00e9","\U0001f600"]'


def test_dumps_with_custom_json_module_escapes_too() -> None:
    custom = types.SimpleNamespace(
        dumps=lambda obj, separators=None: json.dumps(
            obj, separators=separators, ensure_ascii=False
        ),
        loads=json.loads,
    )
    text = JSONSerializer(custom).dumps(["x", "\ud800"])
    assert text == '["x","\\ud800"]'


def test_round_trip_of_a_client_packet_with_surrogates() -> None:
    codec = JSONSerializer()
    packet = sio.decode('2["echo","\\ud800"]', codec)
    wire = sio.encode(sio.Packet(sio.PacketType.ACK, "/", packet.data[1:], 1), codec)
    assert wire == ['31["\\ud800"]']
    wire[0].encode("utf-8")
