"""PollingKeepAlive.serve on a socket pair, with stand-ins for gunicorn's objects.

What is checked here, without a server: which requests a turn serves, what it hands
back to gunicorn's buffer (byte for byte, in order), and that the socket's timeout is
restored. The same under real gunicorn workers: tests/deploy/test_keepalive.py.
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sio_wsgi.engine.http import Response
from sio_wsgi.transports import keepalive
from sio_wsgi.transports.keepalive import POLLED, SERVED_HERE, PollingKeepAlive

PATH = "/socket.io/"


class Unreader:
    """gunicorn's buffer over the socket: ``take_buffered`` and ``unread``."""

    def __init__(self, buffered: bytes = b"") -> None:
        self.buffered = buffered

    def take_buffered(self) -> bytes:
        data, self.buffered = self.buffered, b""
        return data

    def unread(self, data: bytes) -> None:
        self.buffered = data + self.buffered


class Body:
    def __init__(self, unreader: Unreader) -> None:
        self.reader = type("LengthReader", (), {"unreader": unreader})()


class GunicornResponse:
    """Where ``start_response`` is bound, as in gunicorn; records what it sends."""

    def __init__(self, sock: socket.socket, close: bool = False) -> None:
        self.sock = sock
        self.close = close
        self.status = ""

    def start_response(self, status: str, headers: list[tuple[str, str]]) -> Any:
        self.status = status
        return lambda data: self.sock.sendall(b"FIRST " + status.encode() + b"|" + data + b"\n")

    def should_close(self) -> bool:
        return self.close


def request(method: str, query: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {PATH}?{query} HTTP/1.1\r\nHost: h\r\n{extra}"
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(7.0)
    client.settimeout(5.0)
    yield server, client
    server.close()
    client.close()


class Route:
    """The engine's router: answers ``<method> <query> <body>``; records the environs."""

    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Response:
        self.environs.append(environ)
        body = environ["wsgi.input"].read()
        text = f"{environ['REQUEST_METHOD']} {environ['QUERY_STRING']} ".encode() + body
        return Response(200, [("Content-Type", "text/plain")], text)


def first_environ(server: socket.socket, unreader: Unreader, **extra: Any) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "n=0",
        "RAW_URI": f"{PATH}?n=0",
        "PATH_INFO": PATH,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": Body(unreader),
        "gunicorn.socket": server,
        "HTTP_COOKIE": "first=1",
        POLLED: True,
    }
    environ.update(extra)
    return environ


def answers(client: socket.socket, count: int) -> list[bytes]:
    """The bodies of ``count`` turn answers (after the first request's line)."""
    data = b""
    bodies: list[bytes] = []
    while len(bodies) < count:
        while b"\r\n\r\n" not in data:
            data += client.recv(65536)
        head, _, data = data.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        while len(data) < length:
            data += client.recv(65536)
        bodies.append(data[:length])
        data = data[length:]
    return bodies


def serve(
    server: socket.socket,
    unreader: Unreader,
    route: Route,
    close: bool = False,
    threads: bool = False,
    **extra: Any,
) -> tuple[list[bytes], GunicornResponse]:
    response = GunicornResponse(server, close)
    result = PollingKeepAlive(route, max_body=100, threads=threads).serve(
        first_environ(server, unreader, **extra),
        response.start_response,
        Response(200, [("Content-Type", "text/plain")], b"first"),
    )
    return list(result), response


def read_first(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        data += client.recv(1)
    return data


def test_a_turn_serves_plain_requests_and_hands_the_rest_back(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    other = b"GET /elsewhere HTTP/1.1\r\nHost: h\r\n\r\n"
    client.sendall(request("POST", "n=1", b"abc") + request("GET", "n=2") + other + b"tail")
    route, unreader = Route(), Unreader()
    result, _ = serve(server, unreader, route)
    assert result == []
    assert read_first(client) == b"FIRST 200 OK|first\n"
    assert answers(client, 2) == [b"POST n=1 abc", b"GET n=2 "]
    assert unreader.buffered == other + b"tail"
    assert server.gettimeout() == 7.0
    environ = route.environs[1]
    assert environ["RAW_URI"] == f"{PATH}?n=2"
    assert environ["REMOTE_ADDR"] == "10.0.0.1"  # the connection's
    assert environ["wsgi.url_scheme"] == "https"
    assert "HTTP_COOKIE" not in environ  # headers are the request's own
    assert "gunicorn.socket" not in environ and POLLED not in environ
    assert environ[SERVED_HERE] is True


def test_read_ahead_held_by_gunicorn_is_served_first(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    unreader = Unreader(request("GET", "n=1")[:10])
    client.sendall(request("GET", "n=1")[10:] + b"GARBAGE\r\n\r\n")
    route = Route()
    serve(server, unreader, route)
    read_first(client)
    assert answers(client, 1) == [b"GET n=1 "]
    assert unreader.buffered == b"GARBAGE\r\n\r\n"


def test_other_forwarding_headers_go_back_to_gunicorn(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    same = request("GET", "n=1", extra="X-Forwarded-For: 1.2.3.4\r\n")
    moved = request("GET", "n=2", extra="X-Forwarded-For: 5.6.7.8\r\n")
    client.sendall(same + moved)
    route, unreader = Route(), Unreader()
    serve(server, unreader, route, HTTP_X_FORWARDED_FOR="1.2.3.4")
    read_first(client)
    assert answers(client, 1) == [b"GET n=1 "]
    assert unreader.buffered == moved


def test_an_idle_connection_goes_back_with_its_partial_request(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keepalive, "IDLE_WAIT", 0.2)
    server, client = pair
    client.sendall(request("POST", "n=1", b"abcdef")[:-2])
    unreader = Unreader()
    serve(server, unreader, Route())
    assert unreader.buffered == request("POST", "n=1", b"abcdef")[:-2]
    assert server.gettimeout() == 7.0


def test_eof_ends_the_turn(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(request("GET", "n=1"))
    client.shutdown(socket.SHUT_WR)
    unreader = Unreader()
    serve(server, unreader, Route())
    read_first(client)
    assert answers(client, 1) == [b"GET n=1 "]
    assert unreader.buffered == b""


def test_a_closing_response_takes_no_turn(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(request("GET", "n=1"))
    unreader = Unreader()
    route = Route()
    serve(server, unreader, route, close=True)
    assert route.environs == []
    assert unreader.buffered == b""  # the request stays on the socket, for gunicorn


@pytest.mark.parametrize(
    "extra",
    [
        {"gunicorn.socket": None},
        {"SERVER_PROTOCOL": "HTTP/1.0"},
        {"HTTP_TRANSFER_ENCODING": "chunked"},
        {"RAW_URI": "http://h/socket.io/?n=0"},
        {"wsgi.input": io.BytesIO()},
        {SERVED_HERE: True},
        {"sio_wsgi.relay.front": "abc"},
    ],
)
def test_requests_that_cannot_start_a_turn_are_answered_plainly(
    pair: tuple[socket.socket, socket.socket], extra: dict[str, Any]
) -> None:
    server, _ = pair
    result, response = serve(server, Unreader(), Route(), **extra)
    assert result == [b"first"]
    assert response.status == "200 OK"


def test_a_turn_ends_after_its_request_bound(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keepalive, "TURN_REQUESTS", 3)
    server, client = pair
    burst = b"".join(request("GET", f"n={i}") for i in range(1, 6))
    client.sendall(burst)
    unreader = Unreader()
    done = threading.Event()
    route = Route()

    def run() -> None:
        serve(server, unreader, route)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    read_first(client)
    assert answers(client, 3) == [b"GET n=1 ", b"GET n=2 ", b"GET n=3 "]
    assert done.wait(5)
    assert unreader.buffered == request("GET", "n=4") + request("GET", "n=5")


def fake_gunicorn(monkeypatch: pytest.MonkeyPatch, version: tuple[int, ...]) -> None:
    """A ``gunicorn`` module of that version in ``sys.modules`` (what the check reads)."""
    gunicorn = type(sys)("gunicorn")
    gunicorn.version_info = version  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gunicorn", gunicorn)


def test_threading_turns_wait_after_a_get_only(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gunicorn(monkeypatch, (27, 0, 1))
    monkeypatch.setattr(keepalive, "THREAD_IDLE_WAIT", 0.5)
    server, client = pair
    unreader = Unreader()
    route = Route()
    done = threading.Event()

    def run() -> None:
        serve(server, unreader, route, threads=True)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    read_first(client)
    client.sendall(request("GET", "n=1"))  # after a GET, the turn waits
    assert answers(client, 1) == [b"GET n=1 "]
    client.sendall(request("POST", "n=2", b"x") + request("GET", "n=3"))
    assert answers(client, 2) == [b"POST n=2 x", b"GET n=3 "]  # already here: served
    client.sendall(request("POST", "n=4", b"y"))
    assert answers(client, 1) == [b"POST n=4 y"]
    assert done.wait(0.3)  # after a POST, no wait
    assert unreader.buffered == b""


def test_threading_turns_start_from_a_get_under_gunicorn_27_only(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = pair
    result, _ = serve(server, Unreader(), Route(), threads=True, REQUEST_METHOD="POST")
    assert result == [b"first"]
    fake_gunicorn(monkeypatch, (26, 0))
    result, _ = serve(server, Unreader(), Route(), threads=True)
    assert result == [b"first"]
    fake_gunicorn(monkeypatch, (27, 0, 1))
    monkeypatch.setattr(keepalive, "THREAD_IDLE_WAIT", 0.01)
    result, _ = serve(server, Unreader(), Route(), threads=True)
    assert result == []


def test_a_body_arriving_in_pieces_is_served_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    data = request("POST", "n=1", b"0123456789" * 9) + request("GET", "n=2")

    def trickle() -> None:
        for i in range(0, len(data), 7):
            client.sendall(data[i : i + 7])
            time.sleep(0.002)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    route, unreader = Route(), Unreader()
    serve(server, unreader, route)
    sender.join(5)
    read_first(client)
    assert answers(client, 2) == [b"POST n=1 " + b"0123456789" * 9, b"GET n=2 "]


def test_a_client_gone_mid_turn_raises_and_hands_nothing_back(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(request("GET", "n=1") + request("GET", "n=2"))

    class Leaving(Route):
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Response:
            client.close()  # before the answer: its sendall fails
            return super().__call__(environ, start_response)

    unreader = Unreader()
    with pytest.raises(OSError):
        serve(server, unreader, Leaving())
    assert unreader.buffered == b""  # requests already read are never parsed again
    assert server.gettimeout() == 7.0
