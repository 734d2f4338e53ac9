"""permessage-deflate end to end, in every async mode: the official JS client (which
offers the extension) against a server with ``per_message_deflate=True``, and a raw
client that checks the negotiated header, RSV1 on large frames, the per-emit
``compress=False`` and a compressed message from the client."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import zlib
from typing import Any

import pytest

from tests.e2e.e2e_support import b64, check, scenario
from tests.support import HOST

TAIL = b"\x00\x00\xff\xff"
RSV1 = 0x40


@pytest.fixture
def deflate_server(live_server: Any, async_mode: str, impl: str) -> Any:
    if impl != "sio_wsgi":
        pytest.skip("per_message_deflate is sio_wsgi's option")
    return live_server(async_mode, per_message_deflate=True)


@pytest.mark.parametrize("transport", ["websocket", "upgrade"])
def test_js_client_large_messages_both_ways(
    deflate_server: Any, transport: str, node_client: Any
) -> None:
    text = "compressible text " * 3000  # 54 KB, over the 1024-byte threshold
    blob = os.urandom(1000) * 50  # 50 KB binary, compressible
    res = node_client(
        scenario(
            deflate_server,
            transport,
            [
                {"op": "connect"},
                {"op": "emit", "event": "echo", "args": [text, "small"], "ack": True},
                {"op": "emit", "event": "binary", "args": [{"$bin": b64(blob)}], "ack": True},
            ],
        )
    )
    check(res, deflate_server)
    assert res.ack("echo") == [text, "small"]
    assert res.ack("binary")[0]["$bin"] == b64(blob)


class DeflateClient:
    """Just enough of a WebSocket client to see RSV1 and to send a compressed frame."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines
        self.headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "closed"
            self.buf += chunk

    def recv(self) -> tuple[bool, str]:
        """The next text message: (whether it came compressed, its text)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(pos + n)
        payload, self.buf = self.buf[pos : pos + n], self.buf[pos + n :]
        assert b0 & 0x0F == 1, f"opcode {b0 & 0x0F}"
        compressed = bool(b0 & RSV1)
        if compressed:
            payload = zlib.decompressobj(-15).decompress(payload + TAIL)
        return compressed, payload.decode()

    def recv_event(self, name: str) -> tuple[bool, list[Any]]:
        while True:
            compressed, text = self.recv()
            if text.startswith("42"):
                event = json.loads(text[2:])
                if event[0] == name:
                    return compressed, event[1:]

    def send(self, text: str, compress: bool = False) -> None:
        data = text.encode()
        first = 0x81
        if compress:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
            first |= RSV1
        mask = os.urandom(4)
        n = len(data)
        head = bytes([first, 0x80 | n]) if n < 126 else bytes([first, 0xFE]) + struct.pack("!H", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def close(self) -> None:
        self.sock.close()


def test_raw_client_sees_the_extension_rsv1_and_the_compress_flag(deflate_server: Any) -> None:
    client = DeflateClient(deflate_server.port)
    try:
        assert client.headers["sec-websocket-extensions"] == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        )
        compressed, opened = client.recv()
        assert opened.startswith("0{") and not compressed  # small: under the threshold
        client.send("40")
        big = "y" * 5000
        client.send(json.dumps(["echo", big]).join(("42", "")), compress=True)  # inflated
        compressed, args = client.recv_event("echo_back")
        assert args == [big] and compressed  # over the threshold: compressed
        client.send(json.dumps(["echo_plain", big]).join(("42", "")))
        compressed, args = client.recv_event("echo_back")
        assert args == [big] and not compressed  # emit(..., compress=False)
        client.send('42["echo","tiny"]')
        compressed, args = client.recv_event("echo_back")
        assert args == ["tiny"] and not compressed
    finally:
        client.close()


def test_a_client_that_offers_nothing_gets_no_extension(
    deflate_server: Any, node_client: Any
) -> None:
    res = node_client(
        scenario(
            deflate_server,
            "websocket",
            [{"op": "connect"}, {"op": "emit", "event": "echo", "args": ["z" * 5000], "ack": True}],
            options={"perMessageDeflate": False},
        )
    )
    check(res, deflate_server)
    assert res.ack("echo") == ["z" * 5000]
