"""Runtime drivers: the threading worker pool and the scheduler."""

from __future__ import annotations

import json
import threading
import time

import pytest

from sio_wsgi.runtime.scheduler import Scheduler
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from tests.support import run_python


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


_GREEN_POOL_SCRIPT = """
import sys, greenlet
lib = sys.argv[1]
if lib == "gevent":
    from sio_wsgi.runtime.gevent_driver import GeventDriver as Driver
else:
    from sio_wsgi.runtime.eventlet_driver import EventletDriver as Driver
driver = Driver()
done, workers = [], set()

def job(i):
    workers.add(id(greenlet.getcurrent()))
    if i % 10 == 0:
        driver.sleep(0.001)  # a job that blocks parks its worker, others go on
    if i == 7:
        raise RuntimeError("a failing job")
    done.append(i)

for i in range(300):
    driver.submit(job, i)
    if i % 50 == 49:
        driver.sleep(0.01)
deadline = driver.monotonic() + 5
while len(done) < 299 and driver.monotonic() < deadline:
    driver.sleep(0.01)
print(len(done), sorted(set(range(300)) - set(done)), len(workers))
"""


@pytest.mark.parametrize("lib", ["gevent", "eventlet"])
def test_green_pool_reuses_workers_and_survives_failing_jobs(lib: str) -> None:
    """Jobs run in reused greenlets; one that raises is logged and its worker lives on."""
    result = run_python(_GREEN_POOL_SCRIPT, lib)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("299 [7] "), result.stdout
    workers = int(result.stdout.split()[-1])
    assert workers <= 60, result.stdout
    assert "a failing job" in result.stderr


_GREEN_POOL_RELEASE_SCRIPT = """
import gc, sys, weakref
lib = sys.argv[1]
if lib == "gevent":
    from sio_wsgi.runtime.gevent_driver import GeventDriver as Driver
else:
    from sio_wsgi.runtime.eventlet_driver import EventletDriver as Driver
driver = Driver()

class Payload:
    pass

refs = []
for _ in range(40):
    payload = Payload()
    refs.append(weakref.ref(payload))
    driver.submit(lambda p: driver.sleep(0.01), payload)
    del payload
driver.sleep(0.3)
gc.collect()
print(sum(ref() is not None for ref in refs))
"""


@pytest.mark.parametrize("lib", ["gevent", "eventlet"])
def test_green_pool_lets_go_of_finished_jobs(lib: str) -> None:
    """A parked worker keeps nothing of the jobs it ran, its first one included
    (greenlet holds a new greenlet's first arguments for its whole life)."""
    result = run_python(_GREEN_POOL_RELEASE_SCRIPT, lib)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", result.stdout


_WHEN_READABLE_SCRIPT = """
import sys
lib = sys.argv[1]
if lib == "gevent":
    from gevent import socket
    from sio_wsgi.runtime.gevent_driver import GeventDriver as Driver
elif lib == "eventlet":
    from eventlet.green import socket
    from sio_wsgi.runtime.eventlet_driver import EventletDriver as Driver
else:
    import socket
    from sio_wsgi.runtime.threading_driver import ThreadingDriver as Driver
driver = Driver()
a, b = socket.socketpair()
reader = driver.socket_reader(a)
ran = []
assert reader.when_readable(lambda: ran.append(a.recv(10)))
assert not reader.when_readable(lambda: None)  # one callback at a time
driver.sleep(0.05)
assert ran == [], ran  # nothing to read: nothing ran, no task waits
b.send(b"hi")
driver.sleep(0.05)
assert ran == [b"hi"], ran  # once, in a pooled task
b.send(b"again")
driver.sleep(0.05)
assert ran == [b"hi"], ran  # one shot
assert reader.when_readable(lambda: ran.append(a.recv(10)))  # armed again: runs at once
driver.sleep(0.05)
assert ran == [b"hi", b"again"], ran
c, d = socket.socketpair()
closing = driver.socket_reader(c)
assert closing.when_readable(lambda: ran.append("closed"))
closing.close()  # the connection's close: cancels it quietly (nothing thrown anywhere)
c.close()
try:
    d.send(b"x")
except OSError:  # EPIPE: the peer is gone already
    pass
driver.sleep(0.05)
assert ran == [b"hi", b"again"], ran
assert not closing.when_readable(lambda: None)
print("ok")
"""


@pytest.mark.parametrize("lib", ["gevent", "eventlet", "threading"])
def test_when_readable_runs_once_pooled_and_dies_with_the_socket(lib: str) -> None:
    result = run_python(_WHEN_READABLE_SCRIPT, lib)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_threading_reader_parks_after_a_while_without_bytes() -> None:
    """An OS thread's reader does not park at once: once asked, its recv() gives up
    with BlockingIOError after PARK_AFTER without bytes; the green readers park at
    once."""
    import socket

    from sio_wsgi.runtime import threading_driver
    from sio_wsgi.runtime.threading_driver import ThreadingDriver

    a, b = socket.socketpair()
    try:
        reader = ThreadingDriver().socket_reader(a)
        assert reader is not None
        assert not reader.park_now()
        b.send(b"x")
        assert reader.recv(10) == b"x"  # bytes there: no wait
        started = time.monotonic()
        with pytest.raises(BlockingIOError):
            reader.recv(10)
        assert time.monotonic() - started >= threading_driver.PARK_AFTER * 0.9
        reader.keep_reading()  # parking is off for good (e.g. after a handover)
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == bytes(16)
        threading.Timer(threading_driver.PARK_AFTER * 3, b.send, (b"y",)).start()
        assert reader.recv(10) == b"y"  # waited past PARK_AFTER
        reader.close()
    finally:
        a.close()
        b.close()


def test_a_closed_threading_reader_leaves_the_next_owner_of_its_fd_alone() -> None:
    """A connection's reader is closed once by whoever closes the socket, and again
    by the reading itself when it ends. The fd number is reused at once (a client
    that reconnects): the late close must not cancel the new connection's parking,
    or the new connection is never read again (its bytes wait in the socket)."""
    import os
    import socket

    driver = ThreadingDriver()
    a, a_peer = socket.socketpair()
    b, b_peer = socket.socketpair()
    try:
        old = driver.socket_reader(a)
        assert old is not None
        fd = a.fileno()
        old.close()  # the connection's close_socket: first, then the socket
        a.close()
        os.dup2(b.fileno(), fd)  # the next connection gets the same fd number
        reused = socket.socket(fileno=fd)
        new = driver.socket_reader(reused)
        assert new is not None
        woken = threading.Event()
        assert new.when_readable(woken.set)
        old.close()  # the old reading ends late: nothing of the new one may go
        b_peer.send(b"x")
        assert woken.wait(5), "the new connection's parking was cancelled"
        assert not old.when_readable(lambda: None)  # closed for good
        new.close()
        reused.close()
    finally:
        for sock in (a, a_peer, b, b_peer):
            sock.close()


_EVENTLET_BATCH_SCRIPT = """
import json
import eventlet
from eventlet import hubs
from sio_wsgi.runtime.eventlet_driver import EventletDriver

driver = EventletDriver()
hub = hubs.get_hub()
timers = []
original = hub.schedule_call_global
def counting(seconds, fn, *args, **kw):
    timers.append(getattr(fn, "__name__", fn))
    return original(seconds, fn, *args, **kw)
hub.schedule_call_global = counting

order = []
def job(i):
    order.append(i)
    if i == 3:  # submitted while its batch runs: waits for the next batch
        driver.submit(job, 100)

for i in range(10):
    driver.submit(job, i)
batch = timers.count("_run_soon")
driver._schedule(lambda arg: 1 / 0, None)  # a failing call: logged, the rest go on
driver.submit(job, 10)
eventlet.sleep(0.05)
print(json.dumps([batch, timers.count("_run_soon"), order, driver._armed, len(driver._soon)]))
"""


def test_eventlet_hub_calls_are_batched_under_one_timer() -> None:
    """eventlet: the pool's hub callbacks share one zero-delay timer per batch, run in
    order; a call made while a batch runs goes to the next batch; a failing call is
    logged and the others still run."""
    result = run_python(_EVENTLET_BATCH_SCRIPT)
    assert result.returncode == 0, result.stderr
    batch, total, order, armed, left = json.loads(result.stdout)
    assert batch == 1, result.stdout  # ten submits, one timer
    # 10 (and the failing call) joined the first batch before the hub ran it; 100,
    # submitted by job 3 as the batch ran, had a batch of its own after it
    assert order == [*range(11), 100], result.stdout
    assert total == 2, result.stdout
    assert armed is False and left == 0, result.stdout
    assert "a scheduled call failed" in result.stderr and "ZeroDivisionError" in result.stderr
