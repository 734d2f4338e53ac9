"""SerialQueue, synchronously: tasks start in arrival order; an event handler that is
still running after HANDOFF_AFTER no longer holds back the next ones (unless serial);
CONNECT and disconnect tasks never overlap. A fake clock and recorded ``run`` calls,
no threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sio_wsgi.clients import HANDOFF_AFTER, Client, SerialQueue


class Harness:
    def __init__(self, serial: bool = False) -> None:
        self.now = 100.0
        self.runs: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self.log: list[str] = []
        self.queue = SerialQueue(
            lambda eio_sid, fn, *args: self.runs.append((fn, args)),
            lambda client: self.log.append("overflow"),
            concurrent=True,
            max_bytes=1_000_000,
            logger=logging.getLogger("test"),
            serial=serial,
            clock=lambda: self.now,
        )
        self.client = Client("e1", {}, threading.Lock())

    def task(self, name: str, body: Callable[[], None] | None = None) -> Callable[[], None]:
        def run() -> None:
            self.log.append(f"start {name}")
            if body is not None:
                body()
            self.log.append(f"end {name}")

        return run

    def submit(
        self, name: str, overlap: bool = True, body: Callable[[], None] | None = None
    ) -> None:
        submit = self.queue.submit_event if overlap else self.queue.submit
        submit(self.client, self.task(name, body))

    def step(self) -> None:
        fn, args = self.runs.pop(0)
        fn(*args)

    def slow(self) -> None:
        """The body of a handler still running when the sweep comes: time passes,
        the sweep runs, and the drain it starts runs too, all before this returns."""
        self.now += HANDOFF_AFTER * 1.5
        self.queue.sweep()
        while self.runs:
            self.step()


def test_fast_handlers_run_one_after_the_other_in_one_drain() -> None:
    h = Harness()
    for name in "abc":
        h.submit(name)
    assert len(h.runs) == 1
    h.step()
    assert h.log == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert not h.client.draining and not h.runs


def test_a_slow_handler_lets_the_next_ones_start() -> None:
    h = Harness()
    h.submit("slow", body=h.slow)
    h.submit("echo")
    h.submit("next")
    h.step()
    # the next events started (and finished) while the slow one was still running
    assert h.log == ["start slow", "start echo", "end echo", "start next", "end next", "end slow"]
    assert not h.client.draining  # the stale drain stopped after its handler
    h.submit("later")
    assert len(h.runs) == 1  # a new drain for the next event
    h.step()
    assert h.log[-2:] == ["start later", "end later"]


def test_a_handler_under_the_handoff_time_keeps_the_order_strict() -> None:
    h = Harness()

    def almost() -> None:
        h.now += HANDOFF_AFTER / 2
        h.queue.sweep()

    h.submit("a", body=almost)
    h.submit("b")
    h.step()
    assert h.log == ["start a", "end a", "start b", "end b"]


def test_serial_never_overlaps() -> None:
    h = Harness(serial=True)
    h.submit("slow", body=h.slow)
    h.submit("echo")
    h.step()
    assert h.log == ["start slow", "end slow", "start echo", "end echo"]


def test_connect_and_disconnect_tasks_never_overlap() -> None:
    h = Harness()
    h.submit("connect", overlap=False, body=h.slow)
    h.submit("event")
    h.step()
    assert h.log == ["start connect", "end connect", "start event", "end event"]


def test_a_sweep_with_nothing_queued_just_lets_the_slow_handler_finish() -> None:
    h = Harness()
    h.submit("slow", body=h.slow)
    h.step()
    assert h.log == ["start slow", "end slow"]
    assert not h.client.draining and not h.runs


def test_the_sweep_goes_on_while_handlers_start_and_stops_when_quiet() -> None:
    timers: list[tuple[float, Callable[..., object]]] = []
    h = Harness()
    h.queue.call_later = lambda delay, fn, *args: timers.append((delay, fn))  # type: ignore[assignment,return-value]

    def fire_timer() -> None:
        h.now += HANDOFF_AFTER * 1.5
        _, fn = timers.pop(0)
        fn()
        while h.runs:
            h.step()

    h.submit("slow", body=fire_timer)
    h.submit("echo")
    h.step()
    assert h.log == ["start slow", "start echo", "end echo", "end slow"]
    # handlers started since: the sweep goes on; after one quiet interval it stops
    fired = 0
    while timers and fired < 5:
        timers.pop(0)[1]()
        fired += 1
    assert timers == [] and fired <= 2
