"""Direct links (sio_wsgi/managers/direct.py): two processes' inbox sockets, here in
one process with the threading driver, on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from sio_wsgi.engine.ports import DIRECT_MESSAGE_PREFIX
from sio_wsgi.managers import direct, inbox
from sio_wsgi.managers import messages as bus
from sio_wsgi.managers.direct import MAGIC, DirectLinks
from sio_wsgi.runtime.select import get_driver
from tests.support.common import wait_until
from tests.unit.bus_fakes import BusManager, InMemoryBus

DRIVER = get_driver("threading")


class Inbox:
    """What a process's links delivered."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, data: bytes) -> None:
        with self.lock:
            self.frames.append(data)


@pytest.fixture
def pair() -> Iterator[tuple[DirectLinks, DirectLinks, Inbox]]:
    inbox = Inbox()
    a = DirectLinks("a" * 16, DRIVER, Inbox(), "127.0.0.1")
    b = DirectLinks("b" * 16, DRIVER, inbox, "127.0.0.1")
    yield a, b, inbox
    a.close()
    b.close()


def test_frames_arrive_whole_and_in_order(pair: tuple[DirectLinks, DirectLinks, Inbox]) -> None:
    a, b, inbox = pair
    # small frames go out at once; the large ones fill the socket and queue behind
    frames = [b"%d" % i if i % 50 else bytes([i % 256]) * (1 << 20) for i in range(300)]
    for frame in frames:
        assert a.send("b" * 16, b.address, b.token, frame)
    wait_until(lambda: len(inbox.frames) == len(frames), timeout=20)
    assert inbox.frames == frames
    assert a.counts["sent"] == 300 and b.counts["received"] == 300
    assert a.counts["fallbacks"] == 0


def test_concurrent_senders_never_interleave(pair: tuple[DirectLinks, DirectLinks, Inbox]) -> None:
    a, b, inbox = pair

    def sender(tag: int) -> None:
        for i in range(200):
            assert a.send("b" * 16, b.address, b.token, b"%d:%d:" % (tag, i) + b"x" * 5000)

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    wait_until(lambda: len(inbox.frames) == 800, timeout=20)
    for tag in range(4):
        mine = [f for f in inbox.frames if f.startswith(b"%d:" % tag)]
        assert [int(f.split(b":")[1]) for f in mine] == list(range(200))
        assert all(len(f) == len(b"%d:%d:" % (tag, int(f.split(b":")[1]))) + 5000 for f in mine)


def test_a_wrong_token_is_refused_and_not_retried_at_once(
    pair: tuple[DirectLinks, DirectLinks, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    a, b, inbox = pair
    with caplog.at_level(logging.INFO, "sio_wsgi.managers.pubsub"):
        assert not a.send("b" * 16, b.address, "0" * 32, b"hello")
        wait_until(lambda: "did not show this process's token" in caplog.text)
    assert not a.send("b" * 16, b.address, b.token, b"again")  # within RETRY_AFTER
    assert inbox.frames == [] and a.counts["fallbacks"] == 2


def test_a_link_to_the_wrong_process_is_dropped(
    pair: tuple[DirectLinks, DirectLinks, Inbox],
) -> None:
    a, b, inbox = pair
    # b's address and token, but announced by another host id: b answers with its own
    assert not a.send("c" * 16, b.address, b.token, b"for c")
    assert inbox.frames == []


def test_nobody_listening_is_a_fallback() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    a = DirectLinks("a" * 16, DRIVER, Inbox(), "127.0.0.1")
    try:
        assert not a.send("b" * 16, address, "0" * 32, b"x")
    finally:
        a.close()


def test_a_closed_peer_is_noticed(pair: tuple[DirectLinks, DirectLinks, Inbox]) -> None:
    a, b, inbox = pair
    lost: list[str] = []
    a.lost = lost.append
    assert a.send("b" * 16, b.address, b.token, b"first")
    wait_until(lambda: inbox.frames == [b"first"])
    b.close()
    wait_until(lambda: lost == ["b" * 16])  # the relay's waiting requests ask at once
    # the link's watcher sees the end of the stream and drops it; a new link then fails
    wait_until(lambda: not a.send("b" * 16, b.address, b.token, b"later"), timeout=5)


def test_an_oversized_frame_cuts_the_link(pair: tuple[DirectLinks, DirectLinks, Inbox]) -> None:
    _, b, inbox = pair
    host, _, port = b.address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(MAGIC + b.token.encode() + b"c" * 16)
        assert sock.recv(16) == b"b" * 16
        sock.sendall(struct.pack(">I", direct.MAX_FRAME + 1) + b"x" * 100)
        assert sock.recv(10) == b""  # closed by b
    assert inbox.frames == []


def test_a_silent_connection_times_out(pair: tuple[DirectLinks, DirectLinks, Inbox]) -> None:
    _, b, _ = pair
    host, _, port = b.address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(MAGIC)
        assert sock.recv(10) == b""  # no token within CONNECT_TIMEOUT: closed


# ------------------------------------------------------------------ on the bus


def test_hello_announces_the_links_and_old_hellos_still_parse() -> None:
    hello = bus.Hello(direct="127.0.0.1:4000", token="t" * 32, machine="m")
    assert bus.decode(bus.encode(bus.Envelope("h" * 16, hello))).message == hello
    old = b'{"v":1,"type":"hello","host":"hhhhhhhhhhhhhhhh","data":{"reply":true}}'
    assert bus.decode(old).message == bus.Hello(reply=True)


@pytest.mark.parametrize(
    ("address", "machine", "reachable"),
    [
        ("127.0.0.1:4000", inbox.MACHINE, True),
        ("127.0.0.1:4000", "elsewhere", False),
        ("[::1]:4000", "elsewhere", False),
        ("10.1.2.3:4000", "elsewhere", True),
        ("not-an-ip:4000", inbox.MACHINE, False),
    ],
)
def test_a_loopback_address_only_from_the_same_machine(
    address: str, machine: str, reachable: bool
) -> None:
    assert inbox.reachable(address, machine) is reachable


def test_managers_on_one_bus_send_inbox_messages_over_their_links() -> None:
    fake = InMemoryBus()
    one = BusManager(fake, heartbeat_interval=0.2)
    two = BusManager(fake, heartbeat_interval=0.2)
    got: list[bytes] = []
    try:
        for manager in (one, two):
            manager.attach(lambda *a: None, lambda *a: True, DRIVER)  # type: ignore[arg-type]
        wait_until(lambda: one.healthy and two.healthy)
        two.set_direct_handler(got.append)
        one.set_direct_handler(lambda raw: None)
        wait_until(lambda: two.host_id in one._inbox.peers)
        message = DIRECT_MESSAGE_PREFIX + b"payload"
        assert one.publish_direct(two.host_id, message)
        wait_until(lambda: got == [message])
        assert one._inbox.links is not None and one._inbox.links.counts["sent"] == 1
        # a direct link carries inbox messages only: a bus message on it is dropped
        assert one._inbox.links.send(two.host_id, *one._inbox.peers[two.host_id], b"{}")
        wait_until(lambda: two.health().dropped == 1)
    finally:
        one.shutdown()
        two.shutdown()
