"""Processes for the multi-node tests: gunicorn nodes, a private redis-server, nginx, clients.

Everything binds 127.0.0.1 on free ports, every wait is bounded, and every
process (gunicorn masters *and* workers, redis-server, nginx, node) is killed by
PID when the test ends (each server is a :class:`tests.support.ServerProcess`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support import HOST, ServerProcess, free_port, port_open, skip_or_fail, wait_until

__all__ = [
    "AMQP_URL",
    "BROKERS",
    "HERE",
    "REDIS_URL",
    "WORKERS",
    "Cluster",
    "ClusterFactory",
    "Nginx",
    "Node",
    "PyClient",
    "RabbitServer",
    "RedisServer",
    "broker_url",
    "running",
]

HERE = Path(__file__).resolve().parent

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: the shared brokers: ``name -> (url, port)``
BROKERS = {"redis": (REDIS_URL, 6379), "kombu": (AMQP_URL, 5672)}

#: gunicorn worker classes, one per async mode the listener must work in
WORKERS = {
    "gevent": ["-k", "gevent"],
    "threading": ["-k", "gthread", "--threads", "8"],
    "eventlet": ["-k", "sio_wsgi.gunicorn.EventletWorker"],
}


def broker_url(broker: str) -> str:
    """The shared broker's URL; skips (fails under CI) when it is not running.

    :param broker: ``redis`` or ``kombu``.
    """
    url, port = BROKERS[broker]
    if not port_open(port):
        skip_or_fail(f"{broker} broker not running on 127.0.0.1:{port}")
    return url


def _gunicorn_extra() -> list[str]:
    import gunicorn.config

    names = (getattr(c, "name", None) for c in vars(gunicorn.config).values())
    return ["--no-control-socket"] if "control_socket_disable" in names else []


class Node(ServerProcess):
    """One gunicorn master running :attr:`app` in :attr:`processes` workers (one by
    default), ready once ``/health`` answers.

    :param name: node name.
    :param broker: ``redis`` or ``kombu``.
    :param bus_url: broker URL.
    :param channel: bus channel.
    :param worker: a key of :data:`WORKERS`.
    :param log_dir: where the log goes.
    """

    #: the WSGI application gunicorn serves (a module of tests/multinode)
    app = "node_app:app"
    #: more environment for :attr:`app`
    app_env: dict[str, str] = {}
    #: gunicorn workers (``-w``); each is a process of its own on the bus
    processes = 1

    def __init__(
        self, name: str, broker: str, bus_url: str, channel: str, worker: str, log_dir: Path
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"{HOST}:{{port}}",
            "-w",
            str(self.processes),
            *WORKERS[worker],
            "--graceful-timeout",
            "2",
            "--timeout",
            "60",
            "--log-level",
            "warning",
            *_gunicorn_extra(),
            "--pythonpath",
            str(HERE),
            self.app,
        ]
        env = {
            "MN_BROKER": broker,
            "MN_URL": bus_url,
            "MN_CHANNEL": channel,
            "MN_NAME": name,
            **self.app_env,
        }
        super().__init__(
            argv,
            log_dir / f"{name}.log",
            cwd=HERE,
            env=env,
            pythonpath=[HERE],
            name=name,
            start_timeout=20,
        )
        self.broker, self.bus_url, self.channel, self.worker = broker, bus_url, channel, worker

    def health(self) -> dict[str, Any] | None:
        """:returns: the node's ``/health`` JSON, or None when it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))
        except (OSError, ValueError):
            return None


class Cluster:
    """Several :class:`Node` s on one bus channel.

    :param broker: ``redis`` or ``kombu``.
    :param url: broker URL.
    :param log_dir: log directory.
    :param workers: one :data:`WORKERS` key per node.
    :param node_class: :class:`Node` or a subclass.
    """

    def __init__(
        self,
        broker: str,
        url: str,
        log_dir: Path,
        workers: list[str],
        node_class: type[Node] = Node,
    ) -> None:
        self.channel = f"mn-{os.getpid()}-{free_port()}"
        self.nodes = [
            node_class(f"n{i}", broker, url, self.channel, worker, log_dir)
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
        """Wait until every node is connected and knows every other node's processes
        (the worker that answers a node's ``/health`` hears all the others).

        :param timeout: seconds.
        :returns: seconds it took.
        """
        start = time.monotonic()
        others = sum(node.processes for node in self.nodes) - 1

        def ready() -> bool:
            healths = [node.health() for node in self.nodes]
            return all(h and h["connected"] and len(h["nodes"]) >= others for h in healths)

        try:
            wait_until(ready, timeout, "cluster healthy", interval=0.05)
        except AssertionError:
            raise AssertionError(self.dump()) from None
        return time.monotonic() - start

    def client(self, index: int, **kwargs: Any) -> PyClient:
        """Connect a python-socketio client to node ``index``.

        :param index: node index.
        :param kwargs: :class:`PyClient` options.
        """
        client = PyClient(self.nodes[index].url, **kwargs)
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


#: ``make_cluster(broker, workers=[...], url=None)``, the fixture of tests/multinode/conftest.py
ClusterFactory = Callable[..., Cluster]


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


class RedisServer(ServerProcess):
    """A private ``redis-server`` on a free port, restartable on the same port.

    :param log_dir: where its log goes.
    :param persistent: keep its data in an append-only file in ``log_dir`` (written at
        every command): a restart then keeps what it held.
    """

    def __init__(self, log_dir: Path, persistent: bool = False) -> None:
        self.binary = shutil.which("redis-server")
        argv = [
            self.binary or "redis-server",
            "--port",
            "{port}",
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        if persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(log_dir)]
        # up to 20 starts: right after a kill the port may still be held
        super().__init__(argv, log_dir / "redis.log", health=None, attempts=20, start_timeout=10)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) on the same port and wait until it accepts connections."""
        assert self.binary is not None
        super().start()


class RabbitServer(ServerProcess):
    """A private RabbitMQ node (the Debian package) on free ports, its data in
    ``workdir``, restartable on the same port: a real broker restart that leaves the
    machine's own RabbitMQ alone. Runs as the ``rabbitmq`` user (the tests run as root).

    :param log_dir: where its output goes (its data and configuration are in a
        directory of its own under /tmp, which the ``rabbitmq`` user can reach, removed
        with this object).
    """

    def __init__(self, log_dir: Path) -> None:
        script = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        self.binary = str(script) if script.exists() else None
        if os.geteuid() != 0:
            skip_or_fail("a private RabbitMQ node runs as the rabbitmq user: needs root")
        if self.binary is None:
            skip_or_fail("rabbitmq-server is not installed")
        import pwd

        account = pwd.getpwnam("rabbitmq")
        workdir = Path(tempfile.mkdtemp(prefix="sio-rabbitmq-"))
        weakref.finalize(self, shutil.rmtree, workdir, True)
        port = free_port()
        (workdir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = {HOST}:{port}\n")
        (workdir / "enabled_plugins").write_text("[].\n")
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        env = {
            "HOME": account.pw_dir,  # its Erlang cookie
            "RABBITMQ_NODENAME": f"siotest{port}@localhost",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
        }
        super().__init__(
            [self.binary],
            log_dir / "rabbitmq.log",
            port=port,
            health=None,
            cwd=workdir,
            env=env,
            user="rabbitmq",
            attempts=3,
            start_timeout=60,
            stop_timeout=30,
        )

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>//``."""
        return f"amqp://guest:guest@{HOST}:{self.port}//"


class Nginx(ServerProcess):
    """nginx (the Debian package) started with a generated config on a free port.

    :param upstreams: ``host:port`` of the nodes.
    :param workdir: directory for the config, temp paths, pid and logs.
    :param balance: the upstream's balancing directive (``ip_hash;``).
    :param server_extra: more directives for the ``server`` block.
    """

    def __init__(
        self,
        upstreams: list[str],
        workdir: Path,
        balance: str = "ip_hash;",
        server_extra: str = "",
    ) -> None:
        self.binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
        )
        conf = workdir / "nginx.conf"
        argv = [
            self.binary or "nginx",
            "-p",
            str(workdir),
            "-e",
            str(workdir / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
        ]
        super().__init__(argv, workdir / "stderr.log", health=None, start_timeout=10)
        self.workdir = workdir
        self.upstreams = upstreams
        self.balance = balance
        self.server_extra = server_extra

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
        (self.workdir / "nginx.conf").write_text(self.config())
        super().start()


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
