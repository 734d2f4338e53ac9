"""The package's public names: ``sio_wsgi.__all__`` is pinned here.

Adding, removing or renaming a public name is an API change: this test must be
edited along with it (and CHANGELOG.md).
"""

from __future__ import annotations

import inspect

import pytest

import sio_wsgi

#: the public API, in ``__all__``'s order (grouped by meaning, not sorted)
PUBLIC = [
    "__version__",
    "Server",
    "WSGIApp",
    "Middleware",
    "run",
    "Namespace",
    "Manager",
    "PubSubManager",
    "RedisManager",
    "KombuManager",
    "ServerOptions",
    "DEFAULTS",
    "SioError",
    "ProtocolError",
    "ConnectionRefusedError",
    "EventRejected",
    "TimeoutError",
    "DisconnectedError",
    "ConfigError",
    "BusError",
    "RateLimit",
]


def test_all_is_pinned() -> None:
    assert sio_wsgi.__all__ == PUBLIC
    assert len(set(sio_wsgi.__all__)) == len(sio_wsgi.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(sio_wsgi, name)
    assert value is not None
    if inspect.isclass(value):
        assert value.__module__.startswith("sio_wsgi."), (name, value.__module__)


def test_dir_lists_the_public_names() -> None:
    assert sorted(dir(sio_wsgi)) == sorted(PUBLIC)


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from sio_wsgi import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        sio_wsgi.NotAThing  # noqa: B018
