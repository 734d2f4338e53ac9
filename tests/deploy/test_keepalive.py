"""Polling keep-alive turns (sio_wsgi.transports.keepalive) under real gunicorn workers.

Raw HTTP/1.1 on one keep-alive connection, as a long-polling client sends it. Under the
gevent worker and ``sio_wsgi.gunicorn.EventletWorker`` the requests after the first are
served by sio_wsgi itself (gunicorn's access log shows the first only); anything that is
not a plain polling request goes back to gunicorn on the same connection and is answered
as gunicorn answers it. Under gthread a turn starts from a GET and ends after a POST.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator

import pytest

from sio_wsgi.transports.keepalive import IDLE_WAIT
from tests.deploy.deploy_support import DeployServer, recv_until, running_server
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 10.0
TURN_KINDS = ("gunicorn-gevent", "gunicorn-eventlet")


@pytest.fixture(scope="module", params=TURN_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[DeployServer]:
    with running_server(request.param, "sio_app:app") as proc:
        yield proc


def _connect(server: DeployServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def _request(method: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
    if method == "POST":
        head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _read_response(sock: socket.socket, pending: bytes = b"") -> tuple[str, dict[str, str], bytes]:
    """One response (status line, headers by lower-case name, body); the socket's bytes
    after it must be left in ``pending`` by the caller's next read (none expected here)."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        rest += chunk
    assert len(rest) == length, f"bytes after the response: {rest[length:]!r}"
    return lines[0], headers, rest


def _handshake(server: DeployServer) -> str:
    with _connect(server) as sock:
        sock.sendall(
            _request("GET", "/socket.io/?EIO=4&transport=polling", headers="Connection: close\r\n")
        )
        status, _, body = _read_response(sock)
    assert " 200 " in status, status
    sid: str = json.loads(body[1:])["sid"]
    return sid


def _polling(sid: str) -> str:
    return f"/socket.io/?EIO=4&transport=polling&sid={sid}"


def _logged(server: DeployServer, sid: str) -> int:
    """gunicorn access-log lines for requests of ``sid``."""
    return len(
        re.findall(rf'"(GET|POST) /socket\.io/\?[^"]*sid={re.escape(sid)}', server.log_text())
    )


def _assert_logged(server: DeployServer, sid: str, count: int) -> None:
    """gunicorn logs ``count`` requests of ``sid`` (a turn's first is logged when the turn
    ends: the client closed its connection before this is called)."""
    wait_until(lambda: _logged(server, sid) >= count, timeout=5)
    time.sleep(0.2)
    assert _logged(server, sid) == count


def _connect_and_echo(sock: socket.socket, sid: str, rounds: int) -> int:
    """Socket.IO CONNECT, then ``rounds`` acked echoes, on one connection.

    :returns: how many requests that took.
    """
    sock.sendall(_request("POST", _polling(sid), b"40"))
    assert _read_response(sock)[2] == b"ok"
    got = b""
    requests = 1 + 2 * rounds
    while b"welcome" not in got:  # the CONNECT reply and the welcome event
        sock.sendall(_request("GET", _polling(sid)))
        requests += 1
        status, _, body = _read_response(sock)
        assert " 200 " in status
        got += body
    for i in range(rounds):
        sock.sendall(_request("POST", _polling(sid), f'42{i}["echo",{i}]'.encode()))
        status, headers, body = _read_response(sock)
        assert (status, body) == ("HTTP/1.1 200 OK", b"ok")
        assert "date" in headers
        sock.sendall(_request("GET", _polling(sid)))
        status, _, body = _read_response(sock)
        assert body == f"43{i}[{i}]".encode(), body
    return requests


def test_a_connection_s_later_requests_are_served_in_a_turn(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=10)
    _assert_logged(server, sid, 1)  # of 23 requests, gunicorn parsed the first
    assert server.errors() == []


def test_pipelined_requests_are_answered_in_order(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=1)
        burst = _request("POST", _polling(sid), b'42["echo","a"]') + _request(
            "POST", _polling(sid), b"3"
        )
        sock.sendall(burst)
        data = recv_until(sock, lambda d: d.count(b"HTTP/1.1 200") >= 2 and d.endswith(b"ok"))
        assert data.count(b"HTTP/1.1 200 OK") == 2, data
    assert server.errors() == []


def test_another_path_goes_back_to_gunicorn_on_the_same_connection(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=2)
        sock.sendall(_request("GET", "/health"))
        status, _, body = _read_response(sock)
        assert (status, body) == ("HTTP/1.1 200 OK", b"ok")
        sock.sendall(_request("POST", _polling(sid), b'420["echo","b"]'))
        assert _read_response(sock)[2] == b"ok"
        sock.sendall(_request("GET", _polling(sid)))
        assert _read_response(sock)[2] == b'430["b"]'
    log = server.log_text()
    assert '"GET /health HTTP/1.1" 200' in log
    _assert_logged(server, sid, 2)  # the turn's first, then the first after /health
    assert server.errors() == []


def test_connection_close_is_gunicorn_s_and_closes(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=1)
        sock.sendall(_request("POST", _polling(sid), b"3", headers="Connection: close\r\n"))
        status, headers, body = _read_response(sock)
        assert (status, body) == ("HTTP/1.1 200 OK", b"ok")
        assert headers.get("connection", "").lower() == "close"
        assert recv_until(sock, lambda d: False) == b""  # closed
    _assert_logged(server, sid, 2)
    assert server.errors() == []


def test_a_malformed_request_in_a_turn_gets_gunicorn_s_400(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=1)
        sock.sendall(b"GET /socket.io/ HTTP/1.1\r\nHost: h\r\nBad Header Line\r\n\r\n")
        answer = recv_until(sock, lambda d: False)
        assert answer.startswith(b"HTTP/1.1 400"), answer
    with _connect(server) as sock:  # the worker goes on
        sock.sendall(_request("GET", "/health", headers="Connection: close\r\n"))
        assert _read_response(sock)[2] == b"ok"


def test_a_chunked_post_in_a_turn_is_read_by_gunicorn(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=1)
        packet = b'423["echo","ch"]'
        chunked = (
            (
                f"POST {_polling(sid)} HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n{len(packet):X}\r\n"
            ).encode()
            + packet
            + b"\r\n0\r\n\r\n"
        )
        sock.sendall(chunked)
        assert _read_response(sock)[2] == b"ok"
        sock.sendall(_request("GET", _polling(sid)))
        assert _read_response(sock)[2] == b'433["ch"]'
    _assert_logged(server, sid, 3)  # a chunked request starts no turn: the GET is gunicorn's
    assert server.errors() == []


def test_an_idle_turn_hands_the_connection_back(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=1)
        time.sleep(IDLE_WAIT + 0.5)  # gunicorn's keep-alive (5 s here) still holds it
        sock.sendall(_request("POST", _polling(sid), b'425["echo","late"]'))
        assert _read_response(sock)[2] == b"ok"
        sock.sendall(_request("GET", _polling(sid)))
        assert _read_response(sock)[2] == b'435["late"]'
    _assert_logged(server, sid, 2)
    assert server.errors() == []


def test_a_client_leaving_mid_turn_is_no_error(server: DeployServer) -> None:
    sid = _handshake(server)
    with _connect(server) as sock:
        _connect_and_echo(sock, sid, rounds=1)
        sock.sendall(_request("POST", _polling(sid), b"12345")[:-3])  # a cut body
    with _connect(server) as sock:
        _connect_and_echo(sock, _handshake(server), rounds=1)
    time.sleep(IDLE_WAIT + 0.5)
    assert server.errors() == []


def test_gthread_turns_start_from_a_get_and_end_after_a_post() -> None:
    with running_server("gunicorn-gthread", "sio_app:app") as proc:
        sid = _handshake(proc)
        with _connect(proc) as sock:
            requests = _connect_and_echo(sock, sid, rounds=3)
            sock.sendall(_request("GET", _polling(sid)) + _request("POST", _polling(sid), b"3"))
            assert b"HTTP/1.1 200" in recv_until(sock, lambda d: d.endswith(b"ok"))
            sock.sendall(_request("POST", _polling(sid), b'427["echo",7]'))
            assert _read_response(sock)[2] == b"ok"
            sock.sendall(_request("GET", _polling(sid)))
            assert _read_response(sock)[2] == b"437[7]"
        wait_until(lambda: _logged(proc, sid) >= 3, timeout=5)
        time.sleep(0.2)
        logged = _logged(proc, sid)
        assert logged < requests + 4  # the POST behind the first GET was the turn's
        assert proc.errors() == []
        assert proc.errors() == []
