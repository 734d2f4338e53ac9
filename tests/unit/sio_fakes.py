"""Test doubles for the Socket.IO layer: a threading driver, a manual scheduler,
a recording engine, and a tiny Socket.IO client speaking through the engine.

Nothing here touches the network: the fake engine records what the server sends
and the tests call the server's engine handler to play the client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sio_wsgi.config import ServerOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.protocol import sio as codec
from sio_wsgi.protocol.serializers import JSONSerializer, Serializer
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from sio_wsgi.server import Server
from tests.support import wait_until

__all__ = [
    "FakeDriver",
    "FakeScheduler",
    "FakeEngine",
    "FakeServer",
    "SioClient",
    "make_server",
    "wait_until",
]

WAIT = 3.0


class _Task:
    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


class FakeDriver(ThreadingDriver):
    """The threading driver, remembering every task so tests can join them."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[_Task] = []

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> _Task:  # type: ignore[override]
        thread = threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True)
        task = _Task(thread)
        self.tasks.append(task)
        thread.start()
        return task

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.spawn(fn, *args)

    def join_all(self, timeout: float = WAIT) -> None:
        """Wait for every spawned task to end."""
        deadline = time.monotonic() + timeout
        for task in list(self.tasks):
            task.join(max(0.0, deadline - time.monotonic()))


class _Timer:
    def __init__(self, delay: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.delay, self.fn, self.args = delay, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """``call_later`` that only runs when the test says so."""

    def __init__(self) -> None:
        self.timers: list[_Timer] = []

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> _Timer:
        timer = _Timer(delay, fn, args)
        self.timers.append(timer)
        return timer

    def fire_all(self) -> None:
        """Run every pending, uncancelled timer."""
        timers, self.timers = self.timers, []
        for timer in timers:
            if not timer.cancelled:
                timer.fn(*timer.args)


class FakeEngine:
    """Records what the Socket.IO layer sends; tests drive the handler."""

    def __init__(self, handler: Any, driver: Any = None) -> None:
        self.handler = handler
        self.driver = driver
        self.scheduler = FakeScheduler()
        self.cond = threading.Condition()
        self.sent: dict[str, list[str | bytes]] = {}
        self.volatile_flags: list[bool] = []
        self.open: set[str] = set()
        self.closed: dict[str, str] = {}
        self.writable = True
        self.transports: dict[str, str] = {}
        self.shut_down = False
        self._count = 0

    # ----------------------------------------------------- the engine API

    def send(self, sid: str, out: Outgoing, volatile: bool = False) -> bool:
        with self.cond:
            self.volatile_flags.append(volatile)
            if sid not in self.open or (volatile and not self.writable):
                return False
            # the Socket.IO messages, without the Engine.IO MESSAGE type digit
            messages = [m if isinstance(m, bytes) else m[1:] for m in out.items]
            self.sent.setdefault(sid, []).extend(messages)
            self.cond.notify_all()
        return True

    def close(self, sid: str, reason: str = "server disconnect") -> None:
        with self.cond:
            if sid not in self.open:
                return
            self.open.discard(sid)
            self.closed[sid] = reason
            self.cond.notify_all()
        self.handler.on_disconnect(sid, reason)

    def environ(self, sid: str) -> dict[str, Any] | None:
        return None

    def dispatch(self, sid: str, fn: Any, *args: Any) -> None:
        self.driver.submit(fn, *args)  # no WebSocket reader here: never inline

    def release_reader(self) -> None:
        pass

    def enable_relay(self, bus: Any) -> None:
        pass

    def is_connected(self, sid: str) -> bool:
        return sid in self.open

    def transport(self, sid: str) -> str | None:
        return self.transports.get(sid)

    def shutdown(self) -> None:
        self.shut_down = True
        for sid in list(self.open):
            self.close(sid, "server shutting down")

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fake"]

    # ----------------------------------------------------- playing the client

    def open_session(self, environ: dict[str, Any] | None = None) -> str:
        """A client completes the Engine.IO handshake."""
        self._count += 1
        sid = f"eio{self._count}"
        self.open.add(sid)
        self.transports[sid] = "polling"
        assert self.handler.on_connect(sid, environ or {"REMOTE_ADDR": "127.0.0.1"})
        return sid

    def receive(self, sid: str, *messages: str | bytes) -> None:
        """The client sends Engine.IO messages."""
        for message in messages:
            self.handler.on_message(sid, message)

    def drop(self, sid: str, reason: str = "transport close") -> None:
        """The transport goes away."""
        self.close(sid, reason)

    def wait_sent(self, sid: str, count: int, timeout: float = WAIT) -> list[str | bytes]:
        """Wait until ``count`` messages were sent to ``sid``; return them all."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.sent.get(sid, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} messages to {sid}, got {self.sent.get(sid)}"
                    )
                self.cond.wait(left)
            return list(self.sent[sid])


class FakeServer(Server):
    """A :class:`Server` given a :class:`FakeDriver` and a :class:`FakeEngine`."""

    eio: FakeEngine
    driver: FakeDriver

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("driver", FakeDriver())
        kwargs.setdefault("engine_factory", _fake_engine)
        super().__init__(*args, **kwargs)


def _fake_engine(
    options: ServerOptions, handler: Any, driver: Any, engine_logger: logging.Logger
) -> Any:
    return FakeEngine(handler, driver)


def make_server(**kwargs: Any) -> tuple[FakeServer, FakeEngine]:
    """A fake-engine server and its engine.

    :param kwargs: :class:`Server` arguments.
    """
    server = FakeServer(**kwargs)
    return server, server.eio


class SioClient:
    """A minimal Socket.IO client on top of :class:`FakeEngine`.

    :param engine: the fake engine.
    :param serializer: the serializer the server uses.
    :param environ: handshake environ.
    """

    def __init__(
        self,
        engine: FakeEngine,
        serializer: Serializer | None = None,
        environ: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.serializer = serializer or JSONSerializer()
        self.eio_sid = engine.open_session(environ)
        self.read = 0

    def send_packet(self, packet: codec.Packet) -> None:
        """Encode and send a packet as the client would."""
        self.engine.receive(self.eio_sid, *codec.encode(packet, self.serializer))

    def raw(self, *messages: str | bytes) -> None:
        """Send raw Engine.IO messages."""
        self.engine.receive(self.eio_sid, *messages)

    def sent(self) -> list[str | bytes]:
        """Everything the server sent to this client so far."""
        with self.engine.cond:
            return list(self.engine.sent.get(self.eio_sid, []))

    def next_raw(self, timeout: float = WAIT) -> str | bytes:
        """The next message the server sent (waits for it)."""
        messages = self.engine.wait_sent(self.eio_sid, self.read + 1, timeout)
        self.read += 1
        return messages[self.read - 1]

    def next_packet(self, timeout: float = WAIT) -> codec.Packet:
        """The next decoded packet, attachments included."""
        packet = codec.decode(self.next_raw(timeout), self.serializer)
        if packet.attachments:
            assembler = codec.AttachmentAssembler(packet)
            done = None
            while done is None:
                done = assembler.add(self.next_raw(timeout))
            return done
        return packet

    def connect(self, namespace: str = "/", auth: Any = None) -> str:
        """Connect to a namespace; return the Socket.IO sid."""
        self.send_packet(codec.Packet(codec.PacketType.CONNECT, namespace, auth))
        reply = self.next_packet()
        assert reply.type == codec.PacketType.CONNECT, reply
        assert reply.namespace == namespace
        sid: str = reply.data["sid"]
        return sid

    def emit(self, event: str, *args: Any, namespace: str = "/", ack: int | None = None) -> None:
        """Send an event (optionally asking for ack ``ack``)."""
        packet = codec.Packet(codec.PacketType.EVENT, namespace, [event, *args], ack)
        self.send_packet(packet)

    def ack(self, ack_id: int, *args: Any, namespace: str = "/") -> None:
        """Acknowledge a server event."""
        self.send_packet(codec.Packet(codec.PacketType.ACK, namespace, list(args), ack_id))

    def closed_reason(self) -> str | None:
        """Why the engine closed this client, if it did."""
        return self.engine.closed.get(self.eio_sid)
