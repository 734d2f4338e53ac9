"""Fixtures of the end-to-end suite: async mode / transport parameters and helpers.

Every test runs once per async mode (``threading``, ``eventlet``, ``gevent``), each
mode in its own shared server subprocess (see ``live_server`` in tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.e2e_support import CLIENT_TRANSPORTS
from tests.support import ASYNC_MODES

__all__: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every e2e test ``e2e`` (and ``browser`` when it drives the JS client).

    :param items: collected tests.
    """
    for item in items:
        if "/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            if "node_client" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.browser)


@pytest.fixture(params=ASYNC_MODES)
def async_mode(request: pytest.FixtureRequest) -> str:
    """The async mode of the server under test.

    :param request: pytest request.
    :returns: 'threading', 'eventlet' or 'gevent'.
    """
    mode: str = request.param
    return mode


@pytest.fixture(params=tuple(CLIENT_TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    """The client transport choice.

    :param request: pytest request.
    :returns: a key of :data:`CLIENT_TRANSPORTS`.
    """
    name: str = request.param
    return name


@pytest.fixture
def server(live_server: Any, async_mode: str) -> Any:
    """The shared default server (ping 25 s / 20 s) for ``async_mode``.

    :param live_server: the factory.
    :param async_mode: the mode.
    :returns: a running server.
    """
    return live_server(async_mode)
