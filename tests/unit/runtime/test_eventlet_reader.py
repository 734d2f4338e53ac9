"""EventletReader: one hub listener kept across waits, and what removes it."""

from __future__ import annotations

from tests.support import run_python

_SCRIPT = """
import eventlet
eventlet.monkey_patch()
import socket
from eventlet import hubs
from eventlet.greenio import GreenSocket
from sio_wsgi.runtime.eventlet_driver import EventletDriver

driver = EventletDriver()
hub = hubs.get_hub()
adds = []
original_add = hub.add
def counting_add(evtype, fileno, *rest):
    adds.append((evtype, fileno))
    return original_add(evtype, fileno, *rest)
hub.add = counting_add

def pair():
    a, b = socket.socketpair()  # green sockets
    return a, b, driver.socket_reader(a)

def listening(fd):
    return fd in hub.listeners[hub.READ]

# green sockets around green sockets (socketpair(), accept() on a listener made
# before patching): the OS socket under them all
c, d = socket.socketpair()
wrapped = GreenSocket(c)  # (closes c once collected)
raw = driver.raw_socket(wrapped)
assert not isinstance(raw, GreenSocket) and raw.fileno() == c.fileno(), raw
a, b, reader = pair()
assert driver.socket_reader(object()) is None

# many messages, each one waited for: one listener all along
got = []
def read(n):
    for _ in range(n):
        reader.wait()
        got.append(reader.recv(100))
gt = eventlet.spawn(read, 20)
for i in range(20):
    eventlet.sleep(0.001)
    b.send(b"m%d" % i)
gt.wait()
fd = a.fileno()
assert got == [b"m%d" % i for i in range(20)], got
assert adds.count(("read", fd)) == 1, adds
assert listening(fd)

# readable while the reader is elsewhere: the listener goes (no busy hub), the next wait adds it
b.send(b"x")
eventlet.sleep(0.01)
assert not listening(fd)
assert reader.recv(100) == b"x"
gt = eventlet.spawn(reader.recv, 100)
eventlet.sleep(0.01)
assert listening(fd)
b.send(b"y")
assert gt.wait() == b"y"

# close() wakes a parked reader with OSError and removes the listener
def parked():
    try:
        reader.recv(100)
    except OSError as exc:
        return "closed"
    return "read"
gt = eventlet.spawn(parked)
eventlet.sleep(0.01)
reader.close()
assert not listening(fd)
assert gt.wait() == "closed"
a.close()
reader.close()  # again: nothing
try:
    reader.wait()
except OSError:
    pass
else:
    raise AssertionError("wait() after close()")

# a closed and reused fd (eventlet's notify_opened): the parked reader gets an OSError
a, b, reader = pair()
gt = eventlet.spawn(parked)
eventlet.sleep(0.01)
hubs.notify_opened(a.fileno())
eventlet.sleep(0.01)  # the hub acts on it when its loop comes round
assert gt.wait() == "closed"
assert not listening(a.fileno())

# close() from another OS thread runs in the hub's thread
import threading
real_thread = eventlet.patcher.original("threading")
a, b, reader = pair()
gt = eventlet.spawn(parked)
eventlet.sleep(0.01)
t = real_thread.Thread(target=reader.close)
t.start()
t.join()
assert gt.wait() == "closed"
assert not listening(a.fileno())
print("ok")
"""


def test_eventlet_reader_keeps_one_listener_and_lets_go() -> None:
    result = run_python(_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", result.stdout + result.stderr
