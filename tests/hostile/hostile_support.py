"""Support code of the hostile-input catalogue: the server process and assertions.

:class:`HostileServer` runs ``hostile_app.py`` for one async mode on 127.0.0.1 and
a free port (killed by PID), and reads its introspection routes and its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from hostile_app import LIMITS
from hostile_clients import HttpResponse, Watcher, eio_get

__all__ = [
    "ASYNC_MODES",
    "RSS_SLACK",
    "SETTLE_TIMEOUT",
    "HostileServer",
    "assert_json_error",
    "assert_session_gone",
    "free_port",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ASYNC_MODES = ("threading", "eventlet", "gevent")
START_TIMEOUT = 20.0
#: how long a case may take to bring the session table back to the watcher alone
SETTLE_TIMEOUT = LIMITS["ping_interval"] + LIMITS["ping_timeout"] + 3.0
#: RSS growth tolerated over the whole catalogue of one mode
RSS_SLACK = 64 * 1024 * 1024


def free_port() -> int:
    """A free port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class HostileServer:
    """One ``hostile_app.py`` process.

    :param async_mode: 'threading', 'eventlet' or 'gevent'.
    :param log_path: file receiving its output.
    """

    def __init__(self, async_mode: str, log_path: Path) -> None:
        self.async_mode = async_mode
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.watcher: Watcher | None = None
        self.rss_start = 0
        self.log_mark = 0
        self.tracebacks_allowed = False

    def start(self) -> None:
        """Start and wait for ``/_hostile/health``."""
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        )
        cmd = [sys.executable, str(HERE / "hostile_app.py"), "--async-mode", self.async_mode,
               "--port", str(self.port)]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(ROOT),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hostile app exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.get("/_hostile/health")
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hostile app did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        """Kill by PID (SIGTERM, then SIGKILL) and reap."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(3)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 3.0) -> Any:
        """GET a JSON route."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
            return json.loads(r.read())

    def post(self, path: str, timeout: float = 5.0) -> Any:
        """POST to a JSON route."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def stats(self) -> dict[str, Any]:
        """Sessions, clients, RSS, threads, fds of the server."""
        result: dict[str, Any] = self.get("/_hostile/stats")
        return result

    def disconnects(self) -> list[dict[str, Any]]:
        """The disconnect handler log."""
        result: list[dict[str, Any]] = self.get("/_hostile/disconnects")
        return result

    def wait_disconnect(self, sid: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the disconnect handler of Socket.IO ``sid``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.disconnects():
                if entry["sid"] == sid:
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"no disconnect recorded for {sid}")

    def wait_settled(self, sessions: int = 1, timeout: float = SETTLE_TIMEOUT) -> dict[str, Any]:
        """Wait until only ``sessions`` engine sessions and Socket.IO clients remain.

        :returns: the last stats.
        :raises AssertionError: on timeout.
        """
        deadline = time.monotonic() + timeout
        stats = self.stats()
        while time.monotonic() < deadline:
            if stats["sessions"] == sessions and stats["clients"] == sessions:
                return stats
            time.sleep(0.05)
            stats = self.stats()
        raise AssertionError(f"session table did not come back to {sessions}: {stats}")

    def log_tail(self, n: int = 80) -> str:
        """Last lines of the server output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_text(self) -> str:
        """The whole server output."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def mark_log(self) -> None:
        """Remember where the log ends (start of a case)."""
        self.log_mark = len(self.log_text())
        self.tracebacks_allowed = False

    def new_log(self) -> str:
        """What the server logged since :meth:`mark_log`."""
        return self.log_text()[self.log_mark :]

    def allow_tracebacks(self) -> None:
        """This case makes the server log a traceback on purpose (a failing handler)."""
        self.tracebacks_allowed = True

    def wait_log(self, needle: str, timeout: float = 3.0) -> str:
        """Wait until the log (since the mark) has a line containing ``needle``.

        :returns: that line.
        """
        deadline = time.monotonic() + timeout
        while True:
            for line in self.new_log().splitlines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {needle!r}:\n{self.new_log()[-3000:]}")
            time.sleep(0.05)


def assert_json_error(r: HttpResponse, status: int, code: int | None = None) -> dict[str, Any]:
    """``r`` is an HTTP error with the reference JSON body ``{"code", "message"}``.

    :returns: the decoded body.
    """
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    assert set(body) == {"code", "message"}, body
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_session_gone(srv: HostileServer, sid: str) -> None:
    """A later request with ``sid`` is answered "Session ID unknown"."""
    assert_json_error(eio_get(srv.port, sid), 400, 1)
