"""Parked WebSockets: idle connections without a green thread or an OS thread, on
gunicorn's gevent worker, on ``sio_wsgi.gunicorn.EventletWorker`` and on gunicorn's
gthread worker.

There an idle WebSocket *parks* (:mod:`sio_wsgi.transports.websocket`): the
request returns to gunicorn, and a pooled green thread reads when bytes arrive.
Raw WebSocket clients here check what a user would notice if that went wrong:
events and acks after idling, emits from a view and from a plain OS thread, a
client that goes away, and a ping timeout, all while parked; and that the server
then holds far fewer greenlets (or threads) than clients. (The ``parked`` group of
tests/run.sh runs the whole gevent e2e suite on gunicorn, ``SIO_E2E_GEVENT_SERVER=gunicorn``;
``SIO_E2E_EVENTLET_SERVER`` and ``SIO_E2E_THREADING_SERVER`` do the same for eventlet and
threading.)
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from tests.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CLIENTS = 60
#: per async mode: the environment that serves it on a gunicorn worker
GUNICORN = {
    "gevent": {"SIO_E2E_GEVENT_SERVER": "gunicorn"},
    "eventlet": {"SIO_E2E_EVENTLET_SERVER": "gunicorn"},
    # fewer threads than clients: the clients past 16 connect only if others park
    "threading": {"SIO_E2E_THREADING_SERVER": "gunicorn", "SIO_E2E_GUNICORN_THREADS": "16"},
}
GREEN_MODES = pytest.mark.parametrize("mode", sorted(GUNICORN))


class RawClient:
    """A raw Engine.IO v4 WebSocket client joined to ``/``."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(
            url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", timeout=5
        )
        self.raw = self.ws.sock  # websocket-client may drop it without closing it
        opened = self.ws.recv()
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        self.ws.send("40")
        self.sid = ""
        while not self.sid:
            text = self.next_text()
            if text.startswith("40{"):
                self.sid = json.loads(text[2:])["sid"]

    def next_text(self) -> str:
        """The next text frame that is not a ping (pings are answered)."""
        while True:
            text = self.ws.recv()
            assert isinstance(text, str), text
            if text == "2":
                self.ws.send("3")
                continue
            return text

    def wait_for(self, prefix: str) -> str:
        """Skip frames until one starts with ``prefix`` (events of the ticker, say)."""
        for _ in range(100):
            text = self.next_text()
            if text.startswith(prefix):
                return text
        raise AssertionError(f"no frame starting with {prefix!r}")

    def close(self) -> None:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self.ws.close(timeout=0.5)
        self.raw.close()


@pytest.fixture(params=sorted(GUNICORN))
def parked_server(live_server: Any, impl: str, request: pytest.FixtureRequest) -> Any:
    if impl != "sio_wsgi":
        pytest.skip("parking is sio_wsgi's")
    mode = request.param
    return live_server(mode, "websocket", fresh=True, env=GUNICORN[mode])


@pytest.fixture
def clients(parked_server: Any) -> Iterator[list[RawClient]]:
    made: list[RawClient] = []
    try:
        for _ in range(CLIENTS):
            made.append(RawClient(parked_server.url))
        yield made
    finally:
        for client in made:
            client.close()


def test_idle_websockets_hold_no_greenlet_and_still_answer(
    parked_server: Any, clients: list[RawClient]
) -> None:
    time.sleep(0.6)  # idle: every reader parks (OS threads after PARK_AFTER)
    health = parked_server.get_json("/health")
    kind = "threads" if parked_server.async_mode == "threading" else "greenlets"
    assert health[kind] < CLIENTS / 2, f"{health[kind]} {kind} for {CLIENTS} idle WebSockets"
    for n, client in enumerate(clients):
        client.ws.send(f'42{n}["echo","hi",{n}]')
    for n, client in enumerate(clients):
        assert json.loads(client.wait_for(f"43{n}")[2 + len(str(n)) :]) == ["hi", n]
    time.sleep(0.6)  # parked again
    parked_server.post_json("/emit", {"event": "news", "data": "from a view"})
    parked_server.post_json("/emit_from_thread", {"event": "news", "data": "from a thread"})
    for client in clients:
        assert client.wait_for('42["news"') == '42["news","from a view"]'
        assert client.wait_for('42["news"') == '42["news","from a thread"]'


def test_a_parked_client_that_leaves_is_disconnected(
    parked_server: Any, clients: list[RawClient]
) -> None:
    time.sleep(0.6)
    gone = clients[: CLIENTS // 2]
    for client in gone:
        client.raw.close()  # no Close frame: the TCP connection just ends
    for client in gone:
        entry = parked_server.wait_disconnect(client.sid, timeout=5)
        assert entry is not None and entry["reason"] == "transport close", entry
    for n, client in enumerate(clients[CLIENTS // 2 :]):
        client.ws.send(f'42{n}["echo",{n}]')
        assert client.wait_for(f"43{n}") == f"43{n}[{n}]"


@GREEN_MODES
def test_a_parked_client_that_stops_answering_pings_times_out(
    live_server: Any, impl: str, mode: str
) -> None:
    if impl != "sio_wsgi":
        pytest.skip("parking is sio_wsgi's")
    server = live_server(
        mode, "websocket", fresh=True, env=GUNICORN[mode], ping_interval=0.3, ping_timeout=0.3
    )
    client = RawClient(server.url)
    try:
        started = time.monotonic()
        entry = server.wait_disconnect(client.sid, timeout=5)
        assert entry is not None and entry["reason"] == "ping timeout", entry
        assert time.monotonic() - started < 3
        # the server closed the connection: the client sees the end of it
        client.ws.settimeout(3)

        def ended() -> bool:
            try:
                return client.ws.recv() in ("", b"") or False
            except (websocket.WebSocketException, OSError):
                return True

        wait_until(ended, 5, "the connection closed by the server")
    finally:
        client.close()


def test_a_parked_client_answers_a_call_from_its_handler(
    parked_server: Any, clients: list[RawClient]
) -> None:
    """A handler that waits for the client (``sio.call``) on a woken connection:
    in threading mode the reading moves to a new thread meanwhile (the handover),
    and the connection still works and still ends when the client leaves."""
    time.sleep(0.6)
    client = clients[0]
    client.ws.send('421["ask_client","ping?"]')
    for _ in range(10):  # skip the welcome event: 42<id>["question","ping?"] comes next
        question = client.wait_for("42")
        call_id, _, payload = question[2:].partition("[")
        if call_id:
            break
    assert json.loads("[" + payload) == ["question", "ping?"], question
    client.ws.send(f'43{call_id}["pong!"]')
    assert json.loads(client.wait_for("431")[3:]) == [{"answer": "pong!"}]
    time.sleep(0.6)
    client.ws.send('422["echo","after"]')
    assert client.wait_for("432") == '432["after"]'
    client.raw.close()
    entry = parked_server.wait_disconnect(client.sid, timeout=5)
    assert entry is not None and entry["reason"] == "transport close", entry
