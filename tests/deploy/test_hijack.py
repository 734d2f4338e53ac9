"""sio_wsgi.transports.hijack under every real WSGI server, each in a subprocess.

The app (``hijack_app.py``) takes the socket over and echoes raw bytes. The
checks: the 101 head arrives, bytes flow both ways, the server writes nothing
after the hijack and logs no error, the connection is not reused for another
request, and the server keeps serving.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sio_wsgi.transports.hijack import Hijacked, hijack, parse_response_head
from tests.deploy.deploy_support import SERVER_KINDS, DeployServer, recv_until, running_server
from tests.deploy.hijack_app import FIRST

pytestmark = pytest.mark.timeout(120)

HIJACK_KINDS = [kind for kind in SERVER_KINDS if kind != "gunicorn-sync"]
UPGRADE = (
    b"GET /echo HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
PLAIN = b"GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
TIMEOUT = 10.0


@pytest.fixture(scope="module", params=HIJACK_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[DeployServer]:
    with running_server(request.param, "hijack_app:app") as proc:
        yield proc


def _connect(server: DeployServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def _upgrade(sock: socket.socket, extra: bytes = b"") -> tuple[bytes, bytes]:
    """Send the upgrade request; return (response head, bytes after it)."""
    sock.sendall(UPGRADE + extra)
    data = recv_until(sock, lambda d: b"\r\n\r\n" in d)
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no response head: {data!r}"
    return head, rest


def _assert_101(head: bytes) -> None:
    status, headers = parse_response_head(head + b"\r\n\r\n")
    assert status.startswith("101"), head
    names = {name.lower(): value.lower() for name, value in headers}
    assert names.get("upgrade") == "websocket", head
    assert "upgrade" in names.get("connection", ""), head


def _echo(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    got = recv_until(sock, lambda d: len(d) >= len(payload))
    assert got == payload


def _assert_eof(sock: socket.socket) -> None:
    """The server closes and sends nothing more (no HTTP response after the hijack)."""
    trailing = recv_until(sock, lambda d: False, limit=1 << 16)
    assert trailing == b"", f"server wrote after the hijack: {trailing[:200]!r}"


def _plain(server: DeployServer) -> bytes:
    with _connect(server) as sock:
        sock.sendall(PLAIN.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        return recv_until(sock, lambda d: False)


def test_echo_then_client_half_close(server: DeployServer) -> None:
    with _connect(server) as sock:
        head, rest = _upgrade(sock)
        _assert_101(head)
        assert rest == b""
        _echo(sock, b"hello")
        _echo(sock, b"\x00\x01binary\xff" * 100)
        sock.shutdown(socket.SHUT_WR)
        _assert_eof(sock)


def test_first_frames_follow_the_head(server: DeployServer) -> None:
    """``first`` comes right after the head, and nothing else before the echo."""
    with _connect(server) as sock:
        sock.sendall(UPGRADE.replace(b"/echo ", b"/echo-first "))
        data = recv_until(sock, lambda d: b"\r\n\r\n" in d and d.endswith(FIRST))
        head, _, rest = data.partition(b"\r\n\r\n")
        _assert_101(head)
        assert rest == FIRST
        _echo(sock, b"hello")
        sock.shutdown(socket.SHUT_WR)
        _assert_eof(sock)


def test_server_closes_first(server: DeployServer) -> None:
    with _connect(server) as sock:
        head, _ = _upgrade(sock)
        _assert_101(head)
        _echo(sock, b"bye")
        _assert_eof(sock)


def test_large_payload_in_blocking_mode(server: DeployServer) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with _connect(server) as sock:
        _assert_101(_upgrade(sock)[0])
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        got = recv_until(sock, lambda d: len(d) >= len(payload), limit=len(payload) + 1)
        sender.join(TIMEOUT)
        assert got == payload
        sock.shutdown(socket.SHUT_WR)
        _assert_eof(sock)


def test_bytes_sent_with_the_request_are_not_lost(server: DeployServer) -> None:
    with _connect(server) as sock:
        head, rest = _upgrade(sock, extra=b"early")
        _assert_101(head)
        got = rest + recv_until(sock, lambda d: (rest + d).endswith(b"early"))
        assert got in (b"[buffered]early", b"early")
        sock.shutdown(socket.SHUT_WR)
        _assert_eof(sock)


def test_hijack_on_a_kept_alive_connection(server: DeployServer) -> None:
    with _connect(server) as sock:
        sock.sendall(PLAIN)
        response = recv_until(sock, lambda d: re.search(rb"\r\n\r\nplain:.*", d) is not None)
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", response).group(1))  # type: ignore[union-attr]
        body = response.partition(b"\r\n\r\n")[2]
        response += recv_until(sock, lambda d: len(body) + len(d) >= length)
        assert response.startswith(b"HTTP/1."), response
        if re.search(rb"(?i)connection:\s*close", response) or response.startswith(b"HTTP/1.0"):
            pytest.skip(f"{server.kind} closes every HTTP/1.1 connection")
        _assert_101(_upgrade(sock)[0])
        _echo(sock, b"again")
        sock.shutdown(socket.SHUT_WR)
        _assert_eof(sock)


def test_concurrent_hijacks(server: DeployServer) -> None:
    socks = [_connect(server) for _ in range(3)]
    try:
        for sock in socks:
            _assert_101(_upgrade(sock)[0])
        for round_ in range(3):
            for i, sock in enumerate(socks):
                _echo(sock, f"{i}:{round_}".encode())
        for sock in socks:
            sock.shutdown(socket.SHUT_WR)
            _assert_eof(sock)
    finally:
        for sock in socks:
            sock.close()


def test_server_still_serves(server: DeployServer) -> None:
    response = _plain(server)
    assert response.startswith(b"HTTP/1.") and b" 200 " in response.split(b"\r\n")[0]
    assert b"plain:" in response


def test_abrupt_client_disconnect(server: DeployServer) -> None:
    with _connect(server) as sock:
        _assert_101(_upgrade(sock)[0])
        _echo(sock, b"x")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # closed with linger 0: the server sees a reset
    time.sleep(0.3)
    assert b"plain:" in _plain(server)


def test_zz_no_server_errors(server: DeployServer) -> None:
    time.sleep(0.3)
    assert server.errors() == [], server.log_text()


def test_gunicorn_sync_worker_refuses() -> None:
    with running_server("gunicorn-sync", "hijack_app:app") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as sock:
            sock.sendall(UPGRADE)
            response = recv_until(sock, lambda d: False)
        assert response.split(b"\r\n")[0].split()[1] == b"400", response
        assert b"websocket not supported" in response
        assert srv.errors() == [], srv.log_text()


# ------------------------------------------------------------ in-process units


def test_parse_response_head() -> None:
    status, headers = parse_response_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-A: b: c\r\n\r\n"
    )
    assert status == "101 Switching Protocols"
    assert headers == [("Upgrade", "websocket"), ("X-A", "b: c")]
    with pytest.raises(ValueError):
        parse_response_head(b"garbage\r\n\r\n")


def test_unknown_server_gives_none() -> None:
    environ = {"SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": None}
    assert hijack(environ, lambda *a: None, b"HTTP/1.1 101 X\r\n\r\n") is None


def test_http2_gives_none() -> None:
    a, b = socket.socketpair()
    with a, b:
        for protocol in ("HTTP/2.0", "HTTP/2"):
            environ = {"SERVER_PROTOCOL": protocol, "werkzeug.socket": a}
            assert hijack(environ, lambda *x: None, b"HTTP/1.1 101 X\r\n\r\n") is None


def test_finish_once_and_dup_is_closed() -> None:
    a, b = socket.socketpair()
    with a, b:
        calls: list[tuple[str, list[tuple[str, str]]]] = []
        environ = {"SERVER_PROTOCOL": "HTTP/1.1", "werkzeug.socket": a, "wsgi.input": None}
        hijacked = hijack(environ, lambda s, h: calls.append((s, h)), b"HTTP/1.1 101 X\r\n\r\n")
        assert isinstance(hijacked, Hijacked)
        assert b.recv(100) == b"HTTP/1.1 101 X\r\n\r\n"
        assert hijacked.sock.fileno() != a.fileno()
        assert hijacked.sock.gettimeout() is None
        hijacked.sock.sendall(b"ping")
        assert b.recv(100) == b"ping"
        assert list(hijacked.finish()) == []
        assert list(hijacked.finish()) == []
        assert calls == [("101 Switching Protocols", [])]
        assert hijacked.sock.fileno() == -1
        assert a.fileno() != -1  # the server's own socket stays open, shut down
        assert b.recv(100) == b""


class _Reader:
    def __init__(self, unreader: object) -> None:
        self.unreader = unreader


class _Body:
    def __init__(self, unreader: object) -> None:
        self.reader = _Reader(unreader)


class _OldUnreader:  # gunicorn < 27: a BytesIO buffer, no take_buffered()
    def __init__(self, data: bytes) -> None:
        import io

        self.buf = io.BytesIO(data)


class _NewUnreader(_OldUnreader):
    def take_buffered(self) -> bytes:
        import io

        data = self.buf.getvalue()
        self.buf = io.BytesIO()
        return data


@pytest.mark.parametrize("unreader_class", [_OldUnreader, _NewUnreader])
def test_gunicorn_read_ahead_and_head_through_start_response(unreader_class: type) -> None:
    a, b = socket.socketpair()
    with a, b:
        unreader = unreader_class(b"\x81\x00")
        sent: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]]) -> object:
            sent.append((status, headers))
            return lambda data: a.sendall(f"HTTP/1.1 {status}\r\n\r\n".encode() + data)

        environ = {
            "SERVER_PROTOCOL": "HTTP/1.1",
            "gunicorn.socket": a,
            "wsgi.multithread": True,
            "wsgi.input": _Body(unreader),
        }
        hijacked = hijack(
            environ,
            start_response,
            b"HTTP/1.1 101 Switching Protocols\r\nA: b\r\n\r\n",
            first=b"\x81\x01x",
        )
        assert hijacked is not None
        assert hijacked.buffered == b"\x81\x00"
        assert unreader.buf.getvalue() == b""
        # not gunicorn's own Response: the head goes through start_response, then first
        assert sent == [("101 Switching Protocols", [("A", "b")])]
        assert recv_until(b, lambda d: d.endswith(b"x")) == (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x01x"
        )
        hijacked.sock.close()
        assert list(hijacked.finish()) == []


def test_gunicorn_sync_worker_gives_none() -> None:
    a, b = socket.socketpair()
    with a, b:
        environ = {"gunicorn.socket": a, "wsgi.multithread": False, "SERVER_PROTOCOL": "HTTP/1.1"}
        assert hijack(environ, lambda *x: None, b"HTTP/1.1 101 X\r\n\r\n") is None


def test_gunicorn_response_is_told_the_head_went_out() -> None:
    """With gunicorn's own Response, the head and ``first`` go out in one write, and
    gunicorn then writes nothing more (its close(), its keep-alive check)."""
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.http.wsgi import Response

    a, b = socket.socketpair()
    with a, b:
        request = SimpleNamespace(version=(1, 1), method="GET", should_close=lambda: False)
        response = Response(request, a, Config())
        environ = {
            "SERVER_PROTOCOL": "HTTP/1.1",
            "gunicorn.socket": a,
            "wsgi.multithread": True,
            "wsgi.input": _Body(_NewUnreader(b"")),
        }
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        hijacked = hijack(environ, response.start_response, head, first=b"\x81\x01x")
        assert hijacked is not None
        assert (response.status, response.status_code, response.headers_sent) == (
            "101 Switching Protocols",
            101,
            True,
        )
        response.force_close()
        assert response.should_close()
        response.close()  # gunicorn's end of the request: nothing more on the wire
        b.settimeout(TIMEOUT)
        assert recv_until(b, lambda d: d.endswith(b"x")) == head + b"\x81\x01x"
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(100)
        hijacked.sock.close()
        assert list(hijacked.finish()) == []
