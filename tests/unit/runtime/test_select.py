"""Choosing the driver: an explicit green mode needs its library's monkey-patching."""

from __future__ import annotations

import pytest

import sio_wsgi
from sio_wsgi.exceptions import ConfigError
from sio_wsgi.runtime.select import detect_async_mode, get_driver


def test_this_process_is_not_patched_so_none_means_threading() -> None:
    assert detect_async_mode() == "threading"
    assert get_driver(None).name == "threading"
    assert get_driver("threading").name == "threading"


@pytest.mark.parametrize(
    ("mode", "advice"),
    [
        ("eventlet", "-k sio_wsgi.gunicorn.EventletWorker"),
        ("gevent", "from gevent import monkey; monkey.patch_all()"),
    ],
)
def test_a_green_mode_without_its_patching_fails_when_the_server_is_created(
    mode: str, advice: str
) -> None:
    with pytest.raises(ConfigError, match=f"async_mode='{mode}' needs a process") as info:
        sio_wsgi.Server(async_mode=mode)
    assert advice in str(info.value)
    assert "leave async_mode out" in str(info.value)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="async_mode"):
        sio_wsgi.Server(async_mode="asyncio")
