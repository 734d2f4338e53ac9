"""Fixtures of the hostile-input catalogue.

Every test runs once per async mode (``--e2e-modes`` selects them, as for
tests/e2e). Per mode one ``hostile_app.py`` subprocess is shared by the whole
catalogue (127.0.0.1, a free port, killed by PID at the end), with a
well-behaved :class:`~tests.hostile.hostile_clients.Watcher` connected the whole time.

The ``srv`` fixture wraps every case: afterwards it asserts that

- the server process is alive;
- the watcher still receives ``tick`` events and gets its acks;
- the session table (engine sessions and Socket.IO clients) is back to the
  watcher alone;
- the server's RSS stayed within :data:`RSS_SLACK` of its value at start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.hostile_clients import Watcher
from tests.hostile.hostile_support import RSS_SLACK, HostileServer
from tests.support import ASYNC_MODES


def pytest_configure(config: pytest.Config) -> None:
    """Register the catalogue's marker.

    :param config: pytest config.
    """
    config.addinivalue_line(
        "markers", "hostile: hostile-input / fault catalogue against a live server per async mode"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every catalogue test ``hostile`` and ``e2e``.

    :param items: collected tests.
    """
    for item in items:
        if "/hostile/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.hostile)
            item.add_marker(pytest.mark.e2e)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``async_mode`` at session scope, so one server serves a whole mode.

    :param metafunc: pytest metafunc.
    """
    if "async_mode" in metafunc.fixturenames:
        metafunc.parametrize("async_mode", ASYNC_MODES, scope="session")


@pytest.fixture(scope="session")
def hostile_server(
    async_mode: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileServer]:
    """The shared server of one async mode, with its watcher connected.

    :param async_mode: the mode.
    :param tmp_path_factory: for the log.
    :returns: the running server.
    """
    log = tmp_path_factory.mktemp("hostile") / f"hostile-{async_mode}.log"
    server = HostileServer(async_mode, log)
    server.start()
    try:
        server.watcher = Watcher(server.port)
        server.wait_settled(1)
        server.rss_start = server.stats()["rss"]
        yield server
        end = server.stats()
        growth = end["rss"] - server.rss_start
        assert growth < RSS_SLACK, f"RSS grew by {growth} bytes over the catalogue ({end})"
    finally:
        server.stop()


@pytest.fixture
def srv(hostile_server: HostileServer) -> Iterator[HostileServer]:
    """The shared server; checks the watcher, the session table and RSS after the case.

    :param hostile_server: the shared server.
    :returns: the server.
    """
    if not hostile_server.alive():
        pytest.fail(f"server died earlier:\n{hostile_server.log_tail()}")
    watcher = hostile_server.watcher
    assert watcher is not None
    if watcher.error is not None:  # an earlier case broke it: reconnect, fail that case only
        watcher.stop()
        hostile_server.watcher = watcher = Watcher(hostile_server.port)
    hostile_server.mark_log()
    yield hostile_server
    assert hostile_server.alive(), f"server died:\n{hostile_server.log_tail()}"
    watcher.assert_alive()
    stats = hostile_server.wait_settled(1)
    if not hostile_server.tracebacks_allowed:
        new = hostile_server.new_log()
        assert "Traceback" not in new, f"the server logged a traceback:\n{new[-4000:]}"
    growth = stats["rss"] - hostile_server.rss_start
    assert growth < RSS_SLACK, f"RSS grew by {growth} bytes: {stats}"


@pytest.fixture
def fresh_server(async_mode: str, tmp_path: Path) -> Iterator[HostileServer]:
    """A server of its own (for cases that end it, like ``shutdown()``).

    :param async_mode: the mode.
    :param tmp_path: for the log.
    :returns: the running server (killed by PID afterwards).
    """
    server = HostileServer(async_mode, tmp_path / "fresh.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
