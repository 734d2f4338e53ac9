"""A test client for applications: talk to your Socket.IO server in-process, without a network.

It speaks the real protocol (Engine.IO long-polling, Socket.IO packets) by
calling the WSGI application directly, so your handlers, rooms, sessions and
acknowledgements run exactly as in production; only the socket is missing::

    from sio_wsgi.testing import SocketIOTestClient
    from myapp import app, sio                     # app = sio_wsgi.WSGIApp(sio, flask_app)

    def test_chat():
        alice = SocketIOTestClient(app, auth={"name": "alice"})
        bob = SocketIOTestClient(app, auth={"name": "bob"})
        assert alice.is_connected()
        answer = alice.emit("chat", "hi", callback=True)     # the handler's return value
        assert bob.wait_for("chat") == ["hi"]
        assert alice.get_received() == []                   # what was sent to alice
        alice.disconnect()

Timing rules, so tests are not flaky:

- :meth:`~SocketIOTestClient.emit` returns once the server *handler has
  returned* (the client asks for an acknowledgement behind the scenes when the
  server has a handler for the event). Everything that handler emitted to this
  client is then already in :meth:`~SocketIOTestClient.get_received`.
- Messages caused by *another* client arrive a moment later: use
  :meth:`~SocketIOTestClient.wait_for` (deterministic), or
  ``get_received()``, which waits until nothing new arrived for ``settle`` seconds.

The server must run in the ``threading`` async mode (the default when nothing
is monkey-patched), or in a process patched by eventlet / gevent: the client
long-polls from a background thread. Pass cookies (``cookies={...}``) or
headers to reach a logged-in user's session, e.g. the cookie of Flask's or
Django's test client after a login.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from .exceptions import DisconnectedError, TimeoutError
from .polling_client import PollingClient
from .protocol import eio
from .protocol import sio as sio_codec
from .protocol.serializers import JSONSerializer, Payload, Serializer
from .wsgi import WSGIApplication

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["SocketIOTestClient", "Received"]

logger = logging.getLogger(__name__)

Received = dict[str, Any]
"""One received event: ``{"name": event, "args": [...], "namespace": "/"}``."""

DEFAULT_TIMEOUT = 5.0
SETTLE = 0.05


class _Pending:
    """An acknowledgement the client is waiting for."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.done = threading.Event()
        self.args: list[Payload] = []


def _find_server(app: object) -> Server | None:
    """The :class:`sio_wsgi.Server` behind ``app`` (a Server, a WSGIApp, or a Flask app).

    Recognised by its attributes (``handlers`` and ``handle_request``), not its class.
    """
    for candidate in (app, getattr(app, "wsgi_app", None)):
        if candidate is None:
            continue
        if hasattr(candidate, "handlers") and hasattr(candidate, "handle_request"):
            return cast("Server", candidate)
        server = getattr(candidate, "server", None)
        if server is not None and hasattr(server, "handle_request"):
            return cast("Server", server)
    return None


def _ack_value(args: list[Payload]) -> Payload:
    """``None`` for no argument, the value for one, a tuple for several."""
    if not args:
        return None
    return args[0] if len(args) == 1 else tuple(args)


class SocketIOTestClient(PollingClient):
    """An in-process Socket.IO client for tests.

    :param app: a :class:`sio_wsgi.WSGIApp`, a :class:`sio_wsgi.Server`, or a
        WSGI app (e.g. a Flask app whose ``wsgi_app`` is a ``WSGIApp``).
    :param server: the :class:`sio_wsgi.Server`, when it cannot be found from ``app``.
    :param namespace: the namespace to connect to (``'/'``).
    :param auth: the auth object sent with the namespace connect.
    :param query_string: extra query string for the handshake (``"a=1&b=2"``).
    :param headers: extra request headers (``{"User-Agent": "pytest"}``).
    :param cookies: cookies sent with every request (``{"sessionid": "..."}``).
    :param environ_overrides: raw WSGI environ keys for every request.
    :param socketio_path: the endpoint path, found from ``app`` by default.
    :param connect: connect now (else call :meth:`connect`).
    :param timeout: default seconds to wait for the server.
    """

    def __init__(
        self,
        app: WSGIApplication | Server,
        server: Server | None = None,
        namespace: str | None = None,
        auth: Payload = None,
        query_string: str | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        environ_overrides: Mapping[str, object] | None = None,
        socketio_path: str | None = None,
        connect: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server if server is not None else _find_server(app)
        super().__init__(
            app,
            query_string=query_string,
            headers=headers,
            cookies=cookies,
            environ_overrides=environ_overrides,
            socketio_path=socketio_path,
            timeout=timeout,
        )
        self.serializer: Serializer = getattr(self.server, "serializer", None) or JSONSerializer()
        self._cond = threading.Condition()
        self._received: list[Received] = []
        self._namespaces: dict[str, str] = {}
        self._connect_errors: dict[str, Payload] = {}
        self._answered: set[str] = set()
        self._pending: dict[int, _Pending] = {}
        self._ack_handlers: dict[tuple[str, str], Callable[..., Payload]] = {}
        self._assembler: sio_codec.AttachmentAssembler | None = None
        self._last_arrival = 0.0
        if connect:
            self.connect(namespace, auth=auth)

    # -------------------------------------------------------------- over engine.io

    def _send(self, packet: sio_codec.Packet) -> None:
        self._post(sio_codec.encode(packet, self.serializer))

    def _on_message(self, data: str | bytes) -> None:
        if self._assembler is not None:
            packet = self._assembler.add(data)
            if packet is None:
                return
            self._assembler = None
        else:
            packet = sio_codec.decode(data, self.serializer)
            if packet.attachments:
                self._assembler = sio_codec.AttachmentAssembler(packet)
                return
        handler = self._SIO_HANDLERS.get(packet.type)
        if handler is not None:
            handler(self, packet)

    #: the engine.io handlers, with ``message`` packets decoded here
    _EIO_HANDLERS = {**PollingClient._EIO_HANDLERS, eio.PacketType.MESSAGE: _on_message}

    def _on_closed(self) -> None:
        """The session ended: every namespace is gone, every waiter wakes up."""
        with self._cond:
            self._closed = True
            self._answered.update(self._namespaces)
            self._namespaces.clear()
            for pending in self._pending.values():
                pending.done.set()
            self._cond.notify_all()

    # -------------------------------------------------------------- socket.io packets

    def _sio_connect(self, packet: sio_codec.Packet) -> None:
        with self._cond:
            data = packet.data if isinstance(packet.data, dict) else {}
            self._namespaces[packet.namespace] = str(data.get("sid", ""))
            self._connect_errors.pop(packet.namespace, None)
            self._answered.add(packet.namespace)
            self._cond.notify_all()

    def _sio_connect_error(self, packet: sio_codec.Packet) -> None:
        with self._cond:
            self._connect_errors[packet.namespace] = packet.data
            self._answered.add(packet.namespace)
            self._cond.notify_all()

    def _sio_disconnect(self, packet: sio_codec.Packet) -> None:
        with self._cond:
            self._namespaces.pop(packet.namespace, None)
            for pending in list(self._pending.values()):
                if pending.namespace == packet.namespace:
                    pending.done.set()
            self._cond.notify_all()

    def _sio_event(self, packet: sio_codec.Packet) -> None:
        event, *args = packet.data
        with self._cond:
            self._received.append({"name": event, "args": args, "namespace": packet.namespace})
            self._last_arrival = time.monotonic()
            self._cond.notify_all()
        if packet.id is not None:
            handler = self._ack_handlers.get((packet.namespace, event))
            result = handler(*args) if handler is not None else None
            reply = (
                [] if result is None else list(result) if isinstance(result, tuple) else [result]
            )
            ack = sio_codec.Packet(sio_codec.PacketType.ACK, packet.namespace, reply, packet.id)
            self._send(ack)

    def _sio_ack(self, packet: sio_codec.Packet) -> None:
        pending = self._pending.pop(packet.id, None) if packet.id is not None else None
        if pending is not None:
            pending.args = list(packet.data or [])
            pending.done.set()

    _SIO_HANDLERS: dict[
        sio_codec.PacketType, Callable[[SocketIOTestClient, sio_codec.Packet], None]
    ] = {
        sio_codec.PacketType.CONNECT: _sio_connect,
        sio_codec.PacketType.CONNECT_ERROR: _sio_connect_error,
        sio_codec.PacketType.DISCONNECT: _sio_disconnect,
        sio_codec.PacketType.EVENT: _sio_event,
        sio_codec.PacketType.BINARY_EVENT: _sio_event,
        sio_codec.PacketType.ACK: _sio_ack,
        sio_codec.PacketType.BINARY_ACK: _sio_ack,
    }

    # -------------------------------------------------------------- public API

    def connect(
        self, namespace: str | None = None, auth: Payload = None, timeout: float | None = None
    ) -> bool:
        """Connect to a namespace (doing the Engine.IO handshake first if needed).

        :param namespace: the namespace, ``'/'`` by default.
        :param auth: the auth object for the server's ``connect`` handler.
        :param timeout: seconds to wait for the answer.
        :returns: True when connected; False when refused (see :meth:`connect_error`).
        :raises ConnectionRefusedError: when the Engine.IO handshake is refused.
        :raises TimeoutError: when the server does not answer.
        """
        ns = namespace or "/"
        if self.eio_sid is None or self._closed:
            self.eio_sid = None
            self._handshake()
        with self._cond:
            self._answered.discard(ns)
        self._send(sio_codec.Packet(sio_codec.PacketType.CONNECT, ns, auth))
        with self._cond:
            if not self._cond.wait_for(lambda: ns in self._answered, timeout or self.timeout):
                raise TimeoutError(f"no answer to the connect to {ns}")
            return ns in self._namespaces

    def connect_error(self, namespace: str | None = None) -> Payload:
        """The ``connect_error`` payload of a refused connect (``{"message", "data"?}``), or None.

        :param namespace: the namespace, ``'/'`` by default.
        """
        with self._cond:
            return self._connect_errors.get(namespace or "/")

    def is_connected(self, namespace: str | None = None) -> bool:
        """Whether the client is connected to a namespace.

        :param namespace: the namespace, ``'/'`` by default.
        """
        with self._cond:
            return (namespace or "/") in self._namespaces

    def sid(self, namespace: str | None = None) -> str | None:
        """The Socket.IO sid the server gave this client in a namespace.

        :param namespace: the namespace, ``'/'`` by default.
        """
        with self._cond:
            return self._namespaces.get(namespace or "/")

    def on(self, event: str, handler: Callable[..., Payload], namespace: str | None = None) -> None:
        """Answer the server's ``emit(..., callback=...)`` / ``call()`` for ``event``.

        Without a handler such requests get an empty acknowledgement.

        :param handler: called with the event's arguments; its return value is the ack
            (a tuple for several arguments).
        :param namespace: the namespace, ``'/'`` by default.
        """
        self._ack_handlers[(namespace or "/", event)] = handler

    def _server_handles(self, ns: str, event: str) -> bool:
        handlers = getattr(self.server, "handlers", None)
        if handlers is None:
            return False
        return handlers.resolve(ns, event) is not None

    def emit(
        self,
        event: str,
        *args: Payload,
        namespace: str | None = None,
        callback: bool = False,
        timeout: float | None = None,
    ) -> Payload:
        """Emit an event to the server and wait for its handler to finish.

        :param args: its arguments (``bytes`` are sent as binary attachments).
        :param namespace: the namespace, ``'/'`` by default.
        :param callback: return the handler's acknowledgement.
        :param timeout: seconds to wait for it.
        :returns: the acknowledgement when ``callback`` is true (``None`` for
            none, the value for one argument, a tuple for several), else None.
        :raises DisconnectedError: when not connected to the namespace.
        :raises TimeoutError: when the acknowledgement does not come.
        """
        ns = namespace or "/"
        if not self.is_connected(ns):
            raise DisconnectedError(f"not connected to {ns}")
        wait = callback or self._server_handles(ns, event)
        ack_id = next(self._ids) if wait else None
        pending = _Pending(ns)
        if ack_id is not None:
            self._pending[ack_id] = pending
        self._send(sio_codec.Packet(sio_codec.PacketType.EVENT, ns, [event, *args], ack_id))
        if ack_id is None:
            return None
        if not pending.done.wait(timeout or self.timeout):
            self._pending.pop(ack_id, None)
            raise TimeoutError(f"no acknowledgement for {event!r}")
        if self._pending.pop(ack_id, None) is not None:  # woken by a disconnect, not by the ack
            if callback:
                raise DisconnectedError("disconnected while waiting for the acknowledgement")
            return None
        return _ack_value(pending.args) if callback else None

    def call(
        self, event: str, *args: Payload, namespace: str | None = None, timeout: float | None = None
    ) -> Payload:
        """``emit(..., callback=True)``: the handler's acknowledgement.

        :param timeout: seconds.
        :returns: the acknowledgement.
        """
        return self.emit(event, *args, namespace=namespace, callback=True, timeout=timeout)

    def send(self, data: Payload, namespace: str | None = None, callback: bool = False) -> Payload:
        """Emit a ``message`` event.

        :param callback: return the acknowledgement.
        :returns: as :meth:`emit`.
        """
        return self.emit("message", data, namespace=namespace, callback=callback)

    def get_received(self, namespace: str | None = None, settle: float = SETTLE) -> list[Received]:
        """Return (and forget) the events received in a namespace, oldest first.

        :param namespace: the namespace, ``'/'`` by default.
        :param settle: first wait until nothing new arrived for this many seconds
            (bounded by the client's timeout); 0 to return at once.
        :returns: ``[{"name": event, "args": [...], "namespace": ns}, ...]``.
        """
        ns = namespace or "/"
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while settle > 0 and not self._closed:
                quiet_until = max(self._last_arrival, time.monotonic() - settle) + settle
                now = time.monotonic()
                if now >= quiet_until or now >= deadline:
                    break
                self._cond.wait(min(quiet_until, deadline) - now)
            mine = [r for r in self._received if r["namespace"] == ns]
            self._received = [r for r in self._received if r["namespace"] != ns]
        return mine

    def wait_for(
        self, event: str, namespace: str | None = None, timeout: float | None = None
    ) -> list[Payload]:
        """Wait for ``event`` and return its arguments (it is removed from the received list).

        :param namespace: the namespace, ``'/'`` by default.
        :param timeout: seconds.
        :returns: the event's arguments.
        :raises TimeoutError: when it does not arrive in time.
        """
        ns = namespace or "/"

        def find() -> Received | None:
            for item in self._received:
                if item["name"] == event and item["namespace"] == ns:
                    return item
            return None

        with self._cond:
            if not self._cond.wait_for(
                lambda: find() is not None or self._closed, timeout or self.timeout
            ):
                raise TimeoutError(f"{event!r} did not arrive")
            item = find()
            if item is None:
                raise DisconnectedError(f"disconnected while waiting for {event!r}")
            self._received.remove(item)
            args: list[Payload] = item["args"]
            return args

    def disconnect(self, namespace: str | None = None) -> None:
        """Leave a namespace; leaving the last one closes the connection.

        :param namespace: the namespace, ``'/'`` by default.
        """
        ns = namespace or "/"
        with self._cond:
            connected = self._namespaces.pop(ns, None) is not None
            last = not self._namespaces
        if connected and not self._closed:
            self._send(sio_codec.Packet(sio_codec.PacketType.DISCONNECT, ns))
        if last:
            self.close()

    def __enter__(self) -> SocketIOTestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
