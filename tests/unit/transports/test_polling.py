"""Hardening of the polling transport's POST handling, found by the hostile catalogue.

- A negative ``Content-Length`` made ``wsgi.input.read(-1)`` read to the end of
  the stream, past ``max_http_buffer_size``.
- A client leaving mid-body: gevent (and eventlet) raise ``OSError`` from
  ``wsgi.input.read`` (a 500 with a logged traceback), other servers return a
  short body, whose cut-off packets were then decoded and delivered.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sio_wsgi.config import DEFAULTS
from sio_wsgi.engine.server import EngineServer
from sio_wsgi.engine.session import EngineSession
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from sio_wsgi.transports.polling import PollingTransport


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.disconnects: list[str] = []

    def on_connect(self, sid: str, environ: dict[str, Any]) -> bool:
        return True

    def on_message(self, sid: str, data: Any) -> None:
        self.messages.append(data)

    def on_disconnect(self, sid: str, reason: str) -> None:
        self.disconnects.append(reason)


@pytest.fixture
def engine() -> Iterator[tuple[EngineServer, _Handler]]:
    handler = _Handler()
    eng = EngineServer(
        DEFAULTS.replace(max_http_buffer_size=1000),
        handler,
        ThreadingDriver(),
        logging.getLogger("test"),
    )
    yield eng, handler
    eng.shutdown()


def _session(eng: EngineServer) -> EngineSession:
    session = eng.create_session("polling", {}, PollingTransport(eng).connection())
    assert session is not None
    return session


class _FailingInput:
    """gevent's ``wsgi.input`` when the client leaves mid-body."""

    def read(self, size: int = -1) -> bytes:
        raise OSError("unexpected end of file while reading request at position 11")


class _TrickleInput:
    """A stream returning at most 3 bytes per read (partial reads are legal)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 3) if size >= 0 else 3)


def _post(eng: EngineServer, session: EngineSession, stream: Any, length: str) -> Any:
    environ = {"wsgi.input": stream, "CONTENT_LENGTH": length, "CONTENT_TYPE": "text/plain"}
    return PollingTransport(eng).post(session, environ)


def test_negative_content_length_does_not_read_past_the_limit(
    engine: tuple[EngineServer, _Handler],
) -> None:
    eng, handler = engine
    session = _session(eng)
    stream = io.BytesIO(b"4" + b"x" * 100_000)
    response = _post(eng, session, stream, "-1")
    assert response.status == 400
    assert stream.tell() == 0  # nothing read
    assert handler.messages == []
    assert session.closed


def test_client_leaving_mid_body_closes_the_session_quietly(
    engine: tuple[EngineServer, _Handler],
) -> None:
    eng, handler = engine
    session = _session(eng)
    response = _post(eng, session, _FailingInput(), "500")
    assert response.status == 400
    assert handler.disconnects == ["transport error"]
    assert session.sid not in eng.sessions


def test_short_body_is_not_delivered(engine: tuple[EngineServer, _Handler]) -> None:
    eng, handler = engine
    session = _session(eng)
    response = _post(eng, session, io.BytesIO(b"4hello"), "20")  # "4hello world..." cut off
    assert response.status == 400
    assert handler.messages == []
    assert handler.disconnects == ["transport error"]


def test_partial_reads_are_completed(engine: tuple[EngineServer, _Handler]) -> None:
    eng, handler = engine
    session = _session(eng)
    body = b"4hello\x1e4world"
    response = _post(eng, session, _TrickleInput(body), str(len(body)))
    assert response.status == 200
    assert handler.messages == ["hello", "world"]
