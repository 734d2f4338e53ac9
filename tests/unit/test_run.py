"""sio_wsgi.run without a network: what gets served, the gunicorn command, names to objects,
and runsio's ``addr:port``. The servers themselves run in tests/runner/ (subprocesses)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import sio_wsgi
from sio_wsgi.config import GUNICORN_THREADS
from sio_wsgi.exceptions import ConfigError
from sio_wsgi.runner import _import_path, gunicorn_argv, load, resolve, wsgi_app


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI application with no Socket.IO."""
    start_response("200 OK", [])
    return [b"plain"]


@pytest.fixture
def sio() -> Any:
    server = sio_wsgi.Server(async_mode="threading")
    yield server
    server.shutdown()


def test_resolve_each_kind_of_app(sio: Any) -> None:
    wrapped = sio_wsgi.WSGIApp(sio, plain)
    assert resolve(wrapped).app is wrapped
    assert resolve(wrapped).sio is sio
    alone = resolve(sio)
    assert isinstance(alone.app, sio_wsgi.WSGIApp) and alone.app.server is sio
    both = resolve(plain, sio)
    assert isinstance(both.app, sio_wsgi.WSGIApp)
    assert (both.app.server, both.app.wsgi_app, both.async_mode) == (sio, plain, "threading")
    hidden = resolve(plain)
    assert (hidden.app, hidden.sio, hidden.async_mode) == (plain, None, "threading")


def test_resolve_refuses_what_it_cannot_serve(sio: Any) -> None:
    with pytest.raises(ConfigError, match="cannot serve int"):
        resolve(42)
    with pytest.raises(ConfigError, match=r"server= must be a sio_wsgi\.Server"):
        resolve(plain, plain)
    other = sio_wsgi.Server(async_mode="threading")
    try:
        with pytest.raises(ConfigError, match="different server="):
            resolve(sio_wsgi.WSGIApp(sio), other)
        with pytest.raises(ConfigError, match="two Servers"):
            resolve(sio, other)
    finally:
        other.shutdown()
    with pytest.raises(ConfigError, match="runs in 'threading' mode"):
        resolve(sio, async_mode="gevent")
    with pytest.raises(ConfigError, match="unknown async_mode"):
        resolve(sio, async_mode="asyncio")


def test_run_refuses_zero_workers_and_bad_log_levels() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        sio_wsgi.run(plain, workers=0, log_level=None)
    with pytest.raises(ConfigError, match="log_level 'loud'"):
        sio_wsgi.run(plain, log_level="loud")


@pytest.mark.parametrize(
    ("mode", "worker"),
    [
        ("gevent", "gevent"),
        ("eventlet", "sio_wsgi.gunicorn.EventletWorker"),
        ("threading", "gthread"),
    ],
)
def test_gunicorn_argv(mode: str, worker: str) -> None:
    argv = gunicorn_argv("app:app", mode, 3, "0.0.0.0", 8000, "info", {"graceful_timeout": 2})
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[argv.index("-k") + 1] == worker
    assert argv[argv.index("-w") + 1] == "3"
    assert argv[argv.index("-b") + 1] == "0.0.0.0:8000"
    assert argv[argv.index("--graceful-timeout") + 1] == "2"
    assert ("--threads" in argv) is (mode == "threading")
    if mode == "threading":
        assert argv[argv.index("--threads") + 1] == str(GUNICORN_THREADS)
    assert argv[-1] == "app:app"
    ipv6 = gunicorn_argv("a:b", mode, 2, "::1", 80, None, {"reload": True, "preload": False})
    assert "[::1]:80" in ipv6 and "--reload" in ipv6 and "--preload" not in ipv6


def test_load_and_the_gunicorn_factory() -> None:
    assert load("tests.unit.test_run:plain") is plain
    assert load("os.path:join.__name__") == "join"
    with pytest.raises(ConfigError, match="has no nothing"):
        load("tests.unit.test_run:nothing")
    with pytest.raises(ConfigError, match="not module:attr"):
        load(":app")
    with pytest.raises(ConfigError, match="no module named 'no_such_module_here'"):
        load("no_such_module_here:app")
    with pytest.raises(ConfigError, match=r"no module named 'tests\.nothing'"):
        load("tests.nothing.here:app")
    app = wsgi_app("tests.runner.echo_app:plain", "tests.runner.echo_app:sio")
    assert isinstance(app, sio_wsgi.WSGIApp)


def test_import_path_finds_a_module_attribute() -> None:
    assert _import_path(plain) == "tests.unit.test_run:plain"
    assert _import_path(object()) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("127.0.0.1", 8000)),
        ("9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:8001", ("0.0.0.0", 8001)),
        ("[::1]:8002", ("::1", 8002)),
        ("localhost:8003", ("localhost", 8003)),
    ],
)
def test_runsio_addrport(value: str | None, expected: tuple[str, int]) -> None:
    pytest.importorskip("django")
    from sio_wsgi.django.management.commands.runsio import parse_addrport

    assert parse_addrport(value) == expected


def test_runsio_addrport_refuses_garbage() -> None:
    pytest.importorskip("django")
    from django.core.management.base import CommandError

    from sio_wsgi.django.management.commands.runsio import parse_addrport

    with pytest.raises(CommandError, match="not a port number"):
        parse_addrport("here:there")
