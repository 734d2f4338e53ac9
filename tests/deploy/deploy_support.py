"""Start real WSGI servers in subprocesses for the deployment tests.

Every server binds 127.0.0.1 on a free port, writes its output to a log file,
and is stopped by PID (SIGTERM, then SIGKILL), gunicorn workers included.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support import HOST, ServerProcess

__all__ = [
    "DEPLOY_DIR",
    "SERVER_KINDS",
    "DeployServer",
    "recv_until",
    "running_server",
    "ERROR_PATTERN",
]

DEPLOY_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 8.0

#: What a server prints when it failed on a request (as opposed to a client going away).
ERROR_PATTERN = re.compile(
    r"Traceback|\[ERROR\]|Error on request|Error handling request|Socket error|"
    r"Exception in|Unhandled|AssertionError"
)

_GUNICORN_WORKERS = {
    "gunicorn-gthread": ["-k", "gthread", "--threads", "4"],
    "gunicorn-gevent": ["-k", "gevent"],
    # SIO_GUNICORN_EVENTLET_WORKER=eventlet checks gunicorn<26's own worker instead
    "gunicorn-eventlet": [
        "-k",
        os.environ.get("SIO_GUNICORN_EVENTLET_WORKER", "sio_wsgi.gunicorn.EventletWorker"),
    ],
    "gunicorn-gevent-pywsgi": ["-k", "gevent_pywsgi"],
    "gunicorn-sync": ["-k", "sync"],
}
_PLAIN_SERVERS = ("werkzeug", "eventlet", "gevent", "wsgiref")

#: Every server kind :func:`running_server` can start.
SERVER_KINDS = (*_GUNICORN_WORKERS, *_PLAIN_SERVERS)


def _gunicorn_extra() -> list[str]:
    """``--no-control-socket`` where gunicorn has one (27+): no file under ~/.gunicorn."""
    import gunicorn.config

    settings = (getattr(c, "name", None) for c in vars(gunicorn.config).values())
    return ["--no-control-socket"] if "control_socket_disable" in settings else []


def _command(kind: str, app: str, extra_args: list[str]) -> list[str]:
    if kind in _GUNICORN_WORKERS:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"{HOST}:{{port}}",
            "-w",
            "1",
            *_GUNICORN_WORKERS[kind],
            "--graceful-timeout",
            "3",
            "--timeout",
            "60",
            "--keep-alive",
            "5",
            "--log-level",
            "info",
            "--access-logfile",
            "-",
            *_gunicorn_extra(),
            "--pythonpath",
            str(DEPLOY_DIR),
            *extra_args,
            app,
        ]
    return [sys.executable, str(DEPLOY_DIR / "run_server.py"), kind, "{port}", app, *extra_args]


class DeployServer(ServerProcess):
    """A WSGI server of one kind serving an app of tests/deploy (a :class:`ServerProcess`,
    ready once its port accepts connections; gunicorn workers are stopped with it).

    :param kind: one of :data:`SERVER_KINDS`.
    :param app: the application spec (``module:attr`` under tests/deploy).
    :param log_path: file receiving its output.
    :param env: extra environment variables.
    :param extra_args: extra command-line arguments (gunicorn options).
    """

    def __init__(
        self,
        kind: str,
        app: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        super().__init__(
            _command(kind, app, list(extra_args or ())),
            log_path,
            health=None,
            cwd=DEPLOY_DIR,
            env={"PYTHONUNBUFFERED": "1", **(env or {})},
            pythonpath=[DEPLOY_DIR],
            name=kind,
            start_timeout=START_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
        )
        self.kind = kind

    def errors(self) -> list[str]:
        """Lines of the log that report a server-side failure.

        :returns: the offending lines.
        """
        return [line for line in self.log_text().splitlines() if ERROR_PATTERN.search(line)]


@contextlib.contextmanager
def running_server(
    kind: str, app: str, env: dict[str, str] | None = None, extra_args: list[str] | None = None
) -> Iterator[DeployServer]:
    """Start ``app`` with server ``kind``; always stop it (and delete its log) afterwards.

    :param kind: one of :data:`SERVER_KINDS`.
    :param app: the application spec (``module:attr`` under tests/deploy).
    :param env: extra environment variables.
    :param extra_args: extra command-line arguments (gunicorn options).
    :returns: the running, listening server.
    """
    fd, name = tempfile.mkstemp(prefix=f"sio-{kind}-", suffix=".log")
    os.close(fd)
    server = DeployServer(kind, app, Path(name), env, extra_args)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            server.log_path.unlink()


def recv_until(sock: socket.socket, predicate: object, limit: int = 1 << 22) -> bytes:
    """Read from ``sock`` until ``predicate(data)`` is true or EOF (bounded).

    :param sock: a socket with a timeout.
    :param predicate: ``Callable[[bytes], bool]``.
    :param limit: give up past this many bytes.
    :returns: everything read.
    """
    data = b""
    check = predicate if callable(predicate) else (lambda d: False)
    while not check(data) and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
