"""PollingClient: an Engine.IO long-polling client that calls a WSGI application in-process.

The transport half of :class:`~sio_wsgi.testing.SocketIOTestClient`: it builds
the WSGI environ of each request (headers, cookies, query string), does the
handshake, long-polls from a background thread, answers pings, and hands each
Engine.IO ``message`` to the layer above through its ``MESSAGE`` entry in
``_EIO_HANDLERS``. No socket is opened.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .config import DEFAULTS
from .engine.ports import Environ
from .exceptions import ConnectionRefusedError, DisconnectedError
from .protocol import eio
from .wsgi import WSGIApplication

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["PollingClient"]

#: the test client's logger (its polling failures are logged there)
logger = logging.getLogger("sio_wsgi.testing")

#: the Engine.IO packets the client itself sends or expects
_OPEN = eio.encode_packet(eio.PacketType.OPEN).encode()
_PONG = eio.encode_packet(eio.PacketType.PONG).encode()
_CLOSE = eio.CLOSE.encode()


def _find_path(app: object) -> str:
    """The mount path of the Socket.IO endpoint (``/socket.io/`` by default)."""
    for candidate in (app, getattr(app, "wsgi_app", None)):
        mount = getattr(candidate, "mount", None)
        if isinstance(mount, str):
            return mount
    return "/socket.io/"


def _as_wsgi(app: WSGIApplication | Server) -> WSGIApplication:
    """A WSGI callable for ``app``: a Server is wrapped, anything else is called."""
    if hasattr(app, "handlers") and hasattr(app, "handle_request"):
        handle: WSGIApplication = app.handle_request
        return handle
    wsgi: WSGIApplication = app
    return wsgi


class PollingClient:
    """One Engine.IO session over long-polling, by calling ``app`` directly.

    The parameters are :class:`~sio_wsgi.testing.SocketIOTestClient`'s.
    """

    def __init__(
        self,
        app: WSGIApplication | Server,
        *,
        query_string: str | None,
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
        environ_overrides: Mapping[str, object] | None,
        socketio_path: str | None,
        timeout: float,
    ) -> None:
        self.wsgi = _as_wsgi(app)
        self.path = "/" + (socketio_path or _find_path(app)).strip("/") + "/"
        self.timeout = timeout
        self.query_string = (query_string or "").lstrip("?")
        self.headers = dict(headers or {})
        self.cookies = dict(cookies or {})
        self.environ_overrides = dict(environ_overrides or {})
        self.eio_sid: str | None = None
        self.ping_interval = DEFAULTS.ping_interval
        self._post_lock = threading.Lock()
        self._ids = itertools.count(1)  # the ``t`` of each request (and the ack ids above)
        self._reader: threading.Thread | None = None
        self._closed = False

    # -------------------------------------------------------------- WSGI plumbing

    def _environ(self, method: str, query: dict[str, str], body: bytes) -> Environ:
        qs = urllib.parse.urlencode(query)
        if self.query_string:
            qs = f"{self.query_string}&{qs}"
        environ: Environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": self.path,
            "QUERY_STRING": qs,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "localhost",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "text/plain;charset=UTF-8",
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE",) else "HTTP_" + key] = value
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        environ.update(self.environ_overrides)
        return environ

    def _call(self, method: str, query: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        """One WSGI request; returns (status code, body)."""
        status: list[str] = []

        def start_response(
            line: str, headers: list[tuple[str, str]], exc_info: object = None
        ) -> Callable[[bytes], None]:
            status[:] = [line]
            return lambda data: None

        result = self.wsgi(self._environ(method, query, body), start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return (int(status[0].split()[0]) if status else 500), data

    def _query(self) -> dict[str, str]:
        query = {"EIO": eio.PROTOCOL_VERSION, "transport": "polling", "t": str(next(self._ids))}
        if self.eio_sid is not None:
            query["sid"] = self.eio_sid
        return query

    def _post(self, messages: list[str | bytes]) -> None:
        body = eio.encode_payload(eio.message(m) for m in messages).encode()
        self._post_raw(body)

    def _post_raw(self, body: bytes) -> None:
        with self._post_lock:
            code, data = self._call("POST", self._query(), body)
        if code != 200:
            raise DisconnectedError(f"POST answered {code}: {data[:200]!r}")

    # -------------------------------------------------------------- engine.io

    def _handshake(self) -> None:
        code, body = self._call("GET", self._query())
        if code != 200 or not body.startswith(_OPEN):
            raise ConnectionRefusedError(f"handshake answered {code}: {body[:200]!r}")
        first, _, rest = body.decode().partition(eio.SEPARATOR)
        info = json.loads(first[len(_OPEN) :])
        self.eio_sid = str(info["sid"])
        self.ping_interval = float(info.get("pingInterval", DEFAULTS.ping_interval * 1000)) / 1000
        self._closed = False
        if rest:
            self._handle_payload(rest)
        self._reader = threading.Thread(target=self._read_loop, name="sio-test-client", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        while not self._closed:
            try:
                code, body = self._call("GET", self._query())
            except Exception:
                logger.exception("test client: polling request failed")
                break
            if code != 200:
                break
            self._handle_payload(body.decode())
        self._on_closed()

    def _handle_payload(self, payload: str) -> None:
        for packet in eio.decode_payload(payload):
            handler = self._EIO_HANDLERS.get(packet.type)
            if handler is not None:
                handler(self, packet.data)

    def _on_ping(self, data: str | bytes) -> None:
        self._post_raw(_PONG)

    def _on_close(self, data: str | bytes) -> None:
        self._closed = True

    def _noop(self, data: str | bytes) -> None:
        return None

    #: Engine.IO packet type -> handler(client, data); the layer above adds ``MESSAGE``
    _EIO_HANDLERS: ClassVar[Mapping[eio.PacketType, Callable[[Any, str | bytes], None]]] = {
        eio.PacketType.PING: _on_ping,
        eio.PacketType.CLOSE: _on_close,
        eio.PacketType.NOOP: _noop,
    }

    def _on_closed(self) -> None:
        """The session ended (the poller stopped, or :meth:`close`); the layer above
        wakes its waiters."""
        self._closed = True

    def close(self) -> None:
        """Close the Engine.IO connection (every namespace) and stop the poller."""
        if self.eio_sid is not None and not self._closed:
            self._closed = True
            try:
                self._post_raw(_CLOSE)
            except DisconnectedError:
                pass
        if self._reader is not None:
            self._reader.join(self.ping_interval + self.timeout)
            self._reader = None
        self._on_closed()
