"""sio_wsgi: a Socket.IO (v5) / Engine.IO (v4) server that is a WSGI middleware.

Migrating from python-socketio is an import change::

    import sio_wsgi as socketio

    sio = socketio.Server(cors_allowed_origins="*")
    app = socketio.WSGIApp(sio, flask_app)

and ``sio_wsgi.run(app)`` (or ``python -m sio_wsgi module:app``) serves it.

Names are loaded on first use, so ``import sio_wsgi`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
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

_LAZY = {
    "Server": ".server",
    "WSGIApp": ".wsgi",
    "Middleware": ".wsgi",
    "run": ".runner",
    "Namespace": ".namespace",
    "Manager": ".manager",
    "PubSubManager": ".managers.pubsub",
    "RedisManager": ".managers.redis",
    "KombuManager": ".managers.kombu",
    "ServerOptions": ".config",
    "DEFAULTS": ".config",
    "SioError": ".exceptions",
    "ProtocolError": ".exceptions",
    "ConnectionRefusedError": ".exceptions",
    "EventRejected": ".exceptions",
    "TimeoutError": ".exceptions",
    "DisconnectedError": ".exceptions",
    "ConfigError": ".exceptions",
    "BusError": ".exceptions",
    "RateLimit": ".ratelimit",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import DEFAULTS, ServerOptions
    from .exceptions import (
        BusError,
        ConfigError,
        ConnectionRefusedError,
        DisconnectedError,
        EventRejected,
        ProtocolError,
        SioError,
        TimeoutError,
    )
    from .manager import Manager
    from .managers.kombu import KombuManager
    from .managers.pubsub import PubSubManager
    from .managers.redis import RedisManager
    from .namespace import Namespace
    from .ratelimit import RateLimit
    from .runner import run
    from .server import Server
    from .wsgi import Middleware, WSGIApp


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sio_wsgi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
