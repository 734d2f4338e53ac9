"""The shared test helpers themselves: wait_until's contract and ServerProcess's life cycle."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.support import HOST, ServerProcess, free_port, port_open, wait_until

#: a server answering ``GET /health`` (and everything else) with 200, on ``argv[1]``
HTTP_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_wait_until_returns_the_truthy_value() -> None:
    values = iter([0, [], None, {"ok": 1}])
    assert wait_until(lambda: next(values), 1.0) == {"ok": 1}


def test_wait_until_raises_with_what_and_the_last_value() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"the answer: not met within 0.1 s \(last value: 0\)"):
        wait_until(lambda: 0, 0.1, "the answer")
    assert time.monotonic() - started < 1.0


def test_free_port_is_bindable_on_host() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert not port_open(port, HOST)


def test_server_process_starts_answers_and_stops(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-c", HTTP_SERVER, "{port}"], tmp_path / "s.log")
    with server:
        assert server.alive()
        assert port_open(server.port)
        assert server.url == f"http://{HOST}:{server.port}"
        wait_until(lambda: "serving" in server.log_text(), 5, "the server's output in its log")
        assert server.log_text().lstrip().startswith("=== ")  # the command line, then its output
    assert not server.alive()
    assert server.proc is None
    assert not port_open(server.port)
    assert server.stop() is None  # a second stop is harmless


def test_server_process_that_exits_fails_fast_with_its_log(tmp_path: Path) -> None:
    code = "import sys; print('no luck'); sys.exit(3)"
    server = ServerProcess([sys.executable, "-c", code], tmp_path / "s.log", start_timeout=10)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="no luck"):
        server.start()
    assert time.monotonic() - started < 5
    assert not server.alive()


def test_server_process_health_may_answer_any_status(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", HTTP_SERVER, "{port}"]
    with ServerProcess(argv, tmp_path / "s.log", health="/not-health") as server:
        assert server.alive()  # a 503 is an answer: the server is up
