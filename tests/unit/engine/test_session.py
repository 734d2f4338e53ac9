"""EngineSession outbox rules: atomic pushes, volatile drops, the pending-bytes cap."""

from __future__ import annotations

from sio_wsgi.engine.session import EngineSession, State
from sio_wsgi.runtime.threading_driver import ThreadingDriver


def make(transport: str = "polling", cap: int = 100) -> EngineSession:
    return EngineSession("sid", transport, {}, ThreadingDriver(), cap)


def test_push_and_drain_keep_order_and_wake() -> None:
    s = make()
    assert s.push(["4a", b"\x01", "4b"]) is True
    assert s.wake.is_set()
    assert s.drain() == ["4a", b"\x01", "4b"]
    assert not s.wake.is_set() and s.pending_bytes == 0


def test_volatile_dropped_without_pending_get() -> None:
    s = make()
    assert s.push(["4v"], volatile=True) is False
    s.polling_get = True
    assert s.push(["4v"], volatile=True) is True
    assert s.push(["4w"], volatile=True) is False  # something is queued already


def test_volatile_on_websocket_needs_idle_writer() -> None:  # write_state 1: a write is under way
    s = make("websocket")
    s.ws_attached = True
    assert s.push(["4v"], volatile=True) is True
    s.drain()
    s.write_state = 1
    assert s.push(["4v"], volatile=True) is False


def test_pending_bytes_cap_reports_slow_client() -> None:
    s = make(cap=10)
    assert s.push(["4123456"]) is True
    assert s.push(["4123456"]) is None
    assert s.drain() == ["4123456"]


def test_closed_session_refuses_and_stays_awake() -> None:
    s = make()
    assert s.mark_closed("x", True) is True
    assert s.mark_closed("y", True) is False
    assert s.state is State.CLOSED and s.close_reason == "x"
    assert s.push(["4a"]) is False
    s.drain()
    assert s.wake.is_set()

