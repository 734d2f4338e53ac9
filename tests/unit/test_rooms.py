"""Manager: rooms, recipient selection, delivery and ack callbacks (no server)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.manager import Manager
from sio_wsgi.protocol.serializers import JSONSerializer
from sio_wsgi.protocol.sio import Packet, PacketType, encode


class Recorder:
    """The server side of the manager: counts encodes, records deliveries."""

    def __init__(self) -> None:
        self.encoded = 0
        self.delivered: list[tuple[str, str, list[str | bytes], bool]] = []
        self.outgoing: list[Outgoing] = []
        self.serializer = JSONSerializer()

    def encode(self, packet: Packet) -> Outgoing:
        self.encoded += 1
        return Outgoing.messages(encode(packet, self.serializer))

    def deliver(self, eio_sid: str, sid: str, out: Outgoing, vol: bool) -> bool:
        self.outgoing.append(out)
        messages = [m if isinstance(m, bytes) else m[1:] for m in out.items]  # without the "4"
        self.delivered.append((eio_sid, sid, messages, vol))
        return True

    def sids(self) -> list[str]:
        return [sid for _, sid, _, _ in self.delivered]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def mgr(rec: Recorder) -> Manager:
    manager = Manager()
    manager.attach(rec.encode, rec.deliver)
    return manager


def test_connect_creates_distinct_sid_and_own_room(mgr: Manager) -> None:
    sid = mgr.connect("eio1", "/")
    assert sid != "eio1"
    assert len(sid) >= 16
    assert mgr.is_connected(sid, "/")
    assert not mgr.is_connected(sid, "/other")
    assert mgr.get_rooms(sid, "/") == [sid]
    assert mgr.sid_from_eio_sid("eio1", "/") == sid
    assert mgr.eio_sid_from_sid(sid, "/") == "eio1"
    assert mgr.get_namespaces() == ["/"]


def test_same_eio_session_gets_one_sid_per_namespace(mgr: Manager) -> None:
    a = mgr.connect("eio1", "/")
    b = mgr.connect("eio1", "/chat")
    assert a != b
    assert mgr.sid_from_eio_sid("eio1", "/chat") == b
    mgr.disconnect(b, "/chat")
    assert mgr.is_connected(a, "/")
    assert mgr.sid_from_eio_sid("eio1", "/chat") is None


def test_enter_leave_close_room(mgr: Manager) -> None:
    a, b = mgr.connect("e1", "/"), mgr.connect("e2", "/")
    mgr.enter_room(a, "/", "r")
    mgr.enter_room(b, "/", "r")
    assert sorted(mgr.get_rooms(a, "/")) == sorted([a, "r"])
    assert sorted(s for s, _ in mgr.get_participants("/", "r")) == sorted([a, b])
    mgr.leave_room(a, "/", "r")
    mgr.leave_room(a, "/", "r")  # twice is fine
    mgr.leave_room(a, "/", "never")
    assert [s for s, _ in mgr.get_participants("/", "r")] == [b]
    mgr.close_room("r", "/")
    assert list(mgr.get_participants("/", "r")) == []
    assert mgr.get_rooms(b, "/") == [b]
    mgr.close_room("r", "/")  # already gone


def test_enter_room_of_unknown_sid(mgr: Manager) -> None:
    with pytest.raises(KeyError):
        mgr.enter_room("nobody", "/", "r")
    mgr.enter_room("remote", "/", "r", eio_sid="e9")
    assert list(mgr.get_participants("/", "r")) == [("remote", "e9")]


def test_rooms_are_per_namespace(mgr: Manager) -> None:
    a = mgr.connect("e1", "/")
    c = mgr.connect("e1", "/chat")
    mgr.enter_room(a, "/", "r")
    mgr.enter_room(c, "/chat", "r")
    assert [s for s, _ in mgr.get_participants("/", "r")] == [a]
    assert [s for s, _ in mgr.get_participants("/chat", "r")] == [c]


def test_disconnect_cleans_everything(mgr: Manager) -> None:
    a, b = mgr.connect("e1", "/"), mgr.connect("e2", "/")
    mgr.enter_room(a, "/", "r")
    mgr.generate_ack_id(a, lambda *args: None)
    mgr.disconnect(a, "/")
    assert not mgr.is_connected(a, "/")
    assert mgr.get_rooms(a, "/") == []
    assert [s for s, _ in mgr.get_participants("/", None)] == [b]
    assert list(mgr.get_participants("/", "r")) == []
    assert mgr.sid_from_eio_sid("e1", "/") is None
    mgr.disconnect(b, "/")
    assert mgr.get_namespaces() == []
    mgr.disconnect(b, "/")  # idempotent


def test_recipients(mgr: Manager) -> None:
    a, b, c = (mgr.connect(f"e{i}", "/") for i in range(3))
    mgr.enter_room(a, "/", "r1")
    mgr.enter_room(b, "/", "r1")
    mgr.enter_room(b, "/", "r2")
    mgr.enter_room(c, "/", "r2")

    def sids(**kwargs: Any) -> list[str]:
        return [s for s, _ in mgr.get_recipients("/", **kwargs)]

    assert sids() == [a, b, c]
    assert sids(to=a) == [a]
    assert sids(to="r1") == [a, b]
    assert sids(to=["r1", "r2"]) == [a, b, c]  # b only once
    assert sids(to=["r2", "r1", "r2"]) == [b, c, a]
    assert sids(to="r1", skip_sid=a) == [b]
    assert sids(skip_sid=[a, c]) == [b]
    assert sids(to="missing") == []
    assert mgr.get_recipients("/nope") == []


def test_emit_broadcast_encodes_once(mgr: Manager, rec: Recorder) -> None:
    a, b = mgr.connect("e1", "/"), mgr.connect("e2", "/")
    assert mgr.emit("news", ["hi", 1], "/") == 2
    assert rec.encoded == 1
    assert rec.sids() == [a, b]
    assert rec.delivered[0][2] == ['2["news","hi",1]']


def test_emit_compress_flag_travels_with_the_message(mgr: Manager, rec: Recorder) -> None:
    mgr.connect("e1", "/")
    mgr.emit("big", ["x" * 5000], "/")
    mgr.emit("big", ["x" * 5000], "/", compress=False)
    mgr.emit("q", [], "/", callback=lambda *args: None, compress=False)
    assert [out.compress for out in rec.outgoing] == [True, False, False]
    assert rec.outgoing[0] is not rec.outgoing[1]


def test_emit_volatile_and_namespace(mgr: Manager, rec: Recorder) -> None:
    mgr.connect("e1", "/")
    c = mgr.connect("e1", "/chat")
    mgr.emit("x", [], "/chat", volatile=True)
    assert rec.delivered == [("e1", c, ['2/chat,["x"]'], True)]


def test_emit_with_callback_one_ack_id_per_recipient(mgr: Manager, rec: Recorder) -> None:
    a, b = mgr.connect("e1", "/"), mgr.connect("e2", "/")
    got: list[tuple[Any, ...]] = []
    mgr.emit("q", [], "/", callback=lambda *args: got.append(args))
    assert rec.encoded == 2
    ids = [int(str(m[2][0]).split("[")[0][1:]) for m in rec.delivered]
    assert len(set(ids)) == 2
    assert mgr.trigger_callback(b, ids[1], ["yes"])
    assert not mgr.trigger_callback(b, ids[1], ["again"])  # once only
    assert not mgr.trigger_callback(b, ids[0], ["wrong sid"])
    assert mgr.trigger_callback(a, ids[0], [1, 2])
    assert got == [("yes",), (1, 2)]


def test_send_packet(mgr: Manager, rec: Recorder) -> None:
    a = mgr.connect("e1", "/")
    assert mgr.send_packet(a, "/", Packet(PacketType.ACK, "/", [], 3))
    assert rec.delivered == [("e1", a, ["33[]"], False)]
    assert not mgr.send_packet("ghost", "/", Packet(PacketType.ACK, "/", [], 3))


def test_unattached_manager_refuses_to_emit() -> None:
    manager = Manager()
    manager.connect("e1", "/")
    with pytest.raises(RuntimeError):
        manager.emit("x", [], "/")


def test_concurrent_room_changes_are_consistent(mgr: Manager) -> None:
    sids = [mgr.connect(f"e{i}", "/") for i in range(50)]
    errors: list[BaseException] = []

    def churn(sid: str) -> None:
        try:
            for n in range(200):
                mgr.enter_room(sid, "/", f"r{n % 5}")
                mgr.get_recipients("/", to=["r0", "r1", "r2"])
                mgr.leave_room(sid, "/", f"r{n % 5}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(s,)) for s in sids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert all(mgr.get_rooms(s, "/") == [s] for s in sids)
