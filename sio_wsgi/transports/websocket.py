"""WebSocket transport: the request's own thread or greenlet reads, and whoever
queues packets writes them, all through the Driver.

:class:`WebSocketTransport` opens WebSocket-only sessions and upgrades polling
ones; each socket is a :class:`WebSocketConnection`, the session's
:class:`~sio_wsgi.engine.ports.Connection` once attached. In threading mode a
handler runs inline on its client's reader thread; :class:`ReaderHandover`
moves the reading to a new thread when such a handler holds on.

Under gunicorn's gevent and gthread workers and ``sio_wsgi.gunicorn.EventletWorker``
(:attr:`Hijacked.detached`), an idle connection is *parked*: once its socket is
drained (an OS thread waits a moment first) the reader returns, the request ends
(gunicorn frees its thread or green thread and its request objects), and the
socket reader's :meth:`~sio_wsgi.runtime.base.SocketReader.when_readable` resumes
the reading in a pooled task when bytes arrive. The reading keeps its place in one generator
(:meth:`WebSocketConnection._events`), so nothing else changes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from ..config import ServerOptions
from ..engine.http import ErrorCode, Response, error_response
from ..engine.outgoing import Outgoing
from ..engine.ports import DisconnectReason, Environ, Host, StartResponse
from ..engine.session import EngineSession, Transition
from ..engine.upgrade import ProbeStep, UpgradeProbe
from ..exceptions import RemoteProtocolError
from ..protocol import websocket as ws
from ..protocol.deflate import PerMessageDeflate, negotiate
from ..protocol.eio import MESSAGE_PREFIX, PONG_PROBE
from ..runtime.base import Event, SocketReader, Task
from .hijack import Hijacked, hijack

__all__ = ["WebSocketTransport", "WebSocketConnection", "ReaderHandover", "HANDOVER_AFTER"]

_RECV_SIZE = 65536
_ABORT_GRACE = 5.0
_CLOSE_REASON_BYTES = 120

#: a handler run inline on a WebSocket reader (threading mode) that has not
#: returned after this many seconds gets the reading handed to a new thread
HANDOVER_AFTER = 0.02

_NORMAL_CLOSE = ws.encode_close(ws.CloseCode.NORMAL)

#: who writes to a connection now (``WebSocketConnection._write_state``)
_IDLE, _DIRECT, _WRITER = 0, 1, 2

#: how a reading run ended (``WebSocketConnection._read``): the connection is over;
#: a handler holds this thread and another one reads now; the reader parked
_ENDED, _HANDED_OVER, _PARKED = 0, 1, 2


class _Park:
    """What :meth:`WebSocketConnection._events` yields when the socket is drained
    and the connection may park (the reading resumes right after the yield)."""


_PARK = _Park()


class _NoBody(io.RawIOBase):
    """The request body of a parked connection's environ (the server's own is
    freed): empty, read-only, so one instance serves every connection."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return 0


_NO_BODY = _NoBody()


def _nonblocking_send(raw: Any, data: bytes) -> int:
    """Send what fits in the kernel buffer now; 0 when it is full.

    :raises OSError: the connection is broken.
    """
    try:
        return int(raw.send(data, socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return 0


class WebSocketTransport:
    """Serves the WebSocket requests of one engine."""

    def __init__(self, host: Host) -> None:
        self.host = host
        #: threading mode only: handlers run inline on their reader
        self.handover = ReaderHandover(host) if host.driver.name == "threading" else None

    def release_reader(self) -> None:
        """A handler is about to wait (``call()``, ``sleep()``): if it runs inline
        on a WebSocket reader, move the reading to a new thread now."""
        if self.handover is not None:
            self.handover.release_reader()

    def open(
        self, environ: Environ, start_response: StartResponse, cors: list[tuple[str, str]]
    ) -> Response | Iterable[bytes]:
        """A WebSocket-only client: the first frame is the OPEN packet."""
        host = self.host
        accept = _accept(environ, cors, host.options)
        if isinstance(accept, Response):
            return accept
        session = host.create_session("websocket", environ)
        if session is None:
            return error_response(ErrorCode.FORBIDDEN, detail="connection refused by the server")
        # the OPEN packet goes out with the 101 head, in one write
        opening = ws.encode_text(host.open_packet(session.sid, "websocket"))
        hijacked = self._take_socket(environ, start_response, accept, opening)
        if isinstance(hijacked, Response):
            host.close_session(session, DisconnectReason.TRANSPORT_ERROR, send_close_packet=False)
            return hijacked
        conn = WebSocketConnection(host, hijacked, self.handover, accept.deflate)
        if conn.attach(session) and not conn.read_loop(session):
            return conn.parked(environ)
        return conn.finish(session)

    def upgrade(
        self,
        session: EngineSession,
        environ: Environ,
        start_response: StartResponse,
        cors: list[tuple[str, str]],
    ) -> Response | Iterable[bytes]:
        """Upgrade a polling session: ``2probe`` / ``3probe`` / ``5``."""
        host = self.host
        if not host.options.allow_upgrades:
            return _refused(cors)
        accept = _accept(environ, cors, host.options)
        if isinstance(accept, Response):
            return accept
        if session.transport != "polling" or not session.transition(Transition.START_UPGRADE):
            # already carried by a WebSocket, or being upgraded: as the Node server
            # does, accept this one and close it at once; the session goes on
            return self._accept_and_close(environ, start_response, accept, session)
        hijacked = self._take_socket(environ, start_response, accept)
        if isinstance(hijacked, Response):
            session.transition(Transition.CANCEL_UPGRADE)
            return hijacked
        conn = WebSocketConnection(host, hijacked, self.handover, accept.deflate)
        session.upgrade_timer = host.call_later(host.options.upgrade_timeout, conn.abort)
        if conn.probe(session):
            if not conn.read_loop(session):
                return conn.parked(environ)
            return conn.finish(session)
        session.transition(Transition.CANCEL_UPGRADE)
        conn.close_socket()
        return hijacked.finish()

    def _accept_and_close(
        self,
        environ: Environ,
        start_response: StartResponse,
        accept: _Handshake,
        session: EngineSession,
    ) -> Response | Iterable[bytes]:
        hijacked = self._take_socket(environ, start_response, accept)
        if isinstance(hijacked, Response):
            return hijacked
        self.host.logger.info(
            "session %s: another WebSocket while it is %s: closed", session.sid, session.state.value
        )
        with contextlib.suppress(OSError):
            hijacked.sock.sendall(ws.encode_close(ws.CloseCode.NORMAL))
        with contextlib.suppress(OSError):
            hijacked.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            hijacked.sock.close()
        return hijacked.finish()

    def _take_socket(
        self,
        environ: Environ,
        start_response: StartResponse,
        accept: _Handshake,
        first: bytes = b"",
    ) -> Hijacked | Response:
        """Send the 101 head (and ``first``, the frames that follow it) and take the
        connection over; an error response when this WSGI server cannot give it."""
        head = ws.handshake_response(accept.accept, accept.headers)
        hijacked = hijack(
            environ, start_response, head, detach=self.host.driver.can_park, first=first
        )
        if hijacked is None:
            self.host.logger.warning(
                "this WSGI server does not expose the raw socket: no WebSocket"
            )
            return error_response(
                ErrorCode.BAD_REQUEST, detail="WebSocket is not supported by this WSGI server"
            )
        return hijacked


def _deflated(out: Outgoing, deflate: PerMessageDeflate) -> bytes:
    return out.deflated_frames(deflate)


def _refused(cors: list[tuple[str, str]]) -> Response:
    response = error_response(ErrorCode.BAD_REQUEST, detail="upgrade not possible now")
    response.headers.extend(cors)
    return response


class _Handshake(NamedTuple):
    """An acceptable opening handshake: what to answer, and the extension agreed."""

    accept: str
    headers: list[tuple[str, str]]  # Sec-WebSocket-Extensions, when agreed
    deflate: PerMessageDeflate | None


def _accept(
    environ: Environ, cors: list[tuple[str, str]], options: ServerOptions
) -> _Handshake | Response:
    """Check the opening handshake and negotiate permessage-deflate (when the
    server offers it); the error answer to a bad handshake."""
    headers = ws.headers_from_environ(environ)
    try:
        accept = ws.check_handshake(environ.get("REQUEST_METHOD", "GET"), headers)
    except ws.HandshakeError as exc:
        response = error_response(
            ErrorCode.BAD_REQUEST, status=exc.status, detail=f"bad WebSocket handshake: {exc}"
        )
        response.headers.extend(exc.headers)
        response.headers.extend(cors)
        return response
    if options.per_message_deflate:
        offer = headers.get("sec-websocket-extensions")
        negotiated = negotiate(offer, options.deflate_threshold)
        if negotiated is not None:
            agreed, deflate = negotiated
            return _Handshake(accept, [("Sec-WebSocket-Extensions", agreed)], deflate)
    return _Handshake(accept, [], None)


class ReaderHandover:
    """Threading mode: keeps a client's reading going while a handler holds its reader.

    A handler run inline on a WebSocket reader thread registers the connection
    as busy; a sweep in the engine's timer task hands the reading of every
    connection busy for :data:`HANDOVER_AFTER` to a new thread, and re-arms
    while any connection is busy.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self._busy: dict[WebSocketConnection, None] = {}
        self._sweeping = False
        self._active = False  # a handler started inline since the last sweep
        self._lock = host.driver.lock()
        #: the connection whose handler this OS thread runs inline, if any
        self._local = threading.local()

    def current(self) -> WebSocketConnection | None:
        """The connection whose reader this thread is, while it runs a handler inline."""
        conn: WebSocketConnection | None = getattr(self._local, "conn", None)
        return conn

    def set_current(self, conn: WebSocketConnection | None) -> WebSocketConnection | None:
        """Make ``conn`` this thread's inline connection; returns the previous one."""
        previous = self.current()
        self._local.conn = conn
        return previous

    def release_reader(self) -> None:
        """Hand the reading over now if this thread runs a handler inline."""
        conn = self.current()
        if conn is not None:
            conn.hand_over(force=True)

    def busy(self, conn: WebSocketConnection) -> None:
        """``conn``'s reader started a handler (caller holds its session lock)."""
        self._busy[conn] = None

    def idle(self, conn: WebSocketConnection) -> None:
        """``conn``'s reader is no longer busy (caller holds its session lock)."""
        self._busy.pop(conn, None)

    def watch(self) -> None:
        """Make sure a sweep runs while a connection is busy. The timer keeps going
        while handlers start, and stops after a quiet interval."""
        self._active = True
        if self._sweeping:
            return
        with self._lock:
            if self._sweeping:
                return
            self._sweeping = True
        self.host.call_later(HANDOVER_AFTER, self._sweep)

    def _sweep(self) -> None:
        for conn in list(self._busy):
            conn.hand_over(force=False)
        with self._lock:
            again = self._sweeping = bool(self._busy) or self._active
            self._active = False
        if again:
            self.host.call_later(HANDOVER_AFTER, self._sweep)
        elif self._busy:  # one came in while stopping, and saw the sweep still on
            self.watch()


class _WebSocketWriter:
    """The writing half of a :class:`WebSocketConnection`.

    The task that queues packets writes them itself with a non-blocking send
    when nobody else is writing (no context switch per message). Only when the
    kernel buffer is full does a writer task get spawned, to finish the leftover
    with blocking sends and drain what piles up meanwhile. Exactly one party
    writes at a time (``_write_state``, changed under the session's lock), so
    frames never interleave. Closing flushes what is queued, then one Close frame.
    """

    __slots__ = (
        "host",
        "hijacked",
        "sock",
        "session",
        "writer",
        "_write_state",
        "_closed",
        "_closing",
        "_close_frame",
        "_leftover",
        "_control",
        "_fast",
        "_raw",
        "_framer",
    )

    def __init__(
        self, host: Host, hijacked: Hijacked, deflate: PerMessageDeflate | None = None
    ) -> None:
        self.host = host
        self.hijacked = hijacked
        self.sock: socket.socket = hijacked.sock
        #: an Outgoing's frames for this connection (compressed, with permessage-deflate)
        self._framer: Callable[[Outgoing], bytes] = (
            Outgoing.frames if deflate is None else functools.partial(_deflated, deflate=deflate)
        )
        self.session: EngineSession | None = None
        self.writer: Task | None = None
        self._write_state = _IDLE
        self._closed = False
        self._closing = False
        #: the Close frame _close_now() sends: 1000, the client's own code echoed,
        #: or nothing when the reader already queued one (protocol error)
        self._close_frame = _NORMAL_CLOSE
        self._leftover = b""
        self._control: list[bytes] = []
        # TLS sockets must go through their own send(); no raw non-blocking path
        self._fast = not hasattr(self.sock, "cipher")
        self._raw = host.driver.raw_socket(self.sock)
        # one frame per message: do not let Nagle hold a small frame back waiting
        # for the peer's delayed ACK (what Node does for its WebSockets too)
        with contextlib.suppress(OSError, AttributeError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---------------------------------------------------------------- Connection (writing)

    def write(self, out: Outgoing) -> bool:
        """The fast path of a send: when nobody is writing and nothing is queued,
        become the writer and write ``out`` now, without queuing it.

        :returns: False when the caller must queue it instead (someone is
            writing, something is queued, or the session is not open).
        """
        session = self.session
        if session is None:
            return False
        # framing has no state of its own (cached on ``out``: a broadcast frames once),
        # so it is done before knowing whether the frames go out now or get queued
        data = self._framer(out)
        with session.lock:
            if self._write_state != _IDLE or session.outbox or self._control or session.closed:
                return False
            if self._fast and not self._closed:
                # the usual case, in one critical section: a non-blocking send never
                # waits, and the kernel takes the frames whole; the state stays IDLE
                # throughout, and nothing can be queued meanwhile (pushes take the lock)
                try:
                    sent = self._raw.send(data, socket.MSG_DONTWAIT)
                except OSError:  # full (EAGAIN) or broken: _flush_direct tells which
                    sent = 0
                if sent == len(data):
                    return True
                if sent:
                    data = data[sent:]
            self._write_state = _DIRECT
        self._flush_direct(session, data)
        return True

    def writable(self) -> bool:
        return self._write_state == _IDLE

    def kick(self) -> None:
        """Something was queued: write it now unless another party is writing."""
        session = self.session
        if session is None:
            return
        with session.lock:
            if self._write_state != _IDLE:
                return
            data = self._take(session)
            if not data and not self._closing:
                return
            self._write_state = _DIRECT
        self._flush_direct(session, data)

    def session_closed(self, send_close_packet: bool) -> None:
        """Flush what is queued, then the close frame, and shut the socket down."""
        self._closing = True
        self.host.call_later(_ABORT_GRACE, self.abort)
        self.kick()

    def send_direct(self, text: str) -> bool:
        """Write a text frame with a blocking send before the connection is
        attached (handshake and probe replies: nobody else writes yet)."""
        return self.send_direct_bytes(ws.encode_text(text))

    def send_direct_bytes(self, data: bytes) -> bool:
        """Blocking write of raw frame bytes (before attach only)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self._closed = True
            return False

    def send_control(self, frame: bytes) -> None:
        """Queue a control frame (pong, close) ahead of the next data frames."""
        session = self.session
        if session is None:
            self.send_direct_bytes(frame)
            return
        with session.lock:
            self._control.append(frame)
        self.kick()

    def _take(self, session: EngineSession) -> bytes:
        """Frame and take everything queued; caller holds ``session.lock``."""
        control = self._control
        items = session.take()
        if not control:
            if not items:
                return b""
            if len(items) == 1:
                return self._framer(items[0])
        else:
            self._control = []
        return b"".join(control) + b"".join(map(self._framer, items))

    def _flush_direct(self, session: EngineSession, data: bytes) -> None:
        """As the writer (``_write_state`` DIRECT): write ``data`` and whatever gets
        queued meanwhile without blocking; hand over to a writer task when the kernel
        buffer is full. Going back to IDLE happens under the lock together with the
        check that nothing is queued, so nothing can be stranded."""
        while True:
            if data:
                sent = self._try_send(data)
                if sent < 0:
                    with session.lock:
                        self._write_state = _IDLE
                    self._broken(session)
                    return
                if sent < len(data):
                    with session.lock:
                        self._leftover = data[sent:]
                        self._write_state = _WRITER
                    self.writer = self.host.driver.spawn(self._write_loop, session)
                    return
            with session.lock:
                data = self._take(session)
                if not data:
                    self._write_state = _IDLE
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
            return _nonblocking_send(self._raw, data)
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
                        self._write_state = _IDLE
                        break
        except OSError:
            with session.lock:
                self._write_state = _IDLE
            self._broken(session)
            return
        except Exception:
            self.host.logger.exception("WebSocket writer of %s failed", session.sid)
        if self._closing:
            self._close_now()

    def _broken(self, session: EngineSession) -> None:
        self._closed = True
        self.host.close_session(session, DisconnectReason.TRANSPORT_ERROR, send_close_packet=False)
        self.close_socket()

    def _close_now(self) -> None:
        if not self._closed and self._fast and self._close_frame:
            try:
                _nonblocking_send(self._raw, self._close_frame)
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
        driver = self.host.driver
        deadline = driver.monotonic() + _ABORT_GRACE
        while self._write_state != _IDLE and driver.monotonic() < deadline:
            if self.writer is not None:
                self.writer.join(max(deadline - driver.monotonic(), 0.0))
                break
            driver.sleep(0.005)
        self.close_socket()
        session.transition(Transition.FINISH)
        return self.hijacked.finish()


class WebSocketConnection(_WebSocketWriter):
    """One WebSocket: frames in through :meth:`read_loop` (this class); frames out
    written by whoever queued them (:class:`_WebSocketWriter`). It is the session's
    :class:`~sio_wsgi.engine.ports.Connection` once attached.
    """

    name = "websocket"
    __slots__ = (
        "parser",
        "_pending",
        "_stream",
        "_handover",
        "_reader_id",
        "_busy_since",
        "_ended",
        "_probing",
        "_unread",
        "_parkable",
        "_parked",
        "_reader",
    )

    def __init__(
        self,
        host: Host,
        hijacked: Hijacked,
        handover: ReaderHandover | None = None,
        deflate: PerMessageDeflate | None = None,
    ) -> None:
        super().__init__(host, hijacked, deflate)
        inflate = None if deflate is None else deflate.decompress
        self.parser = ws.FrameParser(host.options.max_http_buffer_size, inflate)
        self._pending = [hijacked.buffered] if hijacked.buffered else []
        # inline handlers (threading mode): the OS thread that reads now, since
        # when it runs a handler (0: it does not), set once the reading moved
        self._handover = handover
        self._reader_id: int | None = None
        self._busy_since = 0.0
        self._ended: Event | None = None
        # upgrade probe: the reader parks on a peek (the client's bytes stay in the
        # socket until it takes them), and ``_unread`` is True from the moment it
        # takes bytes until their frames are handled: see input_pending()
        self._probing = False
        self._unread = False
        # green modes: the driver's reader parks in the hub while nothing is there
        # (not under TLS: decrypted bytes can wait in the TLS object, not the socket)
        self._reader = host.driver.socket_reader(self.sock) if self._fast else None
        # under gunicorn (Hijacked.detached): the reader may park once the socket is drained
        self._parkable = hijacked.detached and self._reader is not None
        self._parked = False
        # one iterator for the whole connection: frames parsed from the same
        # recv() as the upgrade's "5" must reach read_loop()
        self._stream = self._events()

    def attach(self, session: EngineSession) -> bool:
        """Make this connection the session's transport and flush what is queued.

        :returns: False when the session closed meanwhile.
        """
        self._probing = False
        with session.lock:
            if session.closed:
                return False
            session.apply(Transition.FINISH_UPGRADE)  # a no-op for WebSocket-only sessions
            session.transport = "websocket"
            self.session = session
            session.connection = self
        self.kick()
        return True

    def run_inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Run ``fn(*args)`` here when this thread is the connection's reader.

        Saves the handoff to a pooled thread (threading mode). If ``fn`` blocks,
        :meth:`hand_over` moves the reading to a new thread, so the client's
        other packets (acks a ``call()`` waits for, pongs) are still read.

        :returns: False when the caller is not the reader (run it elsewhere).
        """
        handover = self._handover
        me = threading.get_ident()
        if handover is None or self._reader_id != me:
            return False
        session = self.session
        assert session is not None
        with session.lock:
            self._busy_since = time.monotonic()
            handover.busy(self)
        handover.watch()
        previous = handover.set_current(self)
        try:
            fn(*args)
        finally:
            handover.set_current(previous)
            with session.lock:
                if self._reader_id == me:
                    self._busy_since = 0.0
                    handover.idle(self)
        return True

    def _events(self) -> Iterator[ws.Event | _Park]:
        """Yield parsed frames until the peer closes or the socket fails; and
        :data:`_PARK` when the socket is drained and the reader may park."""
        reader = self._reader
        recv = self.sock.recv if reader is None else reader.recv
        # after a short read the socket is most likely drained: park until it is
        # readable, rather than a recv() the green library sees fail with EAGAIN
        wait = None if reader is None else reader.wait
        drained = False
        try:
            while True:
                if self._pending:
                    self._unread = True
                    data = self._pending.pop()
                else:
                    try:
                        if self._probing:
                            # asked for more: every frame read so far is handled. Park until
                            # the client sends, leaving its bytes in the socket meanwhile, and
                            # mark them unread before taking them (see input_pending)
                            self._unread = False
                            recv(1, socket.MSG_PEEK)
                            self._unread = True
                        elif drained and self._parkable and reader and reader.park_now():
                            yield _PARK  # resumed here once the socket is readable
                        elif drained and wait is not None:
                            wait()
                        data = recv(_RECV_SIZE)
                    except BlockingIOError:
                        # OS threads: nothing came for a while (the reader's receive
                        # timeout): park now, or read on when parking is off by now
                        if self._park_on_timeout(reader):
                            yield _PARK
                        continue
                    except (OSError, EOFError, ValueError):
                        # closed meanwhile (eventlet: EOFError, or ValueError for fd -1)
                        return
                    drained = len(data) < _RECV_SIZE
                if not data:
                    return
                try:
                    events = self.parser.feed(data)
                except ws.FrameError as exc:
                    # messages completed before the bad frame in this read still count
                    yield from exc.events
                    raise
                yield from events
        finally:
            if reader is not None:
                reader.close()

    def _park_on_timeout(self, reader: SocketReader | None) -> bool:
        """The reader's receive timeout ended a ``recv()`` (OS threads): whether to
        park now. When parking is off for good (after a handover), the timeout goes
        too, so the idle reader stops waking up."""
        if self._parkable:
            return not self._probing
        if reader is not None:
            reader.keep_reading()
        return False

    def close_socket(self) -> None:
        """Shut down and close the socket once; the reader lets go of its fd first.

        Closing cancels a parked reader's readiness callback, so a parked reader is
        woken here (from any task or OS thread: it resumes in the loop)."""
        if self._reader is not None:
            self._reader.close()
        super().close_socket()
        if self._parked:
            driver = self.host.driver
            driver.call_soon_threadsafe(driver.submit, self._wake)

    def input_pending(self) -> bool:
        """During the probe: has the client sent bytes not acted on yet (a ``5`` on
        its way)? True as well when this cannot be told (TLS: no peek).

        Bytes are in the socket until the reader takes them, and it marks them
        unread before it takes them; so looking at the socket first, then at the
        mark, misses nothing that was in the socket when this was called.
        """
        if not self._probing:
            return True
        try:
            self._raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return True  # bytes (or the end of the stream, which the probe will act on)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return True
        return self._unread or bool(self._pending) or self.parser.partial

    def probe(self, session: EngineSession) -> bool:
        """Run the upgrade handshake; True once the client sent ``5`` and this
        connection carries the session."""
        probe = UpgradeProbe()
        self._probing = self._fast  # no peeking at a TLS socket
        try:
            for event in self._stream:
                if isinstance(event, ws.Ping):
                    self.send_direct_bytes(ws.encode_pong(event.data))
                    continue
                if not isinstance(event, ws.TextMessage):
                    return False
                step = probe.receive(event.data)
                if step is ProbeStep.ANSWER:
                    self.send_direct(PONG_PROBE)
                    self._pause_polling(session)
                elif step is ProbeStep.COMPLETE:
                    if session.upgrade_timer is not None:
                        session.upgrade_timer.cancel()
                    return self.attach(session)
                else:
                    return False
        except RemoteProtocolError as exc:
            self.host.logger.info("session %s: bad frame during upgrade: %s", session.sid, exc)
        finally:
            self._probing = False
            with session.lock:
                if session.probe is self:
                    session.probe = None
        return False

    def _pause_polling(self, session: EngineSession) -> None:
        """After ``3probe`` the client pauses polling: it sends ``5`` only once its
        GET in flight has returned. End a waiting GET now (an empty answer is a
        noop) and let one still on its way know it need not wait (see
        :meth:`input_pending`)."""
        with session.lock:
            session.probe = self
            poll = session.connection
        if poll is not None:
            poll.kick()

    def read_loop(self, session: EngineSession) -> bool:
        """Read frames and hand packets to the engine until the connection ends.

        In threading mode a handler may run inline on this thread and the reading
        move to a new thread meanwhile (:meth:`hand_over`); this thread then waits
        until the connection has ended, so the WSGI server gets it back last.

        :returns: True once the connection is over; False when the reader parked
            (the request may end now: see :meth:`parked`).
        """
        outcome = self._read(session)
        if outcome == _HANDED_OVER:
            ended = self._ended
            if ended is not None:
                ended.wait()
        return outcome != _PARKED

    def parked(self, environ: Environ) -> Iterable[bytes]:
        """End the request of a parked connection (the WebSocket goes on).

        The session keeps ``environ``: what the server put there for the request
        alone (its socket, its body reader, its early hints) goes, so that the
        server's request objects are freed.
        """
        for key in ("gunicorn.socket", "wsgi.early_hints"):
            environ.pop(key, None)
        environ["wsgi.input"] = _NO_BODY
        return self.hijacked.finish()

    def _park(self) -> bool:
        """Arm the driver's readiness callback; False when it cannot (read on here)."""
        self._parked = True
        reader = self._reader
        if reader is not None and reader.when_readable(self._wake):
            return True
        self._parked = False
        self._parkable = False
        return False

    def _wake(self) -> None:
        """In a pooled task: the socket is readable (or closed): read on, and
        finish the connection when it ends (after a handover too, as the request's
        own task would)."""
        session = self.session
        if session is None:
            return
        with session.lock:  # readiness and a close may race (OS threads)
            if not self._parked:
                return
            self._parked = False
        if self.read_loop(session):
            self.finish(session)

    def _read(self, session: EngineSession) -> int:
        """The reading itself: :data:`_ENDED`, :data:`_HANDED_OVER` (to another
        thread before the end) or :data:`_PARKED`."""
        me = threading.get_ident()
        self._reader_id = me
        reason = DisconnectReason.TRANSPORT_CLOSE
        host = self.host
        on_message = host.on_message  # the hot path: Engine.IO MESSAGE frames
        sid = session.sid
        try:
            for event in self._stream:
                if session.closed:
                    break
                if isinstance(event, ws.TextMessage):
                    data = event.data
                    if data[:1] == MESSAGE_PREFIX:
                        on_message(sid, data[1:])
                    else:
                        host.handle_text(session, data)
                elif isinstance(event, ws.BinaryMessage):
                    on_message(sid, event.data)
                else:
                    outcome = self._other_event(session, event)
                    if outcome == _PARKED:
                        return _PARKED
                    if outcome == _ENDED:
                        break
                if self._reader_id != me:
                    return _HANDED_OVER  # a handler ran long here: another thread reads now
        except RemoteProtocolError as exc:
            host.logger.info("session %s: protocol error: %s", sid, exc)
            why = str(exc).encode("utf-8")[:_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
            self._close_frame = b""  # this Close frame is the only one: no 1000 after it
            self.send_control(ws.encode_close(exc.close_code, why))
            reason = DisconnectReason.PARSE_ERROR
        except Exception:
            host.logger.exception("session %s: reader failed", sid)
            reason = DisconnectReason.TRANSPORT_ERROR
        with session.lock:
            self._reader_id = None  # nothing runs inline from here on
        host.close_session(session, reason, send_close_packet=False)
        if self._ended is not None:
            self._ended.set()
        return _ENDED

    def _other_event(self, session: EngineSession, event: ws.Event | _Park) -> int | None:
        """A Ping, a Close, or the chance to park: :data:`_PARKED` (parked),
        :data:`_ENDED` (stop reading), or None (read on)."""
        if event is _PARK:
            return _PARKED if self._park() else None
        if isinstance(event, ws.Ping):
            self.send_control(ws.encode_pong(event.data))
        elif isinstance(event, ws.CloseReceived):
            self._close_frame = ws.encode_close(event.code)  # echo the client's code
            return _ENDED
        return None

    def hand_over(self, force: bool) -> None:
        """Start a new reader thread if this connection's reader runs a handler
        (for :data:`HANDOVER_AFTER` seconds already, unless ``force``)."""
        session = self.session
        handover = self._handover
        if session is None or handover is None:
            return
        with session.lock:
            since = self._busy_since
            if not since or self._reader_id is None:
                handover.idle(self)
                return
            if not force and time.monotonic() - since < HANDOVER_AFTER:
                return
            reader = self._reader_id
            self._busy_since = 0.0
            handover.idle(self)
            self._reader_id = None  # the busy thread stops reading when its handler returns
            # the busy thread waits for the new reader to end the connection: no parking
            self._parkable = False
            if self._ended is None:
                self._ended = self.host.driver.thread_event()
        self.host.logger.debug("session %s: a handler holds its reader; reading moves", session.sid)
        try:
            self.host.driver.spawn(self._read, session)
        except Exception:  # no thread to be had: the busy thread goes on reading afterwards
            self.host.logger.exception("session %s: cannot start a reader thread", session.sid)
            with session.lock:
                if self._reader_id is None:
                    self._reader_id = reader
