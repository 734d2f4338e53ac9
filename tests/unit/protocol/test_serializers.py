"""Hardening of the codec and HTTP helpers, found by the hostile catalogue (tests/hostile).

- JSON from a client may carry lone surrogates (``"\\ud800"``); ``json.loads``
  turns them into ``str`` code points that UTF-8 cannot encode, so echoing or
  broadcasting them raised ``UnicodeEncodeError`` in the WebSocket writer (the
  receiver's connection dropped) or in the polling GET (a 500, messages lost).
  ``JSONSerializer.dumps`` now escapes them.
- A binary packet announcing 0 attachments had its placeholders accepted as plain
  data (``50-["ev",{"_placeholder":true,"num":0}]``) after a hot-path change;
  found by tests/fuzz.
- A malformed ``Origin`` (``http://a:xyz``, ``http://[::1``) or ``Host`` header made
  the same-origin check raise ``ValueError``: a 500 with a traceback instead of 403.
"""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from sio_wsgi.engine.http import origin_allowed
from sio_wsgi.exceptions import RemoteProtocolError
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


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://a:xyz", "127.0.0.1:5000"),
        ("http://[::1", "127.0.0.1:5000"),
        ("http://127.0.0.1:99999", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:xyz"),
        ("http://127.0.0.1:5000", "[::1"),
    ],
)
def test_malformed_origin_or_host_is_refused_not_raised(origin: str, host: str) -> None:
    assert origin_allowed(origin, None, host, "http") is False


@pytest.mark.parametrize(
    "text",
    ['50-["ev",{"_placeholder":true,"num":0}]', '60-1[{"_placeholder":true,"num":0}]'],
)
def test_placeholder_without_attachment_is_refused(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        sio.decode(text, JSONSerializer())


def test_binary_packet_with_zero_attachments_and_plain_data_is_fine() -> None:
    packet = sio.decode('50-["ev",{"a":1}]', JSONSerializer())
    assert packet.data == ["ev", {"a": 1}]
