"""HAProxy in front of cookie-setting nodes, for the sticky-by-cookie tests.

- :class:`CookieNode`: a :class:`~tests.multinode.mn_support.Node` running
  ``cookie_node_app`` (the test node with ``cookie="io"``).
- :class:`HAProxy`: the Debian ``haproxy`` started in the foreground (``-db``)
  with a generated config on a free port, killed by PID (a
  :class:`tests.support.ServerProcess`). ``sticky=True`` is the
  configuration docs/multinode.md shows (``cookie io prefix nocache``);
  ``sticky=False`` is the same balancer with plain ``roundrobin``, the control.
  Every request is logged to the process's stdout in a fixed format that
  :func:`parse_log` reads back (server, status, cookie flags, URI).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.multinode.mn_support import Cluster, Node
from tests.support import HOST, ServerProcess

__all__ = [
    "CookieNode",
    "HAProxy",
    "LogLine",
    "cookie_cluster",
    "haproxy_binary",
    "parse_log",
]

#: request log format: one line per request, read back by :func:`parse_log`
LOG_FORMAT = "sio srv=%s st=%ST tsc=%tsc m=%HM u=%HU"
_LINE = re.compile(
    r"sio srv=(?P<server>\S+) st=(?P<status>-?\d+) tsc=(?P<flags>\S{4}) m=(?P<method>\S+)"
    r" u=(?P<uri>\S+)"
)


def haproxy_binary() -> str | None:
    """:returns: the path of ``haproxy`` (PATH or /usr/sbin), or None."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None


class CookieNode(Node):
    """A gunicorn node serving ``cookie_node_app:app`` (sets the ``io`` cookie)."""

    app = "cookie_node_app:app"
    app_env = {"MN_COOKIE": "io"}

    def log_size(self) -> int:
        """:returns: the log's current size (to read only what comes after)."""
        with contextlib.suppress(OSError):
            return self.log_path.stat().st_size
        return 0

    def log_since(self, offset: int) -> str:
        """:param offset: a :meth:`log_size` taken earlier.
        :returns: the log written since then.
        """
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
        return ""


def cookie_cluster(url: str, log_dir: Path, workers: list[str]) -> Cluster:
    """A Redis-backed :class:`Cluster` of :class:`CookieNode` s (not started).

    :param url: the Redis URL.
    :param log_dir: node log directory.
    :param workers: one :data:`~tests.multinode.mn_support.WORKERS` key per node.
    """
    return Cluster("redis", url, log_dir, workers, node_class=CookieNode)


@dataclasses.dataclass(frozen=True)
class LogLine:
    """One request as HAProxy logged it.

    :param server: the server that got it (``<NOSRV>`` when none).
    :param status: HTTP status (101 for a WebSocket upgrade).
    :param flags: ``%tsc``: termination cause, state, request cookie, response cookie.
    :param method: HTTP method.
    :param uri: path and query.
    """

    server: str
    status: int
    flags: str
    method: str
    uri: str

    @property
    def sid(self) -> str | None:
        """The Engine.IO ``sid`` of the query string (None on a handshake)."""
        values = parse_qs(urlsplit(self.uri).query).get("sid")
        return values[0] if values else None

    @property
    def transport(self) -> str | None:
        """The ``transport`` of the query string."""
        values = parse_qs(urlsplit(self.uri).query).get("transport")
        return values[0] if values else None

    @property
    def request_cookie(self) -> str:
        """Persistence cookie seen on the request: ``V`` valid, ``N`` none, ``I`` invalid..."""
        return self.flags[2]


def parse_log(text: str) -> list[LogLine]:
    """:param text: HAProxy's stdout.
    :returns: the request lines of the ``/socket.io/`` path.
    """
    found = (_LINE.search(line) for line in text.splitlines())
    lines = [
        LogLine(m["server"], int(m["status"]), m["flags"], m["method"], m["uri"])
        for m in found
        if m is not None
    ]
    return [line for line in lines if line.uri.startswith("/socket.io/")]


class HAProxy(ServerProcess):
    """HAProxy with a generated config in ``workdir``, on a free port.

    :param servers: ``(name, port)`` of each node on 127.0.0.1.
    :param workdir: for ``haproxy.cfg`` and ``haproxy.log``.
    :param sticky: ``cookie io prefix nocache`` (True) or plain ``roundrobin`` (False).
    """

    def __init__(self, servers: list[tuple[str, int]], workdir: Path, sticky: bool = True) -> None:
        self.binary = haproxy_binary()
        self.conf = workdir / "haproxy.cfg"
        argv = [self.binary or "haproxy", "-db", "-f", str(self.conf)]
        super().__init__(argv, workdir / "haproxy.log", health=None, start_timeout=10)
        self.servers = servers
        self.workdir = workdir
        self.sticky = sticky

    def config(self) -> str:
        """:returns: the haproxy.cfg text (the backend is the one docs/multinode.md shows)."""
        persist = "    cookie io prefix nocache\n" if self.sticky else ""
        servers = "\n".join(
            f"    server {name} {HOST}:{port} check inter 1s"
            + (f" cookie {name}" if self.sticky else "")
            for name, port in self.servers
        )
        return f"""
global
    log stdout format raw local0 info
    maxconn 512
    nbthread 1

defaults
    mode http
    log global
    option dontlognull      # no line for a bare TCP probe
    log-format "{LOG_FORMAT}"
    timeout connect 5s
    timeout client 30s      # > pingInterval + pingTimeout: a long-poll may idle that long
    timeout server 30s
    timeout tunnel 60s      # a WebSocket after its 101 (use 1h in production)

frontend socketio
    bind {HOST}:{self.port}
    default_backend socketio_nodes

backend socketio_nodes
    balance roundrobin
{persist}    option httpchk GET /health
{servers}
"""

    def start(self) -> None:
        """Check and write the config, start ``haproxy -db``, wait for the port."""
        assert self.binary is not None
        self.conf.write_text(self.config())
        checked = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.conf)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy -c failed:\n{checked.stdout}{checked.stderr}")
        super().start()

    def requests(self, settle: float = 0.3, timeout: float = 5.0) -> list[LogLine]:
        """The logged ``/socket.io/`` requests, once the log stopped growing.

        A request is logged when it ends (a WebSocket when its tunnel closes).

        :param settle: seconds without growth that count as settled.
        :param timeout: most seconds to wait.
        """
        deadline = time.monotonic() + timeout
        size = -1
        while time.monotonic() < deadline:
            now = len(self.log_text())
            if now == size:
                break
            size = now
            time.sleep(settle)
        return parse_log(self.log_text())
