"""The session relay: any process serves any session, through the message bus.

With a client manager that relays (``RedisManager``, ``KombuManager``), a session
id starts with the 16 hex digits of the process that owns it. A request for a
session another process owns (a long-polling GET or POST, or the WebSocket of an
upgrade) is carried to that process over the bus, to its own inbox:

- the *front* (the process the load balancer picked) reads the body within the
  same limits as a local request, sends the request to the owner, and answers
  its client with what the owner answers;
- the *owner* rebuilds the request as a WSGI environ and runs it through its
  engine, exactly as if the client had reached it (origin, query, transport
  rules, size limits, session state: all checked there, the same code);
- a WebSocket upgrade becomes a byte stream: the owner's WebSocket transport
  works on one end of a local socket pair, the front pumps the bytes between the
  client's socket and the bus.

Faults answer at once: the owner gone (the broker says nobody listens, or it
stops acknowledging) is a 400 "Session ID unknown", so the client reconnects to
a live process; the bus unreachable is a 503. See docs/multinode.md.

The messages are in :mod:`sio_wsgi.engine.relay_wire`, the WebSocket streams
in :mod:`sio_wsgi.engine.relay_streams`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..config import ServerOptions
from ..exceptions import BusError
from ..runtime.base import Driver, Event, Timer
from ..transports.hijack import hijack, request_socket
from ..transports.polling import read_exactly
from .http import CapturedStart, ErrorCode, Response, error_response
from .ports import (
    RELAY_BODY_TIMEOUT,
    RELAY_ON_HEAD,
    RELAY_SOCKET,
    RELAYED,
    Environ,
    RelayBus,
    StartResponse,
)
from .relay_streams import STREAM_CHECK_EVERY, Stream, StreamTable
from .relay_wire import (
    ACK,
    DATA,
    END,
    HOST_ID_LENGTH,
    REQUEST,
    RESPONSE,
    UPGRADED,
    message,
    parse,
    split_header,
    with_header,
)

__all__ = ["Relay", "HOST_ID_LENGTH", "STREAM_CHECK_EVERY"]

logger = logging.getLogger(__name__)

#: seconds an owner has to answer or acknowledge a relayed request before the front
#: says "Session ID unknown" (it is gone, or too loaded to serve it)
ACK_TIMEOUT = 3.0
#: an owner acknowledges a relayed request it has not answered after this many seconds
ACK_AFTER = 0.5
#: while waiting for a long-poll answer, how often the front checks the owner lives
LIVENESS_EVERY = 1.0
#: how long a request reaching a process whose bus is not subscribed yet (it just
#: started) waits for it, instead of a 503
BUS_START_WAIT = 2.0
#: request environ keys carried to the owner besides the HTTP_* headers
_CARRIED = ("REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "SCRIPT_NAME", "CONTENT_TYPE")
_CARRIED_OPTIONAL = ("REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL")
#: what an owner takes from a relayed request's header (HTTP_* besides)
_ACCEPTED = frozenset((*_CARRIED, *_CARRIED_OPTIONAL, "CONTENT_LENGTH", "wsgi.url_scheme"))


class EngineApp(Protocol):
    """What the relay calls on its engine: its WSGI entry point."""

    def handle_request(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one Engine.IO request."""


class _Waiter:
    """A front's request waiting for its owner."""

    __slots__ = ("event", "acked", "response", "head", "stream", "owner")

    def __init__(self, event: Event, owner: str = "") -> None:
        self.event = event
        self.owner = owner
        self.acked = False
        self.response: tuple[str, list[tuple[str, str]], bytes] | None = None
        self.head: bytes | None = None
        self.stream: Stream | None = None


class Relay:
    """Carries requests for sessions of other processes to them, and serves theirs.

    :param app: the engine (its ``handle_request``).
    :param bus: the client manager's inbox per process.
    :param driver: the concurrency driver.
    :param options: the server's options (body limits and timeouts, ping times).
    :param call_later: the engine's timers (``call_later(delay, fn, *args)``).
    """

    def __init__(
        self,
        app: EngineApp,
        bus: RelayBus,
        driver: Driver,
        options: ServerOptions,
        call_later: Callable[..., Timer],
    ) -> None:
        self.app = app
        self.call_later = call_later
        self.bus = bus
        self.driver = driver
        self.options = options
        self.host_id = bus.host_id
        self._me = bus.host_id.encode("ascii")
        self._waiting: dict[str, _Waiter] = {}
        self._alive: dict[str, tuple[float, bool]] = {}
        self._streams = StreamTable(driver, call_later, self.send, self._owner_alive)
        #: relayed requests served here and not answered yet: their acknowledgement timers
        self._unanswered: dict[str, Timer] = {}
        #: counters: requests sent to owners, served for fronts, WebSockets among
        #: those, and requests answered here because the owner or the bus failed
        self.stats = {"forwarded": 0, "served": 0, "streams": 0, "failed": 0}
        self._on_kind: dict[bytes, Callable[[str, str, bytes], None]] = {
            REQUEST: self._on_request,
            ACK: self._on_ack,
            RESPONSE: self._on_response,
            UPGRADED: self._on_upgraded,
            DATA: self._on_data,
            END: self._on_end,
        }
        bus.set_direct_handler(self.receive)
        bus.set_link_lost_handler(self.link_lost)

    # ------------------------------------------------------------ routing

    def owner_of(self, sid: str) -> str | None:
        """The host id of the process that owns ``sid`` when it is another one."""
        if len(sid) <= HOST_ID_LENGTH:
            return None
        host = sid[:HOST_ID_LENGTH]
        if host == self.host_id or not all(c in "0123456789abcdef" for c in host):
            return None
        return host

    def forward(
        self,
        owner: str,
        environ: Environ,
        start_response: StartResponse,
        cors: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """Serve a request for a session of ``owner`` through it (front side).

        :param cors: the CORS headers of an answer made here (the owner's answers
            carry its own).
        """
        if not self.bus.ready(BUS_START_WAIT):
            return self._answer(start_response, _unavailable(), cors)
        if not self.bus.knows_host(owner):
            # no such process on the bus lately (gone a while ago, or an id made up by the
            # client): answered here and at once (a process that just started asks the
            # broker first: its older peers may not have answered its hello yet)
            return self._answer(start_response, _gone(owner), cors)
        upgrade = "websocket" in str(environ.get("HTTP_UPGRADE", "")).lower()
        header: dict[str, Any] = {k: environ[k] for k in _CARRIED if k in environ}
        header.update({k: str(environ[k]) for k in _CARRIED_OPTIONAL if k in environ})
        header.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        header["wsgi.url_scheme"] = environ.get("wsgi.url_scheme", "http")
        body = b""
        if environ.get("REQUEST_METHOD") == "POST":
            body, flag, length = self._read_body(environ, start_response)
            if flag:
                header["flag"] = flag
            if length is not None:
                header["CONTENT_LENGTH"] = str(length)
            elif "CONTENT_LENGTH" in environ:
                header["CONTENT_LENGTH"] = str(environ["CONTENT_LENGTH"])
        rid = secrets.token_hex(8)
        self.stats["forwarded"] += 1
        waiter = _Waiter(self.driver.event(), owner)
        if upgrade:
            waiter.stream = self._streams.open(owner, rid)
        self._waiting[rid] = waiter
        try:
            try:
                sent = self.send(owner, REQUEST, rid, with_header(header, body))
            except BusError:
                return self._answer(start_response, _unavailable(), cors)
            if not sent:
                return self._answer(start_response, _gone(owner), cors)
            return self._await(owner, rid, waiter, environ, start_response, cors)
        finally:
            self._waiting.pop(rid, None)
            if waiter.stream is not None and waiter.stream.sock is None:
                self._streams.drop(rid)

    def _await(
        self,
        owner: str,
        rid: str,
        waiter: _Waiter,
        environ: Environ,
        start_response: StartResponse,
        cors: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        driver = self.driver
        deadline = driver.monotonic() + ACK_TIMEOUT
        # a long-poll is answered within a ping interval (a ping at the latest)
        longest = self.options.ping_interval + self.options.ping_timeout + ACK_TIMEOUT
        give_up = driver.monotonic() + longest
        while True:
            now = driver.monotonic()
            until = give_up if waiter.acked else deadline
            waiter.event.wait(max(0.0, min(until, now + LIVENESS_EVERY) - now))
            waiter.event.clear()
            if waiter.response is not None:
                status, headers, body = waiter.response
                start_response(status, headers)
                return [body]
            if waiter.head is not None:
                return self._run_front_stream(waiter, environ, start_response, cors)
            if not self.bus.healthy:
                return self._answer(start_response, _unavailable(), cors)
            # no answer yet: give up at the deadline, or as soon as the owner is gone
            # (checked with the broker at most every LIVENESS_EVERY seconds)
            until = give_up if waiter.acked else deadline
            if driver.monotonic() >= until or not self._owner_alive(owner):
                return self._answer(start_response, _gone(owner), cors)

    def _owner_alive(self, owner: str) -> bool:
        """Ask the bus whether ``owner`` lives, at most every LIVENESS_EVERY seconds."""
        now = self.driver.monotonic()
        seen = self._alive.get(owner)
        if seen is not None and now - seen[0] < LIVENESS_EVERY:
            return seen[1]
        alive = self.bus.host_alive(owner)
        self._alive[owner] = (now, alive)
        return alive

    def _run_front_stream(
        self,
        waiter: _Waiter,
        environ: Environ,
        start_response: StartResponse,
        cors: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        stream = waiter.stream
        assert stream is not None and waiter.head is not None
        hijacked = hijack(environ, start_response, waiter.head)
        if hijacked is None:
            with contextlib.suppress(BusError):
                self.send(stream.peer, END, stream.rid)
            self._streams.drop(stream.rid)
            refused = error_response(
                ErrorCode.BAD_REQUEST, detail="WebSocket is not supported by this WSGI server"
            )
            return self._answer(start_response, refused, cors)
        if hijacked.buffered:
            self.send(stream.peer, DATA, stream.rid, hijacked.buffered)
        stream.attach(hijacked.sock)
        stream.pump()
        with contextlib.suppress(OSError):
            hijacked.sock.close()
        return hijacked.finish()

    def _read_body(
        self, environ: Environ, start_response: StartResponse
    ) -> tuple[bytes, str, int | None]:
        """The POST body as the owner's polling transport would read it:
        ``(body, flag, content_length)``; flag is "" or what went wrong."""
        limit = self.options.max_http_buffer_size
        stream = environ["wsgi.input"]
        text = str(environ.get("CONTENT_LENGTH") or "").strip()
        sock = request_socket(environ, start_response)
        cut = [False]

        def _cut() -> None:
            cut[0] = True
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)

        timer = self.call_later(self.options.http_body_timeout, _cut) if sock is not None else None
        try:
            if text:
                try:
                    length = int(text)
                except ValueError:
                    return b"", "", None  # the owner refuses the bad header itself
                if length < 0 or length > limit:
                    return b"", "", length  # refused by the owner from the length
                body = read_exactly(stream, length)
                if len(body) < length:
                    return b"", "timeout" if cut[0] else "incomplete", length
                return body, "", length
            return bytes(stream.read(limit + 1)), "", None
        except (OSError, ValueError):
            return b"", "timeout" if cut[0] else "incomplete", None
        finally:
            if timer is not None:
                timer.cancel()

    # ------------------------------------------------------------ the bus side

    def receive(self, raw: bytes) -> None:
        """One message of this process's inbox (called in the bus listener task)."""
        msg = parse(raw)
        if msg is None or msg.to != self._me:
            return  # not for this process (a broker that delivered it to everyone)
        handler = self._on_kind.get(msg.kind)
        if handler is not None:
            handler(msg.sender, msg.rid, msg.payload)

    def send(self, to: str, kind: bytes, rid: str, payload: bytes = b"") -> bool:
        """Publish one relay message to process ``to``'s inbox.

        :returns: False when the bus knows nobody listens there.
        :raises BusError: when the bus is unreachable.
        """
        return self.bus.publish_direct(to, message(kind, self.host_id, to, rid, payload))

    def link_lost(self, host: str) -> None:
        """The direct link to ``host`` closed: it may be gone. Its waiting requests ask
        the broker now (not at their next liveness check), and its streams are checked."""
        self._alive.pop(host, None)
        for waiter in list(self._waiting.values()):
            if waiter.owner == host:
                waiter.event.set()
        if self._streams.has_peer(host):
            self.driver.spawn(self._streams.check_peer, host)

    def _on_request(self, sender: str, rid: str, payload: bytes) -> None:
        try:
            header, body = split_header(payload)
        except (ValueError, struct.error):
            logger.warning("dropped a relayed request that does not parse")
            return
        # the acknowledgement only for an answer that takes a while (a long-poll): most
        # answers come first, and one broker message fewer is a fifth of a relayed request
        self._unanswered[rid] = self.call_later(ACK_AFTER, self._late_ack, sender, rid)
        # a pooled task: no thread (threading mode) or greenlet started per relayed request
        self.driver.submit(self._serve, sender, rid, header, body)

    def _late_ack(self, front: str, rid: str) -> None:
        """Tell the front its request is being served (it has no answer yet)."""
        if self._unanswered.pop(rid, None) is not None:
            with contextlib.suppress(BusError):
                self.send(front, ACK, rid)

    def _answering(self, rid: str) -> None:
        """The answer goes out now: no acknowledgement needed any more."""
        timer = self._unanswered.pop(rid, None)
        if timer is not None:
            timer.cancel()

    def _on_ack(self, sender: str, rid: str, payload: bytes) -> None:
        waiter = self._waiting.get(rid)
        if waiter is not None:
            waiter.acked = True
            waiter.event.set()

    def _on_response(self, sender: str, rid: str, payload: bytes) -> None:
        waiter = self._waiting.get(rid)
        if waiter is None:
            return
        try:
            header, body = split_header(payload)
        except (ValueError, struct.error):
            return
        headers = [(str(k), str(v)) for k, v in header.get("headers", [])]
        waiter.response = (str(header.get("status", "500 Internal Server Error")), headers, body)
        waiter.event.set()

    def _on_upgraded(self, sender: str, rid: str, payload: bytes) -> None:
        waiter = self._waiting.get(rid)
        if waiter is not None:
            waiter.head = payload
            waiter.event.set()

    def _on_data(self, sender: str, rid: str, payload: bytes) -> None:
        self._streams.feed(sender, rid, payload)

    def _on_end(self, sender: str, rid: str, payload: bytes) -> None:
        self._streams.feed(sender, rid, None)

    # ------------------------------------------------------------ the owner side

    def _serve(self, front: str, rid: str, header: dict[str, Any], body: bytes) -> None:
        """Run a relayed request through the engine and send the answer back."""
        environ = self._environ(front, header, body)
        self.stats["served"] += 1
        capture = CapturedStart()
        pair: tuple[socket.socket, socket.socket] | None = None
        stream: Stream | None = None
        if "websocket" in str(environ.get("HTTP_UPGRADE", "")).lower():
            pair = socket.socketpair()
            stream = self._streams.open(front, rid)
            environ[RELAY_SOCKET] = pair[0]

            def on_head(head: bytes) -> None:
                assert stream is not None and pair is not None
                self.stats["streams"] += 1
                self._answering(rid)
                self.send(front, UPGRADED, rid, head)
                stream.attach(pair[1])
                self.driver.spawn(stream.pump)

            setattr(capture, RELAY_ON_HEAD, on_head)
        try:
            result = self.app.handle_request(environ, capture)
            data = b"".join(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
        except Exception:
            logger.exception("relayed request failed")
            capture.status, capture.headers = "500 Internal Server Error", []
            data = b""
        finally:
            if pair is not None:
                with contextlib.suppress(OSError):
                    pair[0].close()
        if stream is not None and stream.sock is not None:
            return  # the WebSocket ran (and is over): the stream ends itself
        if stream is not None:
            self._streams.drop(rid)
            if pair is not None:
                with contextlib.suppress(OSError):
                    pair[1].close()
        answer = {"status": capture.status, "headers": capture.headers}
        self._answering(rid)
        with contextlib.suppress(BusError):
            self.send(front, RESPONSE, rid, with_header(answer, data))

    def _environ(self, front: str, header: dict[str, Any], body: bytes) -> Environ:
        """The WSGI environ of a relayed request."""
        environ: Environ = {
            "SCRIPT_NAME": "",
            "PATH_INFO": "/",
            "SERVER_NAME": "relay",
            "SERVER_PORT": "0",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for key, value in header.items():
            if key == "flag" or not isinstance(value, str):
                continue
            if key in _ACCEPTED or key.startswith("HTTP_"):
                environ[key] = value
        flag = header.get("flag")
        environ["wsgi.input"] = _Broken() if flag == "incomplete" else io.BytesIO(body)
        if flag == "timeout":
            environ[RELAY_BODY_TIMEOUT] = True
        environ[RELAYED] = front
        return environ

    def _answer(
        self, start_response: StartResponse, response: Response, cors: list[tuple[str, str]]
    ) -> Iterable[bytes]:
        self.stats["failed"] += 1
        start_response(response.status_line, response.wsgi_headers() + cors)
        return [response.body]


class _Broken(io.RawIOBase):
    """The body of a request whose client left mid-body (as the front saw it)."""

    def read(self, size: int = -1) -> bytes:
        raise ConnectionError("the client left mid-body (seen by the relaying process)")


def _unavailable() -> Response:
    return error_response(
        ErrorCode.BAD_REQUEST,
        status=503,
        message="Session relay unavailable",
        detail="the message bus is unreachable; retry",
    )


def _gone(owner: str) -> Response:
    logger.info("the process %s that owned a session does not answer", owner)
    return error_response(ErrorCode.UNKNOWN_SID, detail="its process is gone")
