"""EngineSession: the transition table, atomic pushes, volatile drops, the pending-bytes cap."""

from __future__ import annotations

from typing import Any

import pytest

from sio_wsgi.engine.outgoing import Outgoing
from sio_wsgi.engine.session import (
    TRANSITIONS,
    EngineSession,
    PushResult,
    State,
    Transition,
)
from sio_wsgi.runtime.threading_driver import ThreadingDriver


class _Conn:
    """A connection that is writable when told so."""

    name = "fake"

    def __init__(self, writable: bool = False) -> None:
        self.ready = writable

    def write(self, out: Outgoing) -> bool:
        return False

    def writable(self) -> bool:
        return self.ready

    def kick(self) -> None:
        pass

    def run_inline(self, fn: Any, args: tuple[Any, ...]) -> bool:
        return False

    def session_closed(self, send_close_packet: bool) -> None:
        pass


def make(cap: int = 100, conn: _Conn | None = None, state: State = State.OPEN) -> EngineSession:
    session = EngineSession("sid", "polling", {}, ThreadingDriver(), cap, conn)
    session.state = state
    return session


def out(*items: str | bytes) -> Outgoing:
    return Outgoing(items)


# ----------------------------------------------------------------- the table

LIFECYCLES = [
    # a session accepted, upgraded, closed by the client, flushed
    [
        Transition.ACCEPT,
        Transition.START_UPGRADE,
        Transition.FINISH_UPGRADE,
        Transition.CLOSE,
        Transition.FINISH,
    ],
    # a refused handshake
    [Transition.REFUSE],
    # a failed probe, a second probe that works
    [
        Transition.ACCEPT,
        Transition.START_UPGRADE,
        Transition.CANCEL_UPGRADE,
        Transition.START_UPGRADE,
        Transition.FINISH_UPGRADE,
    ],
    # closed during the upgrade
    [Transition.ACCEPT, Transition.START_UPGRADE, Transition.CLOSE],
]


@pytest.mark.parametrize("steps", LIFECYCLES)
def test_lifecycles_follow_the_table(steps: list[Transition]) -> None:
    session = make(state=State.OPENING)
    for step in steps:
        expected = TRANSITIONS[(session.state, step)]
        assert session.transition(step) is True
        assert session.state is expected


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("transition", list(Transition))
def test_every_pair_outside_the_table_is_refused(state: State, transition: Transition) -> None:
    session = make(state=state)
    allowed = (state, transition) in TRANSITIONS
    assert session.transition(transition) is allowed
    assert session.state is (TRANSITIONS[(state, transition)] if allowed else state)


def test_closed_states_end_everything() -> None:
    for state in (State.CLOSING, State.CLOSED):
        for transition in Transition:
            if transition is not Transition.FINISH:
                assert (state, transition) not in TRANSITIONS


def test_second_upgrade_while_upgrading_is_refused() -> None:
    session = make()
    assert session.transition(Transition.START_UPGRADE)
    assert not session.transition(Transition.START_UPGRADE)


# ----------------------------------------------------------------- the outbox


def test_push_and_take_keep_order() -> None:
    session = make()
    first, second = out("4a", b"\x01"), out("4b")
    assert session.push(first) is PushResult.QUEUED
    assert session.push(second) is PushResult.QUEUED
    assert session.pending_bytes == 5
    with session.lock:
        assert session.take() == [first, second]
    assert session.pending_bytes == 0 and session.outbox == []


def test_volatile_needs_a_writable_connection_and_an_empty_outbox() -> None:
    conn = _Conn(writable=False)
    session = make(conn=conn)
    assert session.push(out("4v"), volatile=True) is PushResult.DROPPED
    conn.ready = True
    assert session.push(out("4v"), volatile=True) is PushResult.QUEUED
    assert session.push(out("4w"), volatile=True) is PushResult.DROPPED  # something is queued


def test_volatile_is_dropped_while_upgrading_or_without_connection() -> None:
    assert make(conn=_Conn(True), state=State.UPGRADING).push(out("4v"), True) is PushResult.DROPPED
    assert make(conn=None).push(out("4v"), volatile=True) is PushResult.DROPPED


def test_pending_bytes_cap_reports_overflow() -> None:
    session = make(cap=10)
    queued = out("4123456")
    assert session.push(queued) is PushResult.QUEUED
    assert session.push(out("4123456")) is PushResult.OVERFLOW
    with session.lock:
        assert session.take() == [queued]


def test_one_push_over_the_cap_is_accepted_into_an_empty_outbox() -> None:
    session = make(cap=3)
    assert session.push(out("4123456")) is PushResult.QUEUED


def test_close_once_then_refuse_pushes() -> None:
    session = make()
    assert session.close("x") is True  # type: ignore[arg-type]
    assert session.close("y") is False  # type: ignore[arg-type]
    assert session.state is State.CLOSING and session.closed and session.close_reason == "x"
    assert session.push(out("4a")) is PushResult.DROPPED
    assert session.transition(Transition.FINISH) and session.state is State.CLOSED
