"""Runtime drivers: the threading worker pool and the scheduler."""

from __future__ import annotations

import threading
import time

from sio_wsgi.runtime.scheduler import Scheduler
from sio_wsgi.runtime.threading_driver import ThreadingDriver


def test_threading_pool_reuses_workers_and_keeps_running_jobs() -> None:
    driver = ThreadingDriver()
    done: list[int] = []
    idents: set[int] = set()
    lock = threading.Lock()

    def job(i: int) -> None:
        with lock:
            done.append(i)
            idents.add(threading.get_ident())

    for i in range(50):
        driver.submit(job, i)
        time.sleep(0.002)  # sequential jobs: an idle worker takes each one
    deadline = time.monotonic() + 5
    while len(done) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(done) == list(range(50))
    assert len(idents) < 10


def test_scheduler_runs_in_order_and_skips_cancelled() -> None:
    scheduler = Scheduler(ThreadingDriver())
    out: list[str] = []
    scheduler.call_later(0.06, out.append, "b")
    scheduler.call_later(0.02, out.append, "a")
    scheduler.call_later(0.04, out.append, "x").cancel()
    deadline = time.monotonic() + 2
    while len(out) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert out == ["a", "b"]


def test_cancelled_timer_lets_go_of_its_arguments() -> None:
    scheduler = Scheduler(ThreadingDriver())
    payload = object()
    handle = scheduler.call_later(60.0, print, payload)
    handle.cancel()
    assert payload not in handle.args and handle.fn is not print
    scheduler.stop()
