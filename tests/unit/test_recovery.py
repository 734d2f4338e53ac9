"""Connection state recovery: the log on its own (sequence numbers in, verdicts out),
then the Socket.IO layer on a fake engine, with the wire the Node server's own
tests check (packages/socket.io/test/connection-state-recovery.ts)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from sio_wsgi.config import RecoveryOptions, ServerOptions
from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.protocol.sio import PacketType
from sio_wsgi.recovery import NO_OFFSET, RecoveryLog, Saved
from tests.unit.sio_fakes import FakeServer, SioClient, make_server, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _log(**options: Any) -> tuple[RecoveryLog, Clock]:
    clock = Clock()
    return RecoveryLog(RecoveryOptions(**options), threading.Lock(), clock), clock


def _emit(
    log: RecoveryLog, text: str, rooms: list[str] | None = None, skip: tuple[str, ...] = ()
) -> str:
    seq, offset = log.next_offset()
    log.record(seq, "/", rooms, skip, Outgoing((text,)))
    return offset


def _texts(missed: list[Outgoing]) -> list[str]:
    return [str(m.items[0]) for m in missed]


# ------------------------------------------------------------------ the log


def test_offsets_belong_to_this_process() -> None:
    log, _ = _log()
    seq, offset = log.next_offset()
    assert log.mark(offset) == seq == 1
    for bad in (
        123,
        None,
        "",
        "x-1",
        f"{log.epoch}-",
        f"{log.epoch}-zz",
        f"{log.epoch}-" + "f" * 17,
    ):
        assert log.mark(bad) is None


def test_replay_follows_rooms_skips_and_join_times() -> None:
    log, _ = _log()
    _emit(log, "before-any")  # before the session connected
    joined = log.head
    _emit(log, "room-a-early", ["a"])  # before it joined a
    a_joined = log.head
    first = _emit(log, "all-1")
    _emit(log, "room-a", ["a"])
    _emit(log, "room-b", ["b"])
    _emit(log, "to-sid", ["sid1"])
    _emit(log, "all-but-me", skip=("sid1",))
    _emit(log, "all-2")
    rooms = {None: joined, "sid1": joined, "a": a_joined}
    log.save(Saved("pid1", "sid1", "/", rooms, {"k": 1}))
    restored = log.restore("pid1", first, "/")
    assert restored is not None and restored.sid == "sid1" and restored.data == {"k": 1}
    assert _texts(restored.missed) == ["room-a", "to-sid", "all-2"]


def test_no_offset_replays_everything_since_it_connected() -> None:
    log, _ = _log()
    _emit(log, "old")
    joined = log.head
    _emit(log, "new-1")
    _emit(log, "new-2")
    log.save(Saved("p", "s", "/", {None: joined, "s": joined}, None))
    restored = log.restore("p", NO_OFFSET, "/")
    assert restored is not None and _texts(restored.missed) == ["new-1", "new-2"]


@pytest.mark.parametrize("offset", [123, None, "nope", "ffff-1"])
def test_a_bad_offset_is_a_new_session(offset: object) -> None:
    log, _ = _log()
    log.save(Saved("p", "s", "/", {None: 0, "s": 0}, None))
    assert log.restore("p", offset, "/") is None
    assert log.restore("p", NO_OFFSET, "/") is None  # one attempt per drop


def test_unknown_pid_or_other_namespace() -> None:
    log, _ = _log()
    log.save(Saved("p", "s", "/chat", {None: 0}, None))
    assert log.restore("nope", NO_OFFSET, "/chat") is None
    assert log.restore("p", NO_OFFSET, "/") is None


def test_a_session_that_missed_too_much_is_not_recovered() -> None:
    log, _ = _log(max_replay_bytes=25)
    log.save(Saved("p", "s", "/", {None: 0, "s": 0}, None))
    for i in range(3):
        _emit(log, f"message-{i}")  # 9 bytes each: 27 in all
    assert log.restore("p", NO_OFFSET, "/") is None


def test_the_log_is_capped_in_bytes_and_a_trimmed_offset_fails() -> None:
    log, _ = _log(max_buffered_bytes=100)
    first = _emit(log, "x" * 10)
    log.save(Saved("p", "s", "/", {None: 0, "s": 0}, None))
    log.save(Saved("q", "s2", "/", {None: 0, "s2": 0}, None))
    for _ in range(20):
        _emit(log, "y" * 10)
    assert log.buffered_bytes == 100 and len(log) == 10
    assert log.restore("p", first, "/") is None  # what it missed is partly gone
    assert log.restore("q", log.offset(log.head - 1), "/") is not None


def test_saved_sessions_and_packets_expire() -> None:
    log, clock = _log(max_disconnection_duration=120)
    offset = _emit(log, "old")
    log.save(Saved("p", "s", "/", {None: 0, "s": 0}, None))
    clock.now += 60
    log.save(Saved("q", "t", "/", {None: 0, "t": 0}, None))
    clock.now += 61  # p is 121 s old, q 61 s
    _emit(log, "new")
    assert len(log) == 1 and log.saved_sessions == 1
    assert log.restore("p", offset, "/") is None
    assert log.restore("q", NO_OFFSET, "/") is None  # the packet it would replay is gone


def test_options_accept_node_names_and_refuse_unknown_ones() -> None:
    options = ServerOptions(
        connection_state_recovery={"maxDisconnectionDuration": 5000, "skipMiddlewares": False}
    ).connection_state_recovery
    assert options == RecoveryOptions(max_disconnection_duration=5.0, skip_middlewares=False)
    assert (
        ServerOptions(connection_state_recovery=True).connection_state_recovery == RecoveryOptions()
    )
    assert ServerOptions(connection_state_recovery=False).connection_state_recovery is None
    with pytest.raises(ValueError, match="unknown"):
        ServerOptions(connection_state_recovery={"maxDisconnectDuration": 1})
    with pytest.raises(ValueError, match="positive"):
        ServerOptions(connection_state_recovery={"max_disconnection_duration": 0})


# ------------------------------------------------------------------ the server


def _server(**recovery: Any) -> tuple[FakeServer, Any]:
    server, engine = make_server(connection_state_recovery=recovery or True)
    joined: list[tuple[str, bool]] = []

    @server.event
    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        joined.append((sid, server.is_recovered(sid)))
        if not server.is_recovered(sid):
            server.enter_room(sid, "room1")
            server.save_session(sid, {"foo": "bar"})

    server.joined = joined  # type: ignore[attr-defined]
    return server, engine


def _handshake(client: SioClient, auth: Any = None) -> dict[str, Any]:
    client.send_packet(_connect_packet(auth))
    reply = client.next_packet()
    assert reply.type == PacketType.CONNECT
    data: dict[str, Any] = reply.data
    return data


def _connect_packet(auth: Any) -> Any:
    from sio_wsgi.protocol.sio import Packet

    return Packet(PacketType.CONNECT, "/", auth)


def _saved(server: FakeServer) -> int:
    recovery = server.manager.recovery
    assert recovery is not None
    return recovery.saved_sessions


def _init(server: FakeServer, engine: Any) -> tuple[SioClient, str, str, str]:
    """As the Node test's init(): connect, receive one broadcast, drop; sid, pid, offset."""
    client = SioClient(engine)
    handshake = _handshake(client)
    server.emit("hello")
    packet = client.next_packet()
    assert packet.data[0] == "hello" and isinstance(packet.data[-1], str)
    engine.drop(client.eio_sid, "client disconnect")  # the client's Engine.IO CLOSE
    wait_until(
        lambda: server.manager.recovery is not None and server.manager.recovery.saved_sessions == 1
    )
    return client, handshake["sid"], handshake["pid"], packet.data[-1]


def test_disabled_by_default_no_pid_no_offset() -> None:
    server, engine = make_server()
    client = SioClient(engine)
    assert "pid" not in _handshake(client)
    server.emit("hello")
    assert client.next_packet().data == ["hello"]


def test_restore_session_and_missed_packets_before_the_connect_reply() -> None:
    server, engine = _server()
    _, sid, pid, offset = _init(server, engine)
    server.emit("hello1")
    server.emit("hello2", to="room1")
    server.emit("hello3", to=sid)
    server.emit("not-replayed", to="room2")
    server.emit("with-ack", to=sid, callback=lambda *a: None)  # acks are not replayed
    server.emit("volatile", volatile=True)
    again = SioClient(engine)
    again.send_packet(_connect_packet({"pid": pid, "offset": offset}))
    events = [again.next_packet() for _ in range(3)]
    assert [p.data[0] for p in events] == ["hello1", "hello2", "hello3"]
    reply = again.next_packet()
    assert reply.type == PacketType.CONNECT and reply.data == {"sid": sid, "pid": pid}
    assert server.joined[-1] == (sid, True)  # type: ignore[attr-defined]
    assert set(server.rooms(sid)) == {sid, "room1"}
    assert server.get_session(sid) == {"foo": "bar"}
    # live again: the next emit arrives with a newer offset, once
    server.emit("live", to=sid)
    live = again.next_packet()
    assert live.data[0] == "live"
    assert server.manager.recovery.mark(live.data[-1]) > server.manager.recovery.mark(offset)  # type: ignore[union-attr,operator]


def test_restore_without_an_offset_replays_since_the_connect() -> None:
    server, engine = _server()
    client = SioClient(engine)
    handshake = _handshake(client)
    engine.drop(client.eio_sid, "transport close")
    wait_until(lambda: _saved(server) == 1)
    server.emit("hello", "world", to="room1")
    server.emit("broadcast")
    again = SioClient(engine)
    again.send_packet(_connect_packet({"pid": handshake["pid"]}))
    first, second = again.next_packet(), again.next_packet()
    assert first.data[:2] == ["hello", "world"] and len(first.data) == 3
    assert second.data[0] == "broadcast" and len(second.data) == 2
    reply = again.next_packet()
    assert reply.data == {"sid": handshake["sid"], "pid": handshake["pid"]}


def test_a_non_string_offset_or_unknown_pid_is_a_new_session() -> None:
    server, engine = _server()
    _, sid, pid, _ = _init(server, engine)
    again = SioClient(engine)
    data = _handshake(again, {"pid": pid, "offset": 123})
    assert data["sid"] != sid and data["pid"] != pid
    assert server.joined[-1] == (data["sid"], False)  # type: ignore[attr-defined]
    other = SioClient(engine)
    data = _handshake(other, {"pid": "foo", "offset": "bar"})
    assert data["sid"] != "foo" and data["pid"] != "bar"


def test_an_explicit_disconnect_is_not_recovered() -> None:
    server, engine = _server()
    client = SioClient(engine)
    handshake = _handshake(client)
    from sio_wsgi.protocol.sio import Packet

    client.send_packet(Packet(PacketType.DISCONNECT, "/"))
    engine.drop(client.eio_sid, "client disconnect")
    wait_until(lambda: not server.manager.is_connected(handshake["sid"], "/"))
    server.driver.join_all()
    assert _saved(server) == 0
    again = SioClient(engine)
    assert _handshake(again, {"pid": handshake["pid"]})["sid"] != handshake["sid"]


def test_a_server_disconnect_is_not_recovered() -> None:
    server, engine = _server()
    client = SioClient(engine)
    handshake = _handshake(client)
    server.disconnect(handshake["sid"])
    server.driver.join_all()
    assert _saved(server) == 0


def test_recovers_again_right_after_a_recovery() -> None:
    server, engine = _server()
    _, sid, pid, offset = _init(server, engine)
    for round_ in range(3):
        server.emit("missed", round_)
        again = SioClient(engine)
        again.send_packet(_connect_packet({"pid": pid, "offset": offset}))
        missed = again.next_packet()
        assert missed.data[:2] == ["missed", round_]
        offset = missed.data[-1]
        assert again.next_packet().data == {"sid": sid, "pid": pid}
        engine.drop(again.eio_sid, "ping timeout")
        wait_until(lambda: _saved(server) == 1)


def test_binary_events_are_replayed_too() -> None:
    server, engine = _server()
    _, sid, pid, offset = _init(server, engine)
    server.emit("blob", b"\x00\x01", to=sid)
    again = SioClient(engine)
    again.send_packet(_connect_packet({"pid": pid, "offset": offset}))
    blob = again.next_packet()
    assert blob.data[:2] == ["blob", b"\x00\x01"] and isinstance(blob.data[2], str)


def test_emits_during_the_restore_arrive_exactly_once_in_order() -> None:
    server, engine = _server()
    _, _, pid, offset = _init(server, engine)
    stop = threading.Event()
    sent: list[int] = []

    def emitter() -> None:
        n = 0
        while not stop.is_set() and n < 5000:
            server.emit("n", n, to="room1")
            sent.append(n)
            n += 1

    thread = threading.Thread(target=emitter)
    thread.start()
    wait_until(lambda: len(sent) > 200)
    again = SioClient(engine)
    again.send_packet(_connect_packet({"pid": pid, "offset": offset}))
    wait_until(lambda: len(sent) > 2000)
    stop.set()
    thread.join(10)
    got: list[int] = []
    connected = False
    while len(got) < len(sent):
        packet = again.next_packet()
        if packet.type == PacketType.CONNECT:
            connected = True
            continue
        got.append(packet.data[1])
    assert connected
    assert got == sent  # gap-free, no duplicate, in order


def test_connect_reply_json_is_what_the_node_tests_expect() -> None:
    _, engine = _server()
    client = SioClient(engine)
    client.send_packet(_connect_packet(None))
    raw = client.next_raw()
    assert isinstance(raw, str) and raw.startswith("0{")  # "40{...}" on the wire
    body = json.loads(raw[1:])
    assert set(body) == {"sid", "pid"}


# ------------------------------------------------------------------ the Redis store's codec


def test_stream_ids_and_marks_round_trip() -> None:
    from sio_wsgi.managers import recovery_redis as rr

    for stream_id in ("1796589888025-0", "1-1", "1796589888025-1048575"):
        mark = rr._mark(stream_id)
        assert mark is not None and rr._stream_id(mark) == stream_id
    assert rr._mark("1-1") < rr._mark("1-2") < rr._mark("2-0")  # type: ignore[operator]
    for bad in ("1-1048576", "x-1", "1", "", None, 12, "1-1-1"):
        assert rr._mark(bad) is None


def test_saved_sessions_survive_json_and_refuse_garbage() -> None:
    from sio_wsgi.managers import recovery_redis as rr

    saved = Saved("p", "s", "/chat", {None: 5, "s": 5, "room": 9}, {"user": "carol"})
    back = rr._load("p", rr._dump(saved))
    assert back is not None
    assert (back.sid, back.namespace, back.rooms, back.data) == (
        "s",
        "/chat",
        {None: 5, "s": 5, "room": 9},
        {"user": "carol"},
    )
    odd = Saved("p", "s", "/", {None: 1}, {"when": object()})  # not JSON: not carried
    assert rr._load("p", rr._dump(odd)).data is None  # type: ignore[union-attr]
    for raw in ("{}", "[]", '{"sid": 1, "ns": "/", "rooms": []}', "nope", '{"rooms": [[1, 2]]}'):
        assert rr._load("p", raw) is None


def test_a_stream_entry_is_the_bus_message_with_its_id() -> None:
    from sio_wsgi.managers import messages as bus
    from sio_wsgi.managers import recovery_redis as rr

    emit = bus.Emit("tick", [1, b"\x00"], "/", ["room"], ["skip"], offset="PLACE")
    encoded = bus.encode(bus.Envelope("h" * 16, emit)).decode()
    head, _, tail = encoded.partition("PLACE")
    message = rr._entry(b"5-1", {b"p": head.encode(), b"s": tail.encode()})
    assert message is not None and message.offset == "5-1" and message.args == [1, b"\x00"]
    assert rr._entry(b"5-1", {b"p": b"{", b"s": b""}) is None
