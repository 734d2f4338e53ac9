"""One server process: start a command on 127.0.0.1 and a free port, wait until it is ready,
stop it by PID.

:class:`ServerProcess` is what every test folder starts its servers with (tests/servers/app.py,
the hostile app, gunicorn nodes, the examples, the deployment servers, redis-server, nginx,
haproxy); the callers keep their own command lines.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.support.common import HOST, ROOT, free_port, port_open

__all__ = ["ServerProcess", "http_answers"]

_S = TypeVar("_S", bound="ServerProcess")

#: seconds a start may take, by default
START_TIMEOUT = 15.0
#: seconds SIGTERM is given before SIGKILL, by default
STOP_TIMEOUT = 3.0


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """:returns: whether ``GET url`` got an HTTP response (whatever its status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError, http.client.HTTPException):
        return False


def _start_time(pid: int) -> str | None:
    """``pid``'s start time (``/proc/<pid>/stat`` field 22), None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _children(pid: int) -> dict[int, str]:
    """The live children of ``pid`` (gunicorn workers, nginx workers): ``pid -> start time``."""
    found: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                for child in map(int, f.read().split()):
                    started = _start_time(child)
                    if started is not None:
                        found[child] = started
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class ServerProcess:
    """A server command in a subprocess on 127.0.0.1, its output in a log file.

    Ready once ``GET <health>`` gets an answer (any status), or, with ``health=None``,
    once the port accepts connections, or when ``ready()`` says so; a start fails as
    soon as the process exits. Stopped by PID: SIGTERM, SIGKILL after ``stop_timeout``;
    children it leaves (gunicorn or nginx workers) are waited for, then SIGKILLed.

    :param argv: the command; ``{port}`` in an argument becomes :attr:`port`.
    :param log_path: file receiving stdout and stderr (appended to: a restart adds to it).
    :param port: the port it listens on (default: a free one).
    :param health: URL path that answers once the server is up; None: the TCP port.
    :param ready: the readiness check instead (``health`` is then ignored).
    :param cwd: working directory (default: the checkout's root).
    :param env: more environment variables.
    :param pythonpath: directories put on ``PYTHONPATH`` after the checkout's root (which
        is always first, so the process imports this checkout's ``sio_wsgi``).
    :param name: for messages (default: the program's name).
    :param attempts: starts tried before giving up (the port may still be held
        right after a kill).
    :param start_timeout: seconds one start may take.
    :param stop_timeout: seconds SIGTERM is given before SIGKILL.
    :param user: run as this user (and its group); the tests must run as root.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        port: int | None = None,
        health: str | None = "/health",
        ready: Callable[[], bool] | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[Path] = (),
        name: str | None = None,
        attempts: int = 1,
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        user: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.user = user
        self.log_path = Path(log_path)
        self.port = free_port() if port is None else port
        self.health_path = health
        self._ready = ready
        self.cwd = cwd or ROOT
        self.env = dict(env or {})
        self.pythonpath = list(pythonpath)
        self.name = name or (Path(self.argv[0]).name if self.argv else type(self).__name__)
        self.attempts = attempts
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._workers: dict[int, str] = {}

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        """:returns: the command line, ``{port}`` filled in."""
        return [arg.replace("{port}", str(self.port)) for arg in self.argv]

    def environ(self) -> dict[str, str]:
        """:returns: the process's environment."""
        env = dict(os.environ)
        env.update(self.env)
        paths = [str(ROOT), *map(str, self.pythonpath), os.environ.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return env

    def ready(self) -> bool:
        """:returns: whether the server is up (see the class)."""
        if self._ready is not None:
            return self._ready()
        if self.health_path is None:
            return port_open(self.port)
        return http_answers(self.url + self.health_path)

    def alive(self) -> bool:
        """:returns: True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the command and wait until it is ready.

        :raises RuntimeError: when it exits or is not ready in time, :attr:`attempts` times.
        """
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(0.3)
            self._launch()
            if self._wait_ready():
                assert self.proc is not None
                self._workers = _children(self.proc.pid)
                return
            self.stop()
        raise RuntimeError(f"{self.name} did not start on {HOST}:{self.port}:\n{self.log_tail()}")

    def _launch(self) -> None:
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} start {shlex.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(self.cwd),
                env=self.environ(),
                user=self.user,
                group=self.user,
            )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if self.ready():
                return self.alive()
            time.sleep(0.05)
        return False

    def stop(self) -> int | None:
        """SIGTERM the process, SIGKILL it after :attr:`stop_timeout`, reap it; then wait
        for the children it had (SIGKILL the ones left). Safe to call twice.

        :returns: its exit status (None when it had to be killed or never ran).
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        workers = {**self._workers, **_children(proc.pid)}
        code: int | None = proc.poll()
        if code is None:
            _signal(proc.pid, signal.SIGTERM)
            try:
                code = proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal(proc.pid, signal.SIGKILL)
                proc.wait(self.stop_timeout)
        deadline = time.monotonic() + self.stop_timeout
        for pid, started in workers.items():
            while _start_time(pid) == started and time.monotonic() < deadline:
                time.sleep(0.05)
            if _start_time(pid) == started:
                _signal(pid, signal.SIGKILL)
        return code

    def kill(self) -> None:
        """SIGKILL the process and its children at once (a crash, not a shutdown)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for pid in [*_children(proc.pid), proc.pid]:
            _signal(pid, signal.SIGKILL)
        proc.wait(self.stop_timeout)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """:returns: everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        """:returns: the last ``n`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-n:])

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
