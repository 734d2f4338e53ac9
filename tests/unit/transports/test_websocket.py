"""Hardening of the WebSocket transport, found by the hostile catalogue (tests/hostile).

- The reader must not close the socket under a write in progress: in threading
  mode a protocol-error close frame (1002 / 1007 / 1009) was sometimes never sent,
  because another thread was in the middle of a direct flush when the reader
  finished and closed the socket.
- Under eventlet, ``recv`` on a socket closed by another green thread (the
  upgrade timeout's abort) raises ``EOFError``, not ``OSError``: a stalled
  upgrade ended in a 500 and left the session stuck in UPGRADING.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Any

from sio_wsgi.config import DEFAULTS
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.engine.session import EngineSession, State
from sio_wsgi.protocol import websocket as ws
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from sio_wsgi.transports.hijack import Hijacked
from sio_wsgi.transports.websocket import WebSocketConnection


class _Timer:
    def cancel(self) -> None:
        pass


class _Host:
    """The part of the engine a WebSocket connection calls."""

    def __init__(self) -> None:
        self.options = DEFAULTS
        self.driver = ThreadingDriver()
        self.logger = logging.getLogger("test")
        self.closed: list[str] = []

    def call_later(self, delay: float, fn: Any, *args: Any) -> _Timer:
        return _Timer()

    def close_session(
        self, session: EngineSession, reason: DisconnectReason, send_close_packet: bool
    ) -> None:
        if session.close(reason):
            self.closed.append(reason)
            assert session.connection is not None
            session.connection.session_closed(send_close_packet)


def _open_session(host: _Host) -> EngineSession:
    session = EngineSession("sid", "websocket", {}, host.driver, 1_000_000)
    session.state = State.OPEN
    return session


def _read_frames(sock: socket.socket, timeout: float = 3.0) -> list[tuple[int, bytes]]:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 2:
        n = data[1] & 0x7F
        frames.append((data[0] & 0x0F, data[2 : 2 + n]))
        data = data[2 + n :]
    return frames


def test_finish_waits_for_a_direct_flush_in_another_task() -> None:
    host = _Host()
    server_sock, client_sock = socket.socketpair()
    try:
        conn = WebSocketConnection(host, Hijacked(sock=server_sock))  # type: ignore[arg-type]
        session = _open_session(host)
        assert conn.attach(session)
        # another task is in the middle of a direct flush
        with session.lock:
            conn._write_state = 1
        conn.send_control(ws.encode_close(1002, "bad frame"))  # queued behind it
        host.close_session(session, DisconnectReason.PARSE_ERROR, send_close_packet=False)

        def other_flusher_continues() -> None:
            time.sleep(0.2)
            conn._flush_direct(session, b"")

        t = threading.Thread(target=other_flusher_continues)
        t.start()
        conn.finish(session)  # must not close the socket before that flush
        t.join(5)
        frames = _read_frames(client_sock)
        assert frames[:1] == [(8, struct.pack("!H", 1002) + b"bad frame")], frames
    finally:
        client_sock.close()
        server_sock.close()


def test_finish_does_not_wait_when_idle() -> None:
    host = _Host()
    server_sock, client_sock = socket.socketpair()
    try:
        conn = WebSocketConnection(host, Hijacked(sock=server_sock))  # type: ignore[arg-type]
        session = _open_session(host)
        assert conn.attach(session)
        started = time.monotonic()
        conn.finish(session)
        assert time.monotonic() - started < 0.5
    finally:
        client_sock.close()
        server_sock.close()


class _EOFSocket:
    """What an eventlet GreenSocket does once another green thread closed it."""

    def recv(self, size: int, flags: int = 0) -> bytes:
        raise EOFError()

    def fileno(self) -> int:
        return -1

    def shutdown(self, how: int) -> None:
        raise OSError("closed")

    def close(self) -> None:
        pass


def test_recv_eof_error_ends_the_stream_quietly() -> None:
    host = _Host()
    conn = WebSocketConnection(host, Hijacked(sock=_EOFSocket()))  # type: ignore[arg-type]
    session = EngineSession("sid", "polling", {}, host.driver, 1_000_000)
    assert conn.probe(session) is False  # no exception out of the upgrade


class _EchoingHost(_Host):
    """A host that records what the reader hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[object] = []

    def on_message(self, sid: str, data: object) -> None:
        self.messages.append(data)

    def handle_text(self, session: EngineSession, text: str) -> None:
        self.messages.append(text)


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = b"\x01\x02\x03\x04"
    head = bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload)))
    return head + mask + ws.unmask(mask, payload)


def _read_loop_with(client_bytes: bytes) -> tuple[_EchoingHost, list[tuple[int, bytes]]]:
    """Run a connection's reader over ``client_bytes`` (one write); return the host
    and the frames the server sent."""
    host = _EchoingHost()
    server_sock, client_sock = socket.socketpair()
    try:
        conn = WebSocketConnection(host, Hijacked(sock=server_sock))  # type: ignore[arg-type]
        session = _open_session(host)
        assert conn.attach(session)
        client_sock.sendall(client_bytes)
        conn.read_loop(session)
        conn.finish(session)
        return host, _read_frames(client_sock)
    finally:
        client_sock.close()
        server_sock.close()


def test_a_protocol_error_sends_one_close_frame_with_its_code() -> None:
    # Autobahn 7.3.2, 7.9.x and the close code of every fail-fast case: a Close
    # frame saying 1000 followed the one carrying the error's code
    host, frames = _read_loop_with(_masked(8, b"\x03"))  # a 1-byte close payload
    closes = [payload for opcode, payload in frames if opcode == 8]
    assert len(closes) == 1, frames
    assert closes[0][:2] == struct.pack("!H", 1002)
    assert host.closed == [DisconnectReason.PARSE_ERROR]


def test_messages_before_a_bad_frame_in_the_same_read_are_delivered() -> None:
    # Autobahn 3.2, 4.1.3, 5.15: the frames before the bad one arrive in the
    # same recv(); FrameError.events holds them
    _, frames = _read_loop_with(_masked(1, b"4hello") + _masked(5, b""))
    assert frames[-1][0] == 8 and frames[-1][1][:2] == struct.pack("!H", 1002)
    host, _ = _read_loop_with(_masked(1, b"4hello") + _masked(2, b"\x00") + _masked(5, b""))
    assert host.messages == ["hello", b"\x00"]


def test_the_client_close_code_is_echoed() -> None:
    _, frames = _read_loop_with(_masked(8, struct.pack("!H", 3000) + b"bye"))
    assert frames == [(8, struct.pack("!H", 3000))]
    _, frames = _read_loop_with(_masked(8, b""))  # no status code: an empty Close back
    assert frames == [(8, b"")]
