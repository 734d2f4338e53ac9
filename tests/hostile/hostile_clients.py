"""Raw clients for the hostile-input catalogue: they send exactly the bytes a test asks for.

- :func:`http`: one HTTP/1.1 request on a fresh connection (no client-side
  normalisation of the target, so ``/static/../x`` reaches the server as is).
- :class:`RawWS`: a WebSocket over a plain socket; frames are built by hand
  (masking, RSV bits, opcodes, lengths are all the caller's choice).
- :class:`Watcher`: a well-behaved Socket.IO client over WebSocket that answers
  pings, counts ``tick`` events and acknowledgements, from a reader thread.
- polling helpers: :func:`eio_open`, :func:`eio_post`, :func:`eio_get`,
  :func:`sio_polling_connect`.

Every socket has a timeout; every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time
from typing import Any

from sio_wsgi.protocol.websocket import unmask
from tests.support import HOST

__all__ = [
    "HOST",
    "EIO_PATH",
    "HttpResponse",
    "http",
    "RawWS",
    "Watcher",
    "eio_open",
    "eio_post",
    "eio_get",
    "eio_close",
    "sio_polling_connect",
    "ws_sio_connect",
    "read_head",
]

EIO_PATH = "/socket.io/"
RS = "\x1e"


class HttpResponse:
    """A parsed HTTP response.

    :param status: status code.
    :param headers: ``(name, value)`` pairs in order (names lower-cased).
    :param body: the body bytes.
    """

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """First value of ``name`` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        """Every value of ``name``."""
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.body[:200]!r}>"


def read_head(sock: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes]:
    """Read up to the end of an HTTP head.

    :param sock: connected socket (with a timeout).
    :param buf: bytes already read.
    :returns: ``(head, rest)``.
    :raises ConnectionError: when the peer closes before the head ends.
    """
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before the response head: {buf[:200]!r}")
        buf += chunk
        if len(buf) > 1_000_000:
            raise ConnectionError("response head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers


def _read_chunked(sock: socket.socket, rest: bytes, deadline: float) -> bytes:
    body = b""
    buf = rest
    while time.monotonic() < deadline:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return body
            buf += chunk
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                return body + buf[:size]
            buf += chunk
        if size == 0:
            return body
        body += buf[:size]
        buf = buf[size + 2 :]
    raise TimeoutError("chunked body not finished in time")


def _read_body(
    sock: socket.socket,
    status: int,
    headers: list[tuple[str, str]],
    rest: bytes,
    method: str,
    timeout: float,
) -> bytes:
    hdr = dict(headers)
    if method == "HEAD" or status in (101, 204, 304):
        return b""
    deadline = time.monotonic() + timeout
    if hdr.get("transfer-encoding", "").lower() == "chunked":
        return _read_chunked(sock, rest, deadline)
    if "content-length" in hdr:
        length = int(hdr["content-length"])
        body = rest
        while len(body) < length and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return body[:length]
    body = rest
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return body


def http(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    content_length: bool = True,
) -> HttpResponse:
    """Send one request on a new connection (``Connection: close``) and read the answer.

    :param port: server port.
    :param method: HTTP method.
    :param target: request target, sent verbatim.
    :param body: request body.
    :param headers: extra headers (may override Host / Content-Length).
    :param timeout: socket timeout and body deadline.
    :param content_length: add ``Content-Length`` when the caller gave none.
    :returns: the response.
    """
    hdrs = {"Host": f"{HOST}:{port}", "Connection": "close"}
    if content_length and (body or method in ("POST", "PUT")):
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = (
        f"{method} {target} HTTP/1.1\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        + "\r\n"
    )
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        raw_head, rest = read_head(sock)
        status, resp_headers = _parse_head(raw_head)
        data = _read_body(sock, status, resp_headers, rest, method, timeout)
    return HttpResponse(status, resp_headers, data)


def read_response(
    sock: socket.socket, buf: bytes = b"", method: str = "GET", timeout: float = 5.0
) -> HttpResponse:
    """Read one whole response from ``sock`` (``buf``: bytes of it already read)."""
    raw_head, rest = read_head(sock, buf)
    status, resp_headers = _parse_head(raw_head)
    return HttpResponse(
        status, resp_headers, _read_body(sock, status, resp_headers, rest, method, timeout)
    )


# ---------------------------------------------------------------- Engine.IO polling


def eio_query(sid: str | None = None, transport: str = "polling") -> str:
    """``/socket.io/?EIO=4&transport=...[&sid=...]``."""
    q = f"{EIO_PATH}?EIO=4&transport={transport}&t={time.monotonic_ns()}"
    return q + (f"&sid={sid}" if sid else "")


def eio_open(
    port: int, headers: dict[str, str] | None = None
) -> tuple[str, dict[str, Any], HttpResponse]:
    """Polling handshake.

    :returns: ``(sid, handshake, response)``.
    :raises AssertionError: when the server refuses.
    """
    r = http(port, "GET", eio_query(), headers=headers)
    assert r.status == 200, r
    assert r.body[:1] == b"0", r
    hs = json.loads(r.body[1:])
    return hs["sid"], hs, r


def eio_post(
    port: int, sid: str, body: bytes | str, headers: dict[str, str] | None = None
) -> HttpResponse:
    """POST a payload to a polling session."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    hdrs = {"Content-Type": "text/plain;charset=UTF-8"}
    hdrs.update(headers or {})
    return http(port, "POST", eio_query(sid), data, hdrs)


def eio_get(port: int, sid: str, timeout: float = 6.0) -> HttpResponse:
    """One long-poll GET."""
    return http(port, "GET", eio_query(sid), timeout=timeout)


def eio_close(port: int, sid: str) -> None:
    """Send a CLOSE packet (ignoring errors: the session may be gone already)."""
    with contextlib.suppress(OSError, ConnectionError):
        eio_post(port, sid, "1")


def sio_polling_connect(port: int, namespace: str = "/") -> tuple[str, str]:
    """Engine.IO handshake + Socket.IO CONNECT over polling.

    :returns: ``(eio_sid, connect_reply_payload)``.
    """
    sid, _, _ = eio_open(port)
    prefix = "40" if namespace == "/" else f"40{namespace},"
    assert eio_post(port, sid, prefix).status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = eio_get(port, sid)
        assert r.status == 200, r
        for packet in r.text.split(RS):
            if packet.startswith((prefix + "{", "44")):
                return sid, packet
            if packet == "2":
                eio_post(port, sid, "3")
    raise AssertionError("no CONNECT reply over polling")


# ---------------------------------------------------------------- WebSocket


class RawWS:
    """A client WebSocket whose frames are built by hand.

    :param port: server port.
    :param target: request target (path and query).
    :param headers: extra request headers (``None`` value removes a default one).
    :param timeout: socket timeout.
    """

    def __init__(
        self,
        port: int,
        target: str | None = None,
        headers: dict[str, str | None] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs: dict[str, str | None] = {
            "Host": f"{HOST}:{port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        hdrs.update(headers or {})
        target = target or eio_query(transport="websocket")
        head = (
            f"GET {target} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
            + "\r\n"
        )
        self.sock.sendall(head.encode("latin-1"))
        raw_head, self.buf = read_head(self.sock)
        self.status, self.headers = _parse_head(raw_head)
        self.body = b""
        if self.status != 101:
            self.body = _read_body(self.sock, self.status, self.headers, self.buf, "GET", timeout)
            self.buf = b""
        self.close_code: int | None = None
        self.eio_pings = 0

    # -- frames out

    @staticmethod
    def frame(
        opcode: int,
        payload: bytes,
        fin: bool = True,
        rsv: int = 0,
        mask: bool = True,
        length: int | None = None,
    ) -> bytes:
        """Build one client frame.

        :param opcode: frame opcode (any 4-bit value).
        :param payload: payload (masked here when ``mask``).
        :param fin: FIN bit.
        :param rsv: RSV bits (0..7).
        :param mask: set the MASK bit and mask the payload.
        :param length: announced length (default: the real one).
        :returns: the frame bytes.
        """
        first = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
        n = len(payload) if length is None else length
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", first, mbit | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", first, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", first, mbit | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        masked = unmask(key, payload)  # XOR is its own inverse
        return head + key + masked

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes, **kw: Any) -> None:
        """Send one frame (see :meth:`frame`)."""
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text: str) -> None:
        """Send a text message."""
        self.send_frame(1, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Send a binary message."""
        self.send_frame(2, data)

    # -- frames in

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv_frame(self) -> tuple[int, bytes] | None:
        """Read one server frame: ``(opcode, payload)``, None at EOF."""
        if not self._need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not self._need(4):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            if not self._need(10):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        if not self._need(pos + n):
            return None
        payload = self.buf[pos : pos + n]
        self.buf = self.buf[pos + n :]
        return b0 & 0x0F, payload

    def recv(self, timeout: float = 5.0, auto_pong: bool = True) -> tuple[str, Any]:
        """Next message: ``('text', str)``, ``('binary', bytes)``, ``('close', code)``
        or ``('eof', None)``.

        WebSocket pings are answered; with ``auto_pong`` Engine.IO pings (``"2"``) too.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no WebSocket message in time")
            self.sock.settimeout(left)
            try:
                got = self.recv_frame()
            except (ConnectionResetError, BrokenPipeError):
                got = None
            if got is None:
                return "eof", None
            opcode, payload = got
            if opcode == 9:
                with contextlib.suppress(OSError):
                    self.send_frame(10, payload)
                continue
            if opcode == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return "close", self.close_code
            if opcode == 2:
                return "binary", payload
            text = payload.decode("utf-8")
            if auto_pong and text == "2":
                self.eio_pings += 1
                with contextlib.suppress(OSError):
                    self.send_text("3")
                continue
            return "text", text

    def recv_text(self, timeout: float = 5.0) -> str:
        """Next text message (fails on anything else)."""
        kind, value = self.recv(timeout)
        assert kind == "text", (kind, value)
        return str(value)

    def wait_text(self, prefix: str, timeout: float = 5.0) -> str:
        """Skip messages until a text message starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            kind, value = self.recv(max(deadline - time.monotonic(), 0.01))
            if kind == "text" and str(value).startswith(prefix):
                return str(value)
            assert kind in ("text", "binary"), (kind, value, prefix)

    def expect_end(self, timeout: float = 5.0) -> tuple[str, Any]:
        """Read until the server closes: ``('close', code)`` or ``('eof', None)``.

        :raises AssertionError: when the connection is still open after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        seen: list[Any] = []
        while True:
            try:
                kind, value = self.recv(max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                raise AssertionError(
                    f"server did not close the connection; got {seen[-5:]}"
                ) from None
            except OSError:
                return "eof", None
            if kind in ("close", "eof"):
                return kind, value
            seen.append(value)

    def close(self) -> None:
        """Close the socket (without a closing handshake)."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawWS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ws_sio_connect(port: int, namespace: str = "/", auth: Any = None) -> tuple[RawWS, str, str]:
    """A WebSocket-only Socket.IO connection.

    :returns: ``(ws, eio_sid, sio_sid)``.
    """
    ws = RawWS(port)
    assert ws.status == 101, (ws.status, ws.body)
    opened = ws.recv_text()
    assert opened.startswith("0{"), opened
    eio_sid = json.loads(opened[1:])["sid"]
    prefix = "40" if namespace == "/" else f"40{namespace},"
    ws.send_text(prefix + (json.dumps(auth) if auth is not None else ""))
    reply = ws.wait_text(prefix + "{")
    return ws, eio_sid, json.loads(reply[len(prefix) :])["sid"]


class Watcher:
    """A well-behaved client connected alongside every hostile case.

    It joins room ``ticks`` (the server emits there every 0.05 s), answers
    Engine.IO pings, and can do an ``echo`` round trip with an ack.

    :param port: server port.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.ws, self.eio_sid, self.sid = ws_sio_connect(port, auth={"room": "ticks"})
        self.ticks = 0
        self.pings = 0
        self.acks: dict[int, Any] = {}
        self.error: str | None = None
        self.last_tick_at = time.monotonic()
        self._ack = 100
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="watcher")
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                try:
                    kind, value = self.ws.recv(1.0, auto_pong=False)
                except TimeoutError:
                    continue
                if kind != "text":
                    self.error = f"watcher got {kind} {value!r}"
                    return
                self._on_text(str(value))
        except OSError as exc:
            if not self._stop:
                self.error = f"watcher socket error: {exc!r}"

    def _on_text(self, text: str) -> None:
        if text == "2":
            self.pings += 1
            with self._lock:
                self.ws.send_text("3")
        elif text.startswith('42["tick"'):
            self.ticks += 1
            self.last_tick_at = time.monotonic()
        elif text.startswith("43"):
            body = text[2:]
            digits = len(body) - len(body.lstrip("0123456789"))
            self.acks[int(body[:digits])] = json.loads(body[digits:])

    def echo(self, payload: Any, timeout: float = 3.0) -> Any:
        """Emit ``echo`` with an ack and wait for it.

        :returns: the ack arguments.
        :raises AssertionError: on timeout.
        """
        with self._lock:
            self._ack += 1
            ack = self._ack
            self.ws.send_text(f"42{ack}" + json.dumps(["echo", payload]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ack in self.acks:
                return self.acks.pop(ack)
            assert self.error is None, self.error
            time.sleep(0.01)
        raise AssertionError(f"watcher: no ack for echo within {timeout} s")

    def assert_alive(self, timeout: float = 3.0) -> None:
        """New ticks arrive and an echo comes back.

        :param timeout: seconds for each of the two checks.
        """
        assert self.error is None, self.error
        start = self.ticks
        deadline = time.monotonic() + timeout
        while self.ticks < start + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.ticks >= start + 2, f"watcher: ticks stopped ({start} -> {self.ticks})"
        token = os.urandom(4).hex()
        assert self.echo(token, timeout) == [token]
        assert self.error is None, self.error

    def stop(self) -> None:
        """Stop the reader and close the socket."""
        self._stop = True
        with contextlib.suppress(OSError):
            self.ws.send_frame(8, struct.pack("!H", 1000))
        self._thread.join(3)
        self.ws.close()
