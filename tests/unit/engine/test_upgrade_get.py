"""A polling GET during a WebSocket upgrade (engine + both transports, a socketpair
for the probe WebSocket).

Once the server has answered ``2probe``, the client pauses polling and sends ``5``
only after its GET in flight has returned. That GET often lands just after the
``2probe`` (the re-poll that follows a poll's answer); holding it held the whole
upgrade, and every packet the client wrote meanwhile: a JS client calling
``socket.disconnect()`` then, and exiting 50 ms later, never sent its ``41`` (the
flaky ``test_client_disconnect[upgrade-threading]``). Such a GET is answered at
once; only one that may race a ``5`` the client already sent is held, and refused
once that ``5`` upgraded the session.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from sio_wsgi.config import DEFAULTS
from sio_wsgi.engine.ports import DisconnectReason
from sio_wsgi.engine.server import EngineServer
from sio_wsgi.engine.session import EngineSession, State
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from sio_wsgi.transports import polling
from sio_wsgi.transports.hijack import Hijacked
from sio_wsgi.transports.websocket import WebSocketConnection


class _Handler:
    def on_connect(self, sid: str, environ: dict[str, Any]) -> bool:
        return True

    def on_message(self, sid: str, data: str | bytes) -> None:
        pass

    def on_disconnect(self, sid: str, reason: DisconnectReason) -> None:
        pass


def _client_frame(text: str) -> bytes:
    payload, mask = text.encode(), b"\x0f\x1e\x2d\x3c"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def _server_text(sock: socket.socket) -> str:
    sock.settimeout(3)
    head = sock.recv(2)
    return sock.recv(head[1] & 0x7F).decode()


class _SlowToAttach(WebSocketConnection):
    """A reader slow to act on the "5" (descheduled between reading and attaching)."""

    __slots__ = ()
    acting = threading.Event()

    def attach(self, session: EngineSession) -> bool:
        self.acting.set()
        time.sleep(0.05)
        return super().attach(session)


class Upgrade:
    """A polling session whose upgrade is under way, as ``handle_upgrade`` runs it."""

    def __init__(self, conn_class: type[WebSocketConnection] = WebSocketConnection) -> None:
        self.engine = EngineServer(
            DEFAULTS.replace(ping_interval=100.0, ping_timeout=100.0),
            _Handler(),
            ThreadingDriver(),
            logging.getLogger("test"),
        )
        self.http = Client(self.engine.handle_request)
        body = self.http.get("/?EIO=4&transport=polling").get_data(as_text=True)
        self.sid: str = json.loads(body[1:])["sid"]
        self.session: EngineSession = self.engine.sessions[self.sid]
        self.server_sock, self.client_sock = socket.socketpair()
        self.conn = conn_class(self.engine, Hijacked(sock=self.server_sock))
        self.session.state = State.UPGRADING
        self.result: list[bool] = []
        self.reader = threading.Thread(target=self._probe, daemon=True)

    def _probe(self) -> None:
        self.result.append(self.conn.probe(self.session))

    def send(self, text: str) -> None:
        self.client_sock.sendall(_client_frame(text))

    def get(self) -> tuple[int, str, float]:
        started = time.monotonic()
        r = self.http.get(f"/?EIO=4&transport=polling&sid={self.sid}")
        return r.status_code, r.get_data(as_text=True), time.monotonic() - started

    def close(self) -> None:
        self.client_sock.close()
        self.conn.close_socket()
        if self.reader.is_alive():
            self.reader.join(3)
        self.engine.shutdown()


@pytest.fixture
def upgrade(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upgrade]:
    # a GET held "just in case" would now be held 5 s: unmistakable
    monkeypatch.setattr(polling, "_UPGRADE_RACE_WAIT", 5.0)
    up = Upgrade(getattr(request, "param", WebSocketConnection))
    yield up
    up.close()


def test_get_after_3probe_is_answered_at_once(upgrade: Upgrade) -> None:
    """The client's GET in flight must not hold the upgrade (nor the client's writes)."""
    upgrade.reader.start()
    upgrade.send("2probe")
    assert _server_text(upgrade.client_sock) == "3probe"
    time.sleep(0.05)  # the reader is done with the "2probe": parked for the next frame
    status, body, took = upgrade.get()  # the re-poll that lands after the "2probe"
    assert (status, body) == (200, "6")
    assert took < 1.0, f"the GET was held {took:.2f} s: the client could not send its '5'"
    upgrade.send("5")
    upgrade.reader.join(3)
    assert upgrade.result == [True]
    assert upgrade.session.transport == "websocket"


def test_get_waiting_before_2probe_ends_on_the_probe(upgrade: Upgrade) -> None:
    """A long-poll already waiting when "2probe" comes is ended with a noop."""
    upgrade.session.state = State.OPEN  # the GET came before the WebSocket
    answers: list[tuple[int, str, float]] = []
    get = threading.Thread(target=lambda: answers.append(upgrade.get()), daemon=True)
    get.start()
    deadline = time.monotonic() + 3
    poll = upgrade.session.connection
    assert isinstance(poll, polling.PollingConnection)
    while not poll.get_active and time.monotonic() < deadline:
        time.sleep(0.005)
    upgrade.session.state = State.UPGRADING
    upgrade.reader.start()
    upgrade.send("2probe")
    assert _server_text(upgrade.client_sock) == "3probe"
    get.join(3)
    assert [a[:2] for a in answers] == [(200, "6")]
    upgrade.send("5")
    upgrade.reader.join(3)
    assert upgrade.result == [True]
    assert upgrade.session.outbox == []  # no noop left to go out on the WebSocket


@pytest.mark.parametrize("upgrade", [_SlowToAttach], indirect=True)
def test_get_racing_a_5_already_sent_is_refused(upgrade: Upgrade) -> None:
    """A GET sent after the "5" (still being acted on) is refused, not answered."""
    acting = _SlowToAttach.acting
    acting.clear()
    upgrade.reader.start()
    upgrade.send("2probe")
    assert _server_text(upgrade.client_sock) == "3probe"
    upgrade.send("5")
    assert acting.wait(3)
    status, _, _ = upgrade.get()
    assert status == 400
    upgrade.reader.join(3)
    assert upgrade.result == [True]


def test_input_pending_sees_bytes_in_the_socket_or_being_handled(upgrade: Upgrade) -> None:
    """What the GET asks the probing connection (no reader running here)."""
    conn = upgrade.conn
    conn._probing = True
    assert conn.input_pending() is False
    upgrade.send("5")  # in the socket, not taken yet
    time.sleep(0.05)
    assert conn.input_pending() is True
    upgrade.server_sock.recv(65536)  # taken by the reader ...
    conn._unread = True  # ... which marked it before it took it
    assert conn.input_pending() is True
    conn._unread = False
    conn.parser.feed(_client_frame("5")[:3])  # half a frame held by the parser
    assert conn.input_pending() is True
    conn._probing = False  # a connection that cannot tell (TLS) says "maybe"
    conn.parser = type(conn.parser)()
    assert conn.input_pending() is True
