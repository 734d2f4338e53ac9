"""sio_wsgi.gunicorn.EventletWorker under a real gunicorn master."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from tests.deploy.deploy_support import recv_until, running_server

pytestmark = pytest.mark.timeout(120)

UPGRADE = (
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
)
KIND = "gunicorn-eventlet"


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return recv_until(sock, lambda d: False).partition(b"\r\n\r\n")[2]


def _hijacked(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(UPGRADE)
    head = recv_until(sock, lambda d: b"\r\n\r\n" in d)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_app_runs_monkey_patched() -> None:
    with running_server(KIND, "hijack_app:app") as srv:
        assert json.loads(_get(srv.port, "/info")) == {"eventlet": True, "gevent": False}
        assert srv.errors() == [], srv.log_text()


def test_many_concurrent_connections_in_one_worker() -> None:
    with running_server(KIND, "hijack_app:app") as srv:
        socks = [_hijacked(srv.port) for _ in range(60)]
        try:
            for i, sock in enumerate(socks):
                sock.sendall(b"n%d" % i)
            for i, sock in enumerate(socks):
                assert recv_until(sock, lambda d, i=i: len(d) >= len(b"n%d" % i)) == b"n%d" % i
            assert _get(srv.port, "/plain").startswith(b"plain:")
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.3)
        assert srv.errors() == [], srv.log_text()


def test_worker_connections_bounds_the_connections_served_at_once() -> None:
    """``--worker-connections 2``: a third connection waits for a free slot, and is
    served by a green thread that served an earlier one (they are reused)."""
    with running_server(KIND, "hijack_app:app", extra_args=["--worker-connections", "2"]) as srv:
        held = [_hijacked(srv.port) for _ in range(2)]
        waiting = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            waiting.sendall(b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            waiting.settimeout(0.5)
            with pytest.raises(TimeoutError):
                waiting.recv(1)  # both slots taken: not served yet
            held.pop().close()
            waiting.settimeout(10)
            body = recv_until(waiting, lambda d: False).partition(b"\r\n\r\n")[2]
            assert body.startswith(b"plain:"), body
            for _ in range(5):  # connection after connection in the freed slot
                assert _get(srv.port, "/plain").startswith(b"plain:")
        finally:
            waiting.close()
            for sock in held:
                sock.close()
        time.sleep(0.3)
        assert srv.errors() == [], srv.log_text()


def test_sigterm_waits_for_open_connections_then_closes_them() -> None:
    with running_server(KIND, "hijack_app:app", extra_args=["--graceful-timeout", "2"]) as srv:
        sock = _hijacked(srv.port)
        with sock:
            started = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            sock.sendall(b"still here")
            assert recv_until(sock, lambda d: len(d) >= 10) == b"still here"
            assert recv_until(sock, lambda d: False) == b""  # shut down after the grace period
            waited = time.monotonic() - started
        assert 1.5 <= waited < 8, waited
        assert srv.proc.wait(10) == 0
        assert "Traceback" not in srv.log_text(), srv.log_text()


def test_sigterm_without_connections_is_quick() -> None:
    with running_server(KIND, "hijack_app:app") as srv:
        assert _get(srv.port, "/plain").startswith(b"plain:")
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(10) == 0
        assert time.monotonic() - started < 3
        assert "Traceback" not in srv.log_text(), srv.log_text()


def test_sigint_is_immediate_even_with_open_connections() -> None:
    with running_server(KIND, "hijack_app:app", extra_args=["--graceful-timeout", "30"]) as srv:
        with _hijacked(srv.port) as sock:
            started = time.monotonic()
            srv.proc.send_signal(signal.SIGINT)
            assert recv_until(sock, lambda d: False) == b""
            assert srv.proc.wait(10) == 0
            assert time.monotonic() - started < 5
        assert "Traceback" not in srv.log_text(), srv.log_text()


def test_max_requests_restarts_the_worker() -> None:
    with running_server(KIND, "hijack_app:app", extra_args=["--max-requests", "3"]) as srv:
        for _ in range(8):
            assert _get(srv.port, "/plain").startswith(b"plain:")
        assert "Autorestarting worker" in srv.log_text()
        assert srv.errors() == [], srv.log_text()
