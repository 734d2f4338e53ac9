"""The server of tests/hooks (hooks_app.py) under gunicorn: every worker kind of the
README (gthread, gevent, sio_wsgi's eventlet worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.examples.examples_support import WORKERS, gunicorn_argv
from tests.support import ServerProcess


@pytest.fixture(scope="module", params=sorted(WORKERS))
def hooks_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A started hooks_app server (one per worker kind and test module).

    :param request: pytest request (the worker kind).
    :param tmp_path_factory: for the log.
    :returns: the server.
    """
    worker: str = request.param
    log = tmp_path_factory.mktemp("hooks") / f"{worker}.log"
    proc = ServerProcess(
        gunicorn_argv(worker, "tests.hooks.hooks_app:app"), log, health="/health", attempts=3
    )
    proc.start()
    yield proc
    proc.stop()
