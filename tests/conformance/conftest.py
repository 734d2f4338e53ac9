"""Fixtures of the protocol conformance suite.

One live server process (``tests/servers/conformance_app.py``, a
:class:`tests.support.ServerProcess`) per module and async mode, killed by PID at
the end of the module.

* ``CONFORMANCE_IMPL``: ``sio_wsgi`` (default) or ``socketio`` (the
  python-socketio baseline); when unset, the ``--impl`` option of
  ``tests/conftest.py`` is honoured if it is registered.
* ``CONFORMANCE_MODES``: comma-separated async modes (default: all three).

Tests that the baseline is known to fail carry
``@pytest.mark.baseline_xfail(reason)``; the mark turns into ``xfail`` only when
the implementation under test is ``socketio``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.conformance_client import WS, Http
from tests.support import ASYNC_MODES, ROOT, ServerProcess, skip_or_fail

__all__ = ["ConformanceServer"]

APP = ROOT / "tests" / "servers" / "conformance_app.py"
HERE = Path(__file__).resolve().parent
MODES = tuple(
    m.strip() for m in os.environ.get("CONFORMANCE_MODES", ",".join(ASYNC_MODES)).split(",") if m
)
SIO_WSGI_PROBE = "import sio_wsgi.engineio, sio_wsgi; sio_wsgi.Server; sio_wsgi.WSGIApp"


def _impl(config: pytest.Config) -> str:
    """The implementation under test: ``CONFORMANCE_IMPL``, else ``--impl``.

    :param config: pytest config.
    :returns: ``sio_wsgi`` or ``socketio``.
    """
    env = os.environ.get("CONFORMANCE_IMPL")
    if env:
        return env
    return str(config.getoption("--impl", default="sio_wsgi") or "sio_wsgi")


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's markers.

    :param config: pytest config.
    """
    config.addinivalue_line(
        "markers",
        "baseline_xfail(reason, modes=None): expected failure of the python-socketio "
        "baseline (CONFORMANCE_IMPL=socketio) only",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Turn ``baseline_xfail`` into ``xfail`` when the baseline is under test.

    :param config: pytest config.
    :param items: collected items.
    """
    if _impl(config) != "socketio":
        return
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        mark = item.get_closest_marker("baseline_xfail")
        if mark is None:
            continue
        modes = mark.kwargs.get("modes")
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("server") if callspec is not None else None
        if modes is not None and mode not in modes:
            continue
        reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "")
        item.add_marker(pytest.mark.xfail(reason=f"baseline: {reason}", strict=False))


class ConformanceServer(ServerProcess):
    """The conformance app of one implementation and async mode (a :class:`ServerProcess`,
    ready once its port accepts connections).

    :param impl: ``sio_wsgi`` or ``socketio``.
    :param mode: the async mode.
    :param log_path: file receiving its output.
    """

    def __init__(self, impl: str, mode: str, log_path: Path) -> None:
        argv = [sys.executable, str(APP), "--impl", impl, "--async-mode", mode, "--port", "{port}"]
        super().__init__(
            argv,
            log_path,
            health=None,
            env={"PYTHONWARNINGS": "ignore"},
            name=f"conformance app ({impl}/{mode})",
        )
        self.impl = impl
        self.mode = mode

    @property
    def http(self) -> Http:
        """An HTTP helper for this server."""
        return Http(self.port)


def _probe_sio_wsgi() -> str | None:
    """Return why sio_wsgi cannot be imported, or ``None`` when it can.

    :returns: the error text or ``None``.
    """
    proc = subprocess.run(
        [sys.executable, "-c", SIO_WSGI_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> str:
    """The implementation under test (``CONFORMANCE_IMPL`` or ``--impl``).

    :param pytestconfig: pytest config.
    :returns: ``sio_wsgi`` or ``socketio``.
    """
    return _impl(pytestconfig)


@pytest.fixture(scope="session")
def impl_available(impl: str) -> None:
    """Skip when sio_wsgi does not import yet (fail under ``CI=true``).

    :param impl: implementation under test.
    """
    if impl == "sio_wsgi":
        error = _probe_sio_wsgi()
        if error is not None:
            skip_or_fail(f"sio_wsgi not importable: {error}")


@pytest.fixture(scope="module", params=MODES)
def server(
    request: pytest.FixtureRequest,
    impl: str,
    impl_available: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConformanceServer]:
    """Start the conformance app for one async mode.

    :param request: gives the async mode.
    :param impl: implementation under test.
    :param impl_available: skips when sio_wsgi is not importable.
    :param tmp_path_factory: for the server log.
    :returns: the running server.
    """
    mode: str = request.param
    log = tmp_path_factory.mktemp(f"conformance-{impl}-{mode}") / "server.log"
    with ConformanceServer(impl, mode, log) as server:
        yield server


@pytest.fixture
def http(server: ConformanceServer) -> Http:
    """HTTP helper for the current server.

    :param server: the live server.
    :returns: the helper.
    """
    return server.http


@pytest.fixture
def ws_factory(server: ConformanceServer) -> Iterator[Callable[..., WS]]:
    """Open WebSockets to the current server; all are closed after the test.

    :param server: the live server.
    :returns: ``factory(path, headers=None) -> WS``.
    """
    opened: list[WS] = []

    def factory(path: str, headers: list[str] | None = None) -> WS:
        sock = WS(server.port, path, headers)
        opened.append(sock)
        return sock

    yield factory
    for sock in opened:
        sock.close()


@pytest.fixture(autouse=True)
def _fail_if_server_died(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose server process crashed while it ran.

    :param request: the test request.
    """
    yield
    if "server" in request.fixturenames:
        live: Any = request.getfixturevalue("server")
        if not live.alive():
            pytest.fail(f"server process died:\n{live.log_text()[-4000:]}")
