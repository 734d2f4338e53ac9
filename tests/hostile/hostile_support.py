"""Support code of the hostile-input catalogue: the server process and assertions.

:class:`HostileServer` runs ``hostile_app.py`` for one async mode on 127.0.0.1 and
a free port (killed by PID), and reads its introspection routes and its log.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.hostile.hostile_app import LIMITS
from tests.hostile.hostile_clients import HttpResponse, Watcher, eio_get
from tests.support import HOST, ServerProcess, wait_until

__all__ = [
    "RSS_SLACK",
    "SETTLE_TIMEOUT",
    "HostileServer",
    "assert_json_error",
    "assert_session_gone",
]

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20.0
#: how long a case may take to bring the session table back to the watcher alone
SETTLE_TIMEOUT = LIMITS["ping_interval"] + LIMITS["ping_timeout"] + 3.0
#: RSS growth tolerated over the whole catalogue of one mode
RSS_SLACK = 64 * 1024 * 1024


class HostileServer(ServerProcess):
    """One ``hostile_app.py`` process (a :class:`ServerProcess`, ready once
    ``/_hostile/health`` answers).

    :param async_mode: 'threading', 'eventlet' or 'gevent'.
    :param log_path: file receiving its output.
    """

    def __init__(self, async_mode: str, log_path: Path) -> None:
        argv = [
            sys.executable,
            str(HERE / "hostile_app.py"),
            "--async-mode",
            async_mode,
            "--port",
            "{port}",
        ]
        super().__init__(
            argv,
            log_path,
            health="/_hostile/health",
            name=f"hostile app ({async_mode})",
            start_timeout=START_TIMEOUT,
        )
        self.async_mode = async_mode
        self.watcher: Watcher | None = None
        self.rss_start = 0
        self.log_mark = 0
        self.tracebacks_allowed = False

    def stop(self) -> int | None:
        """Stop the watcher, then the process (by PID)."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        return super().stop()

    def get(self, path: str, timeout: float = 3.0) -> Any:
        """GET a JSON route."""
        with urllib.request.urlopen(f"http://{HOST}:{self.port}{path}", timeout=timeout) as r:
            return json.loads(r.read())

    def post(self, path: str, timeout: float = 5.0) -> Any:
        """POST to a JSON route."""
        req = urllib.request.Request(f"http://{HOST}:{self.port}{path}", data=b"{}", method="POST")
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
        found: list[dict[str, Any]] = wait_until(
            lambda: [e for e in self.disconnects() if e["sid"] == sid],
            timeout,
            f"a disconnect recorded for {sid}",
            interval=0.05,
        )
        return found[0]

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
