"""Start real WSGI servers in subprocesses for the deployment tests.

Every server binds 127.0.0.1 on a free port, writes its output to a log file,
and is stopped by PID (SIGTERM, then SIGKILL), gunicorn workers included.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

__all__ = [
    "DEPLOY_DIR",
    "ROOT",
    "SERVER_KINDS",
    "ServerProcess",
    "free_port",
    "recv_until",
    "running_server",
    "ERROR_PATTERN",
]

DEPLOY_DIR = Path(__file__).resolve().parent
ROOT = DEPLOY_DIR.parent.parent
HOST = "127.0.0.1"
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


def _command(kind: str, port: int, app: str, extra_args: list[str]) -> list[str]:
    if kind in _GUNICORN_WORKERS:
        return [
            sys.executable, "-m", "gunicorn",
            "-b", f"{HOST}:{port}", "-w", "1",
            *_GUNICORN_WORKERS[kind],
            "--graceful-timeout", "3", "--timeout", "60", "--keep-alive", "5",
            "--log-level", "info", "--access-logfile", "-", *_gunicorn_extra(),
            "--pythonpath", str(DEPLOY_DIR), *extra_args, app,
        ]  # fmt: skip
    return [sys.executable, str(DEPLOY_DIR / "run_server.py"), kind, str(port), app, *extra_args]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc), for gunicorn's workers."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(x) for x in f.read().split())
    return found


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"
    return True


@dataclass
class ServerProcess:
    """One server subprocess and its log."""

    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    workers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        """The server output so far.

        :returns: stdout and stderr, interleaved.
        """
        return self.log_path.read_text(errors="replace")

    def errors(self) -> list[str]:
        """Lines of the log that report a server-side failure.

        :returns: the offending lines.
        """
        return [line for line in self.log().splitlines() if ERROR_PATTERN.search(line)]

    def wait_ready(self) -> None:
        """Wait until the port accepts connections (bounded).

        :raises RuntimeError: if the server exits or does not listen in time.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                self.workers = _children(self.proc.pid)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not listen within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM the server (and its workers), SIGKILL what is left.

        :returns: the exit status, or None if it had to be killed.
        """
        pids = [self.proc.pid, *self.workers, *_children(self.proc.pid)]
        _kill(self.proc.pid, signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
            code = None
        deadline = time.monotonic() + STOP_TIMEOUT
        for pid in pids[1:]:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                _kill(pid, signal.SIGKILL)
        return code


def start_server(
    kind: str, app: str, env: dict[str, str] | None = None, extra_args: list[str] | None = None
) -> ServerProcess:
    """Start ``app`` (``module:attr`` under tests/deploy) with server ``kind``.

    :param kind: one of :data:`SERVER_KINDS`.
    :param app: the application spec.
    :param env: extra environment variables.
    :param extra_args: extra command-line arguments (gunicorn options).
    :returns: the running, listening server.
    """
    port = free_port()
    fd, name = tempfile.mkstemp(prefix=f"sio-{kind}-", suffix=".log")
    environ = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(DEPLOY_DIR), environ.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.Popen(
        _command(kind, port, app, list(extra_args or ())),
        stdout=fd,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=str(DEPLOY_DIR),
        env=environ,
    )
    os.close(fd)
    server = ServerProcess(kind, port, proc, Path(name))
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        with contextlib.suppress(OSError):
            server.log_path.unlink()
        raise
    return server


@contextlib.contextmanager
def running_server(
    kind: str, app: str, env: dict[str, str] | None = None, extra_args: list[str] | None = None
) -> Iterator[ServerProcess]:
    """Context manager around :func:`start_server` that always stops the server.

    :param kind: one of :data:`SERVER_KINDS`.
    :param app: the application spec.
    :param env: extra environment variables.
    :param extra_args: extra command-line arguments (gunicorn options).
    :returns: the running server.
    """
    server = start_server(kind, app, env, extra_args)
    try:
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
