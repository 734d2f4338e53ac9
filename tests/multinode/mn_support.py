"""Processes for the multi-node tests: gunicorn nodes, a private redis-server, nginx, clients.

Everything binds 127.0.0.1 on free ports, every wait is bounded, and every
process (gunicorn masters *and* workers, redis-server, nginx, node) is killed by
PID when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support import free_port, in_ci, skip_or_fail  # noqa: F401 (re-exported)

__all__ = [
    "HERE",
    "ROOT",
    "WORKERS",
    "Node",
    "Cluster",
    "PyClient",
    "RedisServer",
    "Nginx",
    "free_port",
    "port_open",
    "skip_or_fail",
    "wait_until",
    "kill_tree",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HOST = "127.0.0.1"

#: gunicorn worker classes, one per async mode the listener must work in
WORKERS = {
    "gevent": ["-k", "gevent"],
    "threading": ["-k", "gthread", "--threads", "8"],
    "eventlet": ["-k", "sio_wsgi.gunicorn.EventletWorker"],
}








def port_open(port: int, host: str = HOST) -> bool:
    """:returns: whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll ``predicate`` (every 50 ms) until truthy.

    :param predicate: the condition.
    :param timeout: seconds.
    :param what: for the failure message.
    :returns: the truthy value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(x) for x in f.read().split())
    return found


def kill_tree(proc: subprocess.Popen[Any], timeout: float = 3.0) -> None:
    """SIGTERM a process and its children by PID, then SIGKILL what is left.

    :param proc: the process.
    :param timeout: seconds to wait after SIGTERM.
    """
    if proc.poll() is not None:
        return
    pids = [*_children(proc.pid), proc.pid]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)


def _gunicorn_extra() -> list[str]:
    import gunicorn.config

    names = (getattr(c, "name", None) for c in vars(gunicorn.config).values())
    return ["--no-control-socket"] if "control_socket_disable" in names else []


class Node:
    """One gunicorn process (one worker) running ``node_app:app``.

    :param name: node name.
    :param broker: ``redis`` or ``kombu``.
    :param url: broker URL.
    :param channel: bus channel.
    :param worker: a key of :data:`WORKERS`.
    :param log_dir: where the log goes.
    """

    def __init__(
        self, name: str, broker: str, url: str, channel: str, worker: str, log_dir: Path
    ) -> None:
        self.name, self.broker, self.url, self.channel, self.worker = (
            name, broker, url, channel, worker,
        )  # fmt: skip
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url_base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start gunicorn and wait until ``/health`` answers."""
        cmd = [
            sys.executable, "-m", "gunicorn", "-b", f"{HOST}:{self.port}", "-w", "1",
            *WORKERS[self.worker], "--graceful-timeout", "2", "--timeout", "60",
            "--log-level", "warning", *_gunicorn_extra(), "--pythonpath", str(HERE),
            "node_app:app",
        ]  # fmt: skip
        env = dict(
            os.environ, MN_BROKER=self.broker, MN_URL=self.url, MN_CHANNEL=self.channel,
            MN_NAME=self.name, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
        )  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=str(HERE),
            )  # fmt: skip
        wait_until(lambda: self.health() is not None or self._dead(), 20, f"{self.name} up")
        if self._dead():
            raise RuntimeError(f"{self.name} died:\n{self.log_tail()}")

    def _dead(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def health(self) -> dict[str, Any] | None:
        """:returns: the node's ``/health`` JSON, or None when it does not answer."""
        try:
            with urllib.request.urlopen(self.url_base + "/health", timeout=2) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Kill gunicorn and its worker by PID."""
        if self.proc is not None:
            kill_tree(self.proc)

    def log_tail(self, n: int = 80) -> str:
        """:returns: the last ``n`` lines of the log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""


class Cluster:
    """Several :class:`Node` s on one bus channel.

    :param broker: ``redis`` or ``kombu``.
    :param url: broker URL.
    :param log_dir: log directory.
    :param workers: one :data:`WORKERS` key per node.
    """

    def __init__(self, broker: str, url: str, log_dir: Path, workers: list[str]) -> None:
        self.channel = f"mn-{os.getpid()}-{free_port()}"
        self.nodes = [
            Node(f"n{i}", broker, url, self.channel, worker, log_dir)
            for i, worker in enumerate(workers)
        ]
        self.clients: list[PyClient] = []

    def start(self) -> Cluster:
        """Start every node and wait until each sees all the others on the bus."""
        for node in self.nodes:
            node.start()
        self.wait_healthy(30)
        return self

    def wait_healthy(self, timeout: float) -> float:
        """Wait until every node is connected and knows every other node.

        :param timeout: seconds.
        :returns: seconds it took.
        """
        start = time.monotonic()
        others = len(self.nodes) - 1

        def ready() -> bool:
            healths = [node.health() for node in self.nodes]
            return all(h and h["connected"] and len(h["nodes"]) >= others for h in healths)

        try:
            wait_until(ready, timeout, "cluster healthy")
        except AssertionError:
            raise AssertionError(self.dump()) from None
        return time.monotonic() - start

    def client(self, index: int, **kwargs: Any) -> PyClient:
        """Connect a python-socketio client to node ``index``.

        :param index: node index.
        :param kwargs: :class:`PyClient` options.
        """
        client = PyClient(self.nodes[index].url_base, **kwargs)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        """Disconnect the clients and kill every node."""
        for client in self.clients:
            client.close()
        for node in self.nodes:
            node.stop()

    def dump(self) -> str:
        """:returns: every node's health and log tail, for failure messages."""
        return "\n".join(
            f"--- {n.name} ({n.worker}) health={n.health()}\n{n.log_tail(40)}" for n in self.nodes
        )


class PyClient:
    """A python-socketio client recording every event it receives.

    :param url: server URL.
    :param transports: client transports.
    :param answer: the ack returned for ``question`` events.
    """

    def __init__(self, url: str, transports: list[str] | None = None, answer: Any = "fine") -> None:
        import socketio  # the reference client, used as a peer only

        self.events: queue.Queue[tuple[str, list[Any]]] = queue.Queue()
        self.seen: list[tuple[str, list[Any]]] = []
        self.sio = socketio.Client(reconnection=False)
        self.answer = answer

        @self.sio.on("*")
        def catch_all(event: str, *args: Any) -> None:
            self.events.put((event, list(args)))

        @self.sio.on("question")
        def question(*args: Any) -> Any:
            self.events.put(("question", list(args)))
            return self.answer

        self.sio.connect(url, transports=transports or ["websocket"], wait_timeout=10)
        welcome = self.wait("welcome")
        self.sid: str = welcome[0]["sid"]
        self.node: str = welcome[0]["node"]

    def call(self, event: str, *args: Any, timeout: float = 10) -> Any:
        """Emit and wait for the ack.

        :param event: event name.
        :param args: arguments.
        :param timeout: seconds.
        """
        return self.sio.call(event, tuple(args), timeout=timeout)

    def wait(
        self, event: str, timeout: float = 5.0, where: Callable[[list[Any]], bool] | None = None
    ) -> list[Any]:
        """Wait for ``event`` (already received or to come).

        :param event: event name.
        :param timeout: seconds.
        :param where: extra condition on the arguments.
        :returns: the event's arguments.
        """
        for name, args in self.seen:
            if name == event and (where is None or where(args)):
                self.seen.remove((name, args))
                return args
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event!r} within {timeout}s; got {self.seen}")
            try:
                name, args = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if name == event and (where is None or where(args)):
                return args
            self.seen.append((name, args))

    def quiet(
        self, event: str, wait: float = 0.5, where: Callable[[list[Any]], bool] | None = None
    ) -> bool:
        """:returns: True when no ``event`` (matching ``where``) arrives within ``wait`` s."""
        try:
            self.wait(event, wait, where)
        except AssertionError:
            return True
        return False

    def close(self) -> None:
        """Disconnect (errors ignored)."""
        with contextlib.suppress(Exception):
            self.sio.disconnect()


class RedisServer:
    """A private ``redis-server`` on a free port, restartable on the same port.

    :param log_dir: where its log goes.
    """

    def __init__(self, log_dir: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.log_path = log_dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) on the same port and wait until it accepts connections."""
        assert self.binary is not None
        cmd = [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
               "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        for _ in range(20):
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            with contextlib.suppress(AssertionError):
                wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 10)
            if self.proc.poll() is None and port_open(self.port):
                return
            time.sleep(0.2)  # the port may still be held right after a kill
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL the server by PID (a crash, not a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """Kill the server by PID for good."""
        self.kill()


class Nginx:
    """nginx (the Debian package) started with a generated config on a free port.

    :param upstreams: ``host:port`` of the nodes.
    :param workdir: directory for the config, temp paths, pid and logs.
    :param balance: the upstream's balancing directive (``ip_hash;``).
    :param server_extra: more directives for the ``server`` block.
    """

    def __init__(
        self, upstreams: list[str], workdir: Path, balance: str = "ip_hash;",
        server_extra: str = "",
    ) -> None:  # fmt: skip
        self.binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
        )
        self.port = free_port()
        self.workdir = workdir
        self.upstreams = upstreams
        self.balance = balance
        self.server_extra = server_extra
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """:returns: the nginx.conf text (the one docs/multinode.md shows, plus temp paths)."""
        w = self.workdir
        servers = "\n".join(f"        server {u};" for u in self.upstreams)
        return f"""
worker_processes 1;
error_log {w}/error.log warn;
pid {w}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;

    upstream socketio_nodes {{
        {self.balance}
{servers}
    }}

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    server {{
        listen {HOST}:{self.port};
{self.server_extra}

        location /socket.io/ {{
            proxy_pass http://socketio_nodes;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""

    def start(self) -> None:
        """Write the config and start ``nginx -g 'daemon off;'``; wait for the port."""
        assert self.binary is not None
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        log = open(self.workdir / "stderr.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
             "-c", str(conf), "-g", "daemon off;"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        try:
            wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 10, "nginx")
        finally:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "stderr.log").read_text(errors="replace"))

    def stop(self) -> None:
        """Kill nginx (master and worker) by PID."""
        if self.proc is not None:
            kill_tree(self.proc)


@contextlib.contextmanager
def running(*things: Any) -> Iterator[None]:
    """Stop every thing (``.stop()``) on exit, whatever happens.

    :param things: objects with ``stop()``.
    """
    try:
        yield
    finally:
        for thing in things:
            with contextlib.suppress(Exception):
                thing.stop()
