"""Small blocking clients for the conformance tests.

:class:`Http` wraps :mod:`http.client` (one fresh connection per request, like
independent ``fetch`` calls), :class:`WS` wraps a ``websocket-client``
connection with an ordered event queue that mirrors the ``waitFor`` helper of
the official mocha suites: every ``message`` and the final ``close`` are
delivered in arrival order, nothing is lost between two waits.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket

__all__ = ["Closed", "Http", "Response", "WS", "WSRefused", "assert_ws_closes", "json_error"]

#: mocha's default per-test timeout is 2 s; a single wait never exceeds it.
WAIT = 2.0


@dataclasses.dataclass
class Response:
    """An HTTP response: status, lower-cased headers and raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")


def json_error(resp: Response) -> Any:
    """Decode the JSON error body of ``resp`` (``None`` when not JSON).

    :param resp: the response.
    :returns: the decoded body or ``None``.
    """
    try:
        return json.loads(resp.body)
    except ValueError:
        return None


class Http:
    """Blocking HTTP helper bound to ``127.0.0.1:port``.

    :param port: server port.
    """

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = WAIT,
    ) -> Response:
        """Send one request on a new connection and read the whole reply.

        A ``str`` body is sent as ``text/plain;charset=UTF-8``, like ``fetch``.

        :param method: HTTP method.
        :param path: path and query string.
        :param body: request body.
        :param headers: extra headers.
        :param timeout: socket timeout in seconds.
        :returns: the response.
        """
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, str):
            hdrs.setdefault("Content-Type", "text/plain;charset=UTF-8")
            body = body.encode("utf-8")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Response:
        """``GET`` shortcut; see :meth:`request`.

        :param path: path and query string.
        :param kwargs: forwarded to :meth:`request`.
        :returns: the response.
        """
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: str | bytes | None = None, **kwargs: Any) -> Response:
        """``POST`` shortcut; see :meth:`request`.

        :param path: path and query string.
        :param body: request body.
        :param kwargs: forwarded to :meth:`request`.
        :returns: the response.
        """
        return self.request("POST", path, body=body, **kwargs)

    def start_get(self, path: str) -> http.client.HTTPConnection:
        """Send a ``GET`` without reading the reply (to abort it later).

        :param path: path and query string.
        :returns: the open connection.
        """
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        conn.request("GET", path)
        return conn

    def in_background(self, method: str, path: str, **kwargs: Any) -> Background:
        """Run :meth:`request` in a thread.

        :param method: HTTP method.
        :param path: path and query string.
        :param kwargs: forwarded to :meth:`request`.
        :returns: a handle whose :meth:`Background.result` returns the response.
        """
        return Background(lambda: self.request(method, path, **kwargs))


class Background:
    """A request running in a daemon thread.

    :param fn: the callable to run.
    """

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._fn()
        except BaseException as exc:  # re-raised in result()
            self._error = exc

    def result(self, timeout: float = WAIT + 1.0) -> Any:
        """Wait for the request and return its response (or raise its error).

        :param timeout: seconds to wait.
        :returns: the response.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("background request did not finish")
        if self._error is not None:
            raise self._error
        return self._result


class Closed(Exception):
    """The WebSocket closed while a message was awaited."""


class WSRefused(Exception):
    """The WebSocket handshake was refused.

    :param status: the HTTP status of the refusal (0 when unknown).
    """

    def __init__(self, status: int) -> None:
        super().__init__(f"websocket handshake refused with status {status}")
        self.status = status


_CLOSE = object()


class WS:
    """A WebSocket client with an ordered message/close queue.

    :param port: server port.
    :param path: path and query string.
    :param headers: extra handshake headers.
    :raises WSRefused: when the server refuses the upgrade.
    """

    def __init__(self, port: int, path: str, headers: list[str] | None = None) -> None:
        self.ws = websocket.WebSocket(enable_multithread=True)
        self.opened_at = time.monotonic()
        try:
            self.ws.connect(  # type: ignore[no-untyped-call]
                f"ws://127.0.0.1:{port}{path}", timeout=WAIT, header=headers or []
            )
        except websocket.WebSocketBadStatusException as exc:
            raise WSRefused(exc.status_code) from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise WSRefused(0) from exc
        self.ws.settimeout(None)
        self.events: queue.Queue[Any] = queue.Queue()
        self.closed_at: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Reader thread: push every data frame, then ``_CLOSE``."""
        try:
            while True:
                opcode, data = self.ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self.events.put(data.decode("utf-8"))
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    self.events.put(bytes(data))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
        except (OSError, websocket.WebSocketException, ValueError):
            pass
        self.closed_at = time.monotonic()
        self.events.put(_CLOSE)

    def send(self, data: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) frame.

        :param data: the payload.
        """
        if isinstance(data, bytes):
            self.ws.send_bytes(data)
        else:
            self.ws.send_text(data)

    def recv(self, timeout: float = WAIT, skip_pings: bool = False) -> str | bytes:
        """Return the next message.

        :param timeout: seconds to wait.
        :param skip_pings: ignore ``"2"`` frames (the suites' ``waitForPackets``).
        :returns: the message.
        :raises Closed: if the socket closed first.
        :raises TimeoutError: if nothing came in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self.events.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise TimeoutError(f"no websocket message within {timeout}s") from None
            if item is _CLOSE:
                self.events.put(_CLOSE)
                raise Closed("websocket closed")
            if skip_pings and item == "2":
                continue
            return item  # type: ignore[no-any-return]

    def wait_close(self, timeout: float = WAIT) -> bool:
        """Wait for the close, discarding messages (the suites' ``waitFor(close)``).

        :param timeout: seconds to wait.
        :returns: ``True`` when the socket closed in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self.events.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                return False
            if item is _CLOSE:
                self.events.put(_CLOSE)
                return True

    def close(self) -> None:
        """Close the connection (idempotent)."""
        try:
            if self.closed_at is None:
                self.ws.send_close()
        except (OSError, websocket.WebSocketException):
            pass
        try:
            self.ws.abort()  # type: ignore[no-untyped-call]
        except (OSError, websocket.WebSocketException):
            pass
        try:
            self.ws.shutdown()  # type: ignore[no-untyped-call]
        except (OSError, websocket.WebSocketException):
            pass
        self._reader.join(1.0)


def assert_ws_closes(
    ws_factory: Callable[[str], WS], path: str, timeout: float = 2.0, refused_ok: bool = True
) -> None:
    """Open a WebSocket and expect the server to close it.

    :param refused_ok: whether an HTTP error instead of ``101`` counts as closed. The
        official suites' client (``ws``) takes a refused handshake for an error
        unless the test listens for one: only the invalid-parameter cases do.
    """
    try:
        sock = ws_factory(path)
    except WSRefused as exc:
        assert refused_ok, f"{path}: the handshake was refused ({exc}); expected 101, then a close"
        return
    assert sock.wait_close(timeout), f"{path} was not closed"
