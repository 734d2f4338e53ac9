"""Shared pytest fixtures and options (helpers that are not fixtures live in tests/support).

End-to-end fixtures (used by ``tests/e2e``):

- ``--impl sio_wsgi|socketio`` (or ``SIO_E2E_IMPL``): which server implementation
  ``tests/servers/app.py`` runs; python-socketio is the baseline.
- ``--e2e-modes threading,eventlet,gevent`` (or ``SIO_E2E_MODES``): async modes to run.
- the ``live_server`` factory fixture (one :class:`LiveServer`, a
  :class:`tests.support.ServerProcess`, per ``(impl, async_mode, options)``, shared
  by the whole session, killed by PID at the end) and the ``node_client`` fixture
  (runs ``tests/js/driver.js``).

Without ``tests/js/node_modules`` the JS tests skip with a reason, except under
``CI=true`` where that is a failure. So is a missing ``sio_wsgi`` under CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ASYNC_MODES, ROOT, ServerProcess, skip_or_fail

__all__ = ["LiveServer", "NodeProcess", "NodeResult", "NodeRunner"]

TESTS_DIR = Path(__file__).resolve().parent
APP = TESTS_DIR / "servers" / "app.py"
JS_DIR = TESTS_DIR / "js"
IMPLS = ("sio_wsgi", "socketio")
#: seconds a node driver is given to die after SIGKILL
STOP_TIMEOUT = 3.0


# ---------------------------------------------------------------------------
# options and markers
# ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--impl`` and ``--e2e-modes``.

    :param parser: pytest's parser.
    """
    group = parser.getgroup("sio_wsgi e2e")
    group.addoption(
        "--impl",
        choices=IMPLS,
        default=os.environ.get("SIO_E2E_IMPL", "sio_wsgi"),
        help="server implementation for the e2e tests (default: sio_wsgi; baseline: socketio)",
    )
    group.addoption(
        "--e2e-modes",
        default=os.environ.get("SIO_E2E_MODES", ",".join(ASYNC_MODES)),
        help="comma separated async modes for the e2e tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used by the suite.

    :param config: pytest config.
    """
    config.addinivalue_line("markers", "slow: takes more than ~5 s (still run in CI)")
    config.addinivalue_line("markers", "e2e: starts real server processes")
    config.addinivalue_line("markers", "browser: drives the official JavaScript client under node")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect e2e tests of async modes not asked for by ``--e2e-modes``.

    :param config: pytest config.
    :param items: collected tests.
    """
    wanted = {m.strip() for m in str(config.getoption("--e2e-modes")).split(",") if m.strip()}
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("async_mode") if callspec is not None else None
        (dropped if mode is not None and mode not in wanted else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# ---------------------------------------------------------------------------
# live servers
# ---------------------------------------------------------------------------


class LiveServer(ServerProcess):
    """One ``tests/servers/app.py`` subprocess on 127.0.0.1 (a :class:`ServerProcess`).

    :param impl: 'sio_wsgi' or 'socketio'.
    :param async_mode: 'threading', 'eventlet' or 'gevent'.
    :param log_path: file receiving the server's stdout and stderr.
    :param transports: server transports, comma separated.
    :param ping_interval: seconds.
    :param ping_timeout: seconds.
    :param per_message_deflate: offer WebSocket compression (sio_wsgi only).
    :param serial_handlers: a client's handlers strictly one at a time (sio_wsgi only).
    :param env: more environment for the server process.
    """

    def __init__(
        self,
        impl: str,
        async_mode: str,
        log_path: Path,
        transports: str = "polling,websocket",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        per_message_deflate: bool = False,
        serial_handlers: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        argv = [
            sys.executable,
            str(APP),
            "--impl",
            impl,
            "--async-mode",
            async_mode,
            "--port",
            "{port}",
            "--ping-interval",
            str(ping_interval),
            "--ping-timeout",
            str(ping_timeout),
            "--transports",
            transports,
            "--log-level",
            os.environ.get("SIO_E2E_LOG_LEVEL", "WARNING"),
        ]
        if per_message_deflate:
            argv.append("--per-message-deflate")
        if serial_handlers:
            argv.append("--serial-handlers")
        # three tries: the port may still be held right after a restart
        super().__init__(argv, log_path, name=f"server {impl}/{async_mode}", attempts=3, env=env)
        self.impl = impl
        self.async_mode = async_mode
        self.transports = transports
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout

    def get_json(self, path: str) -> Any:
        """GET ``path`` and decode the JSON body.

        :param path: URL path.
        :returns: the decoded body.
        """
        with urllib.request.urlopen(self.url + path, timeout=3) as r:
            return json.loads(r.read())

    def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path`` and decode the JSON answer.

        :param path: URL path.
        :param body: JSON-able body.
        :returns: the decoded answer.
        """
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=3) as r:
            return json.loads(r.read())

    def disconnects(self, sid: str | None = None) -> list[dict[str, Any]]:
        """Return the server's disconnect log (optionally for one sid).

        :param sid: Socket.IO sid to filter on.
        :returns: entries ``{'sid', 'namespace', 'reason', 't'}``.
        """
        log: list[dict[str, Any]] = self.get_json("/_log/disconnects")
        return [e for e in log if sid is None or e["sid"] == sid]

    def wait_disconnect(self, sid: str, timeout: float = 3.0) -> dict[str, Any] | None:
        """Wait until the disconnect handler ran for ``sid``.

        :param sid: Socket.IO sid.
        :param timeout: seconds.
        :returns: the log entry, or None on timeout.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.disconnects(sid)
            if found:
                return found[0]
            time.sleep(0.05)
        return None


def _impl_available(impl: str) -> str | None:
    """Check in a subprocess that the implementation imports.

    :param impl: 'sio_wsgi' or 'socketio'.
    :returns: None when usable, else the error text.
    """
    code = (
        "import sio_wsgi; sio_wsgi.Server; sio_wsgi.WSGIApp"
        if impl == "sio_wsgi"
        else "import socketio; socketio.Server; socketio.WSGIApp"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
        env=env,
        check=False,
    )
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest) -> str:
    """The server implementation under test; skips (fails under CI) when it cannot import.

    :param request: pytest request.
    :returns: 'sio_wsgi' or 'socketio'.
    """
    name = str(request.config.getoption("--impl"))
    err = _impl_available(name)
    if err is not None:
        skip_or_fail(f"--impl {name} is not importable yet: {err}")
    return name


@pytest.fixture(scope="session")
def live_server(impl: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory ``live_server(async_mode, transports='polling,websocket', fresh=False, **opts)``.

    Servers with the same ``(async_mode, transports, opts)`` are shared by the whole
    session unless ``fresh=True``; every process is killed by PID at session end.

    :param impl: implementation under test.
    :param tmp_path_factory: for the server logs.
    :returns: the factory, returning a started :class:`LiveServer`.
    """
    cache: dict[tuple[Any, ...], LiveServer] = {}
    started: list[LiveServer] = []
    logdir = tmp_path_factory.mktemp("servers")

    def factory(
        async_mode: str, transports: str = "polling,websocket", fresh: bool = False, **opts: Any
    ) -> LiveServer:
        key = (async_mode, transports, tuple(sorted(opts.items())))
        if not fresh and key in cache and cache[key].alive():
            return cache[key]
        name = f"{impl}-{async_mode}-{len(started)}.log"
        srv = LiveServer(impl, async_mode, logdir / name, transports=transports, **opts)
        started.append(srv)
        srv.start()
        if not fresh:
            cache[key] = srv
        return srv

    yield factory
    for srv in started:
        srv.stop()


# ---------------------------------------------------------------------------
# node client
# ---------------------------------------------------------------------------


class NodeResult:
    """Output of one ``driver.js`` run.

    :param lines: decoded JSON lines.
    :param returncode: exit status (None when killed on timeout).
    :param stderr: the process's stderr.
    """

    def __init__(self, lines: list[dict[str, Any]], returncode: int | None, stderr: str) -> None:
        self.lines = lines
        self.returncode = returncode
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        """True when the driver reported success and exited 0."""
        done = [ln for ln in self.lines if ln.get("type") == "done"]
        return self.returncode == 0 and bool(done) and bool(done[-1].get("ok"))

    def dump(self) -> str:
        """:returns: every line and stderr, for assertion messages."""
        body = "\n".join(json.dumps(ln) for ln in self.lines)
        return f"rc={self.returncode}\n{body}\nstderr:\n{self.stderr[-3000:]}"

    def of(self, type_: str, client: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Select lines by type, client and exact field values.

        :param type_: line type ('event', 'ack', 'connect', ...).
        :param client: client name, or None for all.
        :param match: further ``field=value`` filters.
        :returns: matching lines in order.
        """
        return [
            ln
            for ln in self.lines
            if ln.get("type") == type_
            and (client is None or ln.get("client") == client)
            and all(ln.get(k) == v for k, v in match.items())
        ]

    def events(self, client: str, event: str) -> list[list[Any]]:
        """Args of every ``event`` received by ``client``.

        :param client: client name.
        :param event: event name.
        :returns: list of argument lists.
        """
        return [ln["args"] for ln in self.of("event", client, event=event)]

    def ack(self, label: str, client: str | None = None) -> list[Any]:
        """Args of the (first) ack recorded under ``label``.

        :param label: step label (defaults to the event name in the driver).
        :param client: client name, or None.
        :returns: the ack's argument list.
        """
        found = self.of("ack", client, label=label)
        assert found, f"no ack {label!r}\n{self.dump()}"
        args: list[Any] = found[0]["args"]
        return args

    def connect(self, client: str = "a") -> dict[str, Any]:
        """The first connect line of ``client``.

        :param client: client name.
        :returns: the line (``id``, ``engine_id``, ``transport``).
        """
        found = self.of("connect", client)
        assert found, f"client {client} never connected\n{self.dump()}"
        return found[0]


class NodeProcess:
    """A running ``driver.js`` whose lines can be read while it runs.

    :param proc: the process.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = {"type": "raw", "text": raw}
            self._q.put(obj)
        self._q.put(None)

    def wait_for(self, timeout: float, **match: Any) -> dict[str, Any]:
        """Read lines until one matches every ``field=value``.

        :param timeout: seconds.
        :param match: filters.
        :returns: the matching line.
        :raises AssertionError: on timeout or end of output.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {match} in {timeout} s\n{self.lines}")
            try:
                obj = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if obj is None:
                raise AssertionError(f"driver ended before a line matching {match}\n{self.lines}")
            self.lines.append(obj)
            if all(obj.get(k) == v for k, v in match.items()):
                return obj

    def finish(self, timeout: float) -> NodeResult:
        """Wait for the end (killing by PID after ``timeout``) and collect everything.

        :param timeout: seconds.
        :returns: the result.
        """
        rc: int | None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        self._reader.join(2)
        while True:
            try:
                obj = self._q.get_nowait()
            except queue.Empty:
                break
            if obj is not None:
                self.lines.append(obj)
        stderr = ""
        if self.proc.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                stderr = self.proc.stderr.read()
        self._close_pipes()
        return NodeResult(self.lines, rc, stderr)

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def kill(self) -> None:
        """Kill the driver by PID if it still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self._reader.join(2)
        self._close_pipes()


class NodeRunner:
    """Runs ``tests/js`` scripts with a timeout (the ``node_client`` fixture)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.running: list[NodeProcess] = []

    def spawn(self, scenario: dict[str, Any], script: str = "driver.js") -> NodeProcess:
        """Start a driver (scenario on its stdin) and return at once.

        :param scenario: the scenario (see ``driver.js``).
        :param script: script name in tests/js.
        :returns: the running process.
        """
        proc = subprocess.Popen(
            [self.node, str(JS_DIR / script), "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
            cwd=str(JS_DIR),
        )
        np = NodeProcess(proc)
        self.running.append(np)
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(json.dumps(scenario))
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        return np

    def __call__(self, scenario: dict[str, Any], timeout: float | None = None) -> NodeResult:
        """Run a scenario to the end.

        :param scenario: the scenario.
        :param timeout: seconds; default ``overall_timeout_ms`` + 5 s.
        :returns: the result.
        """
        overall = float(scenario.setdefault("overall_timeout_ms", 15000)) / 1000
        return self.spawn(scenario).finish(timeout or overall + 5)

    def cleanup(self) -> None:
        """Kill every driver still running."""
        for np in self.running:
            np.kill()


@pytest.fixture(scope="session")
def node_bin() -> str:
    """Path of ``node``, after checking ``tests/js/node_modules`` is installed.

    :returns: the node executable.
    """
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        skip_or_fail("tests/js/node_modules missing: run `cd tests/js && npm ci`")
    assert node is not None
    return node


@pytest.fixture
def node_client(node_bin: str) -> Iterator[NodeRunner]:
    """Run ``tests/js/driver.js`` scenarios; kills leftovers by PID at teardown.

    :param node_bin: node executable.
    :returns: a :class:`NodeRunner`.
    """
    runner = NodeRunner(node_bin)
    yield runner
    runner.cleanup()
