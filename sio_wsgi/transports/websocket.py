"""WebSocket transport: one reader (the request's own thread or greenlet) and one
writer task per connection, both written against the Driver."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.http import ErrorCode, Response, error_response
from ..engine.session import EngineSession, State
from ..exceptions import RemoteProtocolError
from ..protocol import websocket as ws
from ..protocol.eio import PacketType, Wire, decode_wire
from ..runtime.base import nonblocking_send
from .hijack import Hijacked, hijack

if TYPE_CHECKING:
    from ..engine.server import EngineServer, StartResponse

__all__ = ["handle_open", "handle_upgrade", "WebSocketConnection"]

_RECV_SIZE = 65536
_ABORT_GRACE = 5.0

#: a handler run inline on a WebSocket reader (threading mode) that has not
#: returned after this many seconds gets the reading handed to a new thread
HANDOVER_AFTER = 0.02

#: the connection whose handler this OS thread runs inline, if any
_inline = threading.local()
_get_ident = threading.get_ident


def inline_connection() -> WebSocketConnection | None:
    """The connection whose reader this thread is, while it runs a handler inline."""
    conn: WebSocketConnection | None = getattr(_inline, "conn", None)
    return conn


#: the last message framed and its frame: a broadcast hands every recipient the
#: same item object (see ``EngineServer.send``), so it is framed once
_last_frame: tuple[Wire, bytes] = ("", b"")


def _frame(item: Wire) -> bytes:
    global _last_frame
    last = _last_frame  # one read: another thread may replace the pair meanwhile
    if last[0] is item:
        return last[1]
    frame = ws.encode_binary(item) if isinstance(item, bytes) else ws.encode_text(item)
    _last_frame = (item, frame)
    return frame


def _accept(
    engine: EngineServer, environ: dict[str, Any], cors: list[tuple[str, str]]
) -> str | Response:
    try:
        return ws.check_handshake(
            environ.get("REQUEST_METHOD", "GET"), ws.headers_from_environ(environ)
        )
    except ws.HandshakeError as exc:
        response = error_response(
            ErrorCode.BAD_REQUEST, status=exc.status, detail=f"bad WebSocket handshake: {exc}"
        )
        response.headers.extend(exc.headers)
        response.headers.extend(cors)
        return response


def _take_socket(
    engine: EngineServer, environ: dict[str, Any], start_response: StartResponse, accept: str
) -> Hijacked | Response:
    hijacked = hijack(environ, start_response, ws.handshake_response(accept))
    if hijacked is None:
        engine.logger.warning("this WSGI server does not expose the raw socket: no WebSocket")
        return error_response(
            ErrorCode.BAD_REQUEST, detail="WebSocket is not supported by this WSGI server"
        )
    return hijacked


def handle_open(
    engine: EngineServer,
    environ: dict[str, Any],
    start_response: StartResponse,
    cors: list[tuple[str, str]],
) -> Response | Iterable[bytes]:
    """A WebSocket-only client: the first frame is the OPEN packet."""
    accept = _accept(engine, environ, cors)
    if isinstance(accept, Response):
        return accept
    session = engine.create_session("websocket", environ)
    if session is None:
        return error_response(ErrorCode.FORBIDDEN, detail="connection refused by the server")
    hijacked = _take_socket(engine, environ, start_response, accept)
    if isinstance(hijacked, Response):
        engine.close_session(session, "transport error", send_close_packet=False)
        return hijacked
    conn = WebSocketConnection(engine, hijacked)
    conn.send_direct([engine.handshake_packet(session.sid, "websocket")])
    conn.attach(session)
    conn.read_loop(session)
    return conn.finish(session)


def handle_upgrade(
    engine: EngineServer,
    session: EngineSession,
    environ: dict[str, Any],
    start_response: StartResponse,
    cors: list[tuple[str, str]],
) -> Response | Iterable[bytes]:
    """Upgrade a polling session: ``2probe`` / ``3probe`` / ``5``."""
    if (
        session.transport != "polling"
        or session.state is not State.OPEN
        or not engine.options.allow_upgrades
    ):
        response = error_response(ErrorCode.BAD_REQUEST, detail="upgrade not possible now")
        response.headers.extend(cors)
        return response
    accept = _accept(engine, environ, cors)
    if isinstance(accept, Response):
        return accept
    with session.lock:
        if session.state is not State.OPEN:
            return error_response(ErrorCode.BAD_REQUEST, detail="upgrade already in progress")
        session.state = State.UPGRADING
    hijacked = _take_socket(engine, environ, start_response, accept)
    if isinstance(hijacked, Response):
        session.state = State.OPEN
        return hijacked
    conn = WebSocketConnection(engine, hijacked)
    session.upgrade_timer = engine.scheduler.call_later(engine.options.upgrade_timeout, conn.abort)
    if conn.probe(session):
        conn.read_loop(session)
        return conn.finish(session)
    with session.lock:
        if session.state is State.UPGRADING:
            session.state = State.OPEN
    conn.close_socket()
    return hijacked.finish()


_IDLE, _DIRECT, _WRITER = 0, 1, 2


class WebSocketConnection:
    """One WebSocket: frames in through :meth:`read_loop`; frames out written by
    whoever queued them.

    Writing: the task that queues packets writes them itself with a non-blocking
    send when nobody else is writing (no context switch per message). Only when
    the kernel buffer is full does a writer task get spawned, to finish the
    leftover with blocking sends and drain what piles up meanwhile. Exactly one
    party writes at a time (``session.write_state``), so frames never interleave.
    """

    __slots__ = (
        "engine", "hijacked", "sock", "parser", "session", "writer", "_pending", "_closed",
        "_closing", "_leftover", "_control", "_fast", "_stream", "_raw",
        "_reader_id", "_busy_since", "_ended",
    )  # fmt: skip

    def __init__(self, engine: EngineServer, hijacked: Hijacked) -> None:
        self.engine = engine
        self.hijacked = hijacked
        self.sock: socket.socket = hijacked.sock
        self.parser = ws.FrameParser(engine.options.max_http_buffer_size)
        self.session: EngineSession | None = None
        self.writer: Any = None
        self._pending = [hijacked.buffered] if hijacked.buffered else []
        self._closed = False
        self._closing = False
        self._leftover = b""
        self._control: list[bytes] = []
        # TLS sockets must go through their own send(); no raw non-blocking path
        self._fast = not hasattr(self.sock, "cipher")
        self._raw = engine.driver.raw_socket(self.sock)
        # inline handlers (threading mode): the OS thread that reads now, since
        # when it runs a handler (0: it does not), set once the reading moved
        self._reader_id: int | None = None
        self._busy_since = 0.0
        self._ended: Any = None
        # one frame per message: do not let Nagle hold a small frame back waiting
        # for the peer's delayed ACK (what Node does for its WebSockets too)
        with contextlib.suppress(OSError, AttributeError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # one iterator for the whole connection: frames parsed from the same
        # recv() as the upgrade's "5" must reach read_loop()
        self._stream = self._events()

    # ---------------------------------------------------------------- writing

    def send_direct(self, items: list[Wire]) -> bool:
        """Write frames with a blocking send before the connection is attached
        (handshake and probe replies: nobody else writes yet)."""
        try:
            self.sock.sendall(b"".join(map(_frame, items)))
            return True
        except OSError:
            self._closed = True
            return False

    def attach(self, session: EngineSession) -> None:
        """Make this connection the session's transport and flush what is queued."""
        self.session = session
        session.extra = self  # before ws_attached: senders check that flag, then use extra
        with session.lock:
            session.transport = "websocket"
            session.ws_attached = True
            if session.state is State.UPGRADING:
                session.state = State.OPEN
        self.kick()

    def send_control(self, frame: bytes) -> None:
        """Queue a control frame (pong) ahead of the next data frames."""
        session = self.session
        if session is None:
            self.send_direct_bytes(frame)
            return
        with session.lock:
            self._control.append(frame)
        self.kick()

    def send_direct_bytes(self, data: bytes) -> None:
        """Blocking write of raw frame bytes (before attach only)."""
        try:
            self.sock.sendall(data)
        except OSError:
            self._closed = True

    def write(self, items: Sequence[Wire]) -> bool:
        """The fast path of a send: when nobody is writing and nothing is queued,
        become the writer and write ``items`` now, without queuing them.

        :returns: False when the caller must queue them instead (someone is
            writing, something is queued, or the session is not open).
        """
        session = self.session
        if session is None:
            return False
        with session.lock:
            if (
                session.write_state != _IDLE
                or session.outbox
                or self._control
                or session.state is not State.OPEN
            ):
                return False
            session.write_state = _DIRECT
        data = _frame(items[0]) if len(items) == 1 else b"".join(map(_frame, items))
        self._flush_direct(session, data)
        return True

    def kick(self) -> None:
        """Something was queued: write it now unless another party is writing."""
        session = self.session
        if session is None:
            return
        with session.lock:
            if session.write_state != _IDLE:
                return
            data = self._take(session)
            if not data and not self._closing:
                return
            session.write_state = _DIRECT
        self._flush_direct(session, data)

    def _take(self, session: EngineSession) -> bytes:
        """Frame and take everything queued; caller holds ``session.lock``."""
        items = session.outbox
        control = self._control
        if not items and not control:
            return b""
        session.outbox = []
        session.pending_bytes = 0
        self._control = []
        return b"".join(control) + b"".join(map(_frame, items))

    def _flush_direct(self, session: EngineSession, data: bytes) -> None:
        """As the writer (``write_state`` DIRECT): write ``data`` and whatever gets
        queued meanwhile without blocking; hand over to a writer task when the kernel
        buffer is full. Going back to IDLE happens under the lock together with the
        check that nothing is queued, so nothing can be stranded."""
        while True:
            if data:
                sent = self._try_send(data)
                if sent < 0:
                    with session.lock:
                        session.write_state = _IDLE
                    self._broken(session)
                    return
                if sent < len(data):
                    with session.lock:
                        self._leftover = data[sent:]
                        session.write_state = _WRITER
                    self.writer = self.engine.driver.spawn(self._write_loop, session)
                    return
            with session.lock:
                data = self._take(session)
                if not data:
                    session.write_state = _IDLE
                    break
        if self._closing:
            self._close_now()

    def _try_send(self, data: bytes) -> int:
        """Bytes written without blocking; -1 when the socket is broken."""
        if self._closed:
            return -1
        if not self._fast:
            return 0
        try:
            return self._raw.send(data, socket.MSG_DONTWAIT)  # type: ignore[no-any-return]
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return -1

    def _write_loop(self, session: EngineSession) -> None:
        """Spawned when the kernel buffer filled up: blocking sends until caught up."""
        try:
            while True:
                data, self._leftover = self._leftover, b""
                if data:
                    self.sock.sendall(data)
                with session.lock:
                    self._leftover = self._take(session)
                    if not self._leftover:
                        session.write_state = _IDLE
                        break
        except OSError:
            with session.lock:
                session.write_state = _IDLE
            self._broken(session)
            return
        except Exception:
            self.engine.logger.exception("WebSocket writer of %s failed", session.sid)
        if self._closing:
            self._close_now()

    def _broken(self, session: EngineSession) -> None:
        self._closed = True
        self.engine.close_session(session, "transport error", send_close_packet=False)
        self.close_socket()

    # ---------------------------------------------------------------- reading

    def _events(self) -> Iterable[Any]:
        """Yield parsed frames until the peer closes or the socket fails."""
        recv = self.sock.recv
        # after a short read the socket is most likely drained: park until it is
        # readable, rather than a recv() the green library sees fail with EAGAIN
        # (not under TLS: decrypted bytes can wait in the TLS object, not the socket)
        wait = self.engine.driver.readable_waiter(self.sock) if self._fast else None
        drained = False
        while True:
            if self._pending:
                data = self._pending.pop()
            else:
                try:
                    if drained and wait is not None:
                        wait()
                    data = recv(_RECV_SIZE)
                except (OSError, EOFError, ValueError):
                    # closed meanwhile (eventlet: EOFError, or ValueError for fd -1)
                    return
                drained = len(data) < _RECV_SIZE
            if not data:
                return
            yield from self.parser.feed(data)

    def probe(self, session: EngineSession) -> bool:
        """Run the upgrade handshake; True once the client sent ``5``."""
        probed = False
        try:
            for event in self._stream:
                if isinstance(event, ws.Ping):
                    self.send_direct_bytes(ws.encode_pong(event.data))
                    continue
                if not isinstance(event, ws.TextMessage):
                    return False
                if event.data == "2probe" and not probed:
                    probed = True
                    self.send_direct(["3probe"])
                    if session.polling_get:
                        session.push(["6"])
                elif event.data == "5" and probed:
                    if session.upgrade_timer is not None:
                        session.upgrade_timer.cancel()
                    if session.closed:
                        return False
                    self.attach(session)
                    return True
                else:
                    return False
        except RemoteProtocolError as exc:
            self.engine.logger.info("session %s: bad frame during upgrade: %s", session.sid, exc)
        return False

    def read_loop(self, session: EngineSession) -> None:
        """Read frames and hand packets to the engine until the connection ends.

        In threading mode a handler may run inline on this thread and the reading
        move to a new thread meanwhile (:meth:`hand_over`); this thread then waits
        until the connection has ended, so the WSGI server gets it back last.
        """
        if not self._read(session):
            ended = self._ended
            if ended is not None:
                ended.wait()

    def _read(self, session: EngineSession) -> bool:
        """The reading itself; False when handed over to another thread before the end."""
        me = _get_ident()
        self._reader_id = me
        reason = "transport close"
        engine = self.engine
        on_message = engine.handler.on_message  # the hot path: Engine.IO MESSAGE frames
        sid = session.sid
        try:
            for event in self._stream:
                if session.closed:
                    break
                kind = type(event)
                if kind is ws.TextMessage:
                    data = event.data
                    if data[:1] == "4":
                        on_message(sid, data[1:])
                    else:
                        engine.handle_packet(session, decode_wire(data))
                elif kind is ws.BinaryMessage:
                    on_message(sid, event.data)
                elif isinstance(event, ws.Ping):
                    self.send_control(ws.encode_pong(event.data))
                elif isinstance(event, ws.CloseReceived):
                    break
                if self._reader_id != me:
                    return False  # a handler ran long here: another thread reads now
        except RemoteProtocolError as exc:
            self.engine.logger.info("session %s: protocol error: %s", session.sid, exc)
            close_reason = str(exc).encode("utf-8")[:120].decode("utf-8", "ignore")
            self.send_control(ws.encode_close(exc.close_code, close_reason))
            reason = "parse error"
        except Exception:
            self.engine.logger.exception("session %s: reader failed", session.sid)
            reason = "transport error"
        with session.lock:
            self._reader_id = None  # nothing runs inline from here on
        self.engine.close_session(session, reason, send_close_packet=False)
        if self._ended is not None:
            self._ended.set()
        return True

    # ---------------------------------------------------------------- inline handlers

    def run_inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Run ``fn(*args)`` here when this thread is the connection's reader.

        Saves the handoff to a pooled thread (threading mode). If ``fn`` blocks,
        :meth:`hand_over` moves the reading to a new thread, so the client's
        other packets (acks a ``call()`` waits for, pongs) are still read.

        :returns: False when the caller is not the reader (run it elsewhere).
        """
        me = _get_ident()
        if self._reader_id != me:
            return False
        session = self.session
        assert session is not None
        engine = self.engine
        with session.lock:
            self._busy_since = time.monotonic()
            engine.busy_readers[self] = None
        engine.watch_busy_readers()
        previous = getattr(_inline, "conn", None)
        _inline.conn = self
        try:
            fn(*args)
        finally:
            _inline.conn = previous
            with session.lock:
                if self._reader_id == me:
                    self._busy_since = 0.0
                    engine.busy_readers.pop(self, None)
        return True

    def hand_over(self, force: bool) -> None:
        """Start a new reader thread if this connection's reader runs a handler
        (for :data:`HANDOVER_AFTER` seconds already, unless ``force``)."""
        session = self.session
        if session is None:
            return
        with session.lock:
            since = self._busy_since
            if not since or self._reader_id is None:
                self.engine.busy_readers.pop(self, None)
                return
            if not force and time.monotonic() - since < HANDOVER_AFTER:
                return
            reader = self._reader_id
            self._busy_since = 0.0
            self.engine.busy_readers.pop(self, None)
            self._reader_id = None  # the busy thread stops reading when its handler returns
            if self._ended is None:
                self._ended = self.engine.driver.thread_event()
        self.engine.logger.debug(
            "session %s: a handler holds its reader; reading moves", session.sid
        )
        try:
            self.engine.driver.spawn(self._read, session)
        except Exception:  # no thread to be had: the busy thread goes on reading afterwards
            self.engine.logger.exception("session %s: cannot start a reader thread", session.sid)
            with session.lock:
                if self._reader_id is None:
                    self._reader_id = reader

    # ---------------------------------------------------------------- closing

    def on_session_closed(self) -> None:
        """Called by the engine when the session closes: flush, close frame, shut down."""
        self._closing = True
        self.engine.scheduler.call_later(_ABORT_GRACE, self.abort)
        self.kick()

    def _close_now(self) -> None:
        if not self._closed and self._fast:
            try:
                nonblocking_send(self._raw, ws.encode_close(1000))
            except OSError:
                pass
        self.close_socket()

    def abort(self) -> None:
        """Shut the socket down now (unblocks the reader and a stuck writer)."""
        self.close_socket()

    def close_socket(self) -> None:
        """Shut down and close the socket once."""
        if self._closed and self.sock.fileno() < 0:
            return
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def finish(self, session: EngineSession) -> Iterable[bytes]:
        """Wait for whoever writes (a direct flush in another task, or the writer
        task) to finish, so queued frames and the close frame are not cut off,
        then return what the WSGI server expects."""
        driver = self.engine.driver
        deadline = driver.monotonic() + _ABORT_GRACE
        while session.write_state != _IDLE and driver.monotonic() < deadline:
            if self.writer is not None:
                self.writer.join(max(deadline - driver.monotonic(), 0.0))
                break
            driver.sleep(0.005)
        self.close_socket()
        return self.hijacked.finish()


_ = PacketType  # re-exported names used by type checkers only
