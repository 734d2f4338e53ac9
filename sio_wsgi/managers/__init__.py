"""Client managers that join several server processes through a message broker.

- :class:`~sio_wsgi.managers.pubsub.PubSubManager`: the broker-independent base.
- :class:`~sio_wsgi.managers.redis.RedisManager`: Redis / Valkey through redis-py.
- :class:`~sio_wsgi.managers.kombu.KombuManager`: RabbitMQ (AMQP) and other kombu transports.

Names load on first use, so the broker libraries are only imported when needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["PubSubManager", "RedisManager", "KombuManager", "BusError", "BusHealth"]

_LAZY = {
    "PubSubManager": ".pubsub",
    "BusError": ".pubsub",
    "BusHealth": ".pubsub",
    "RedisManager": ".redis",
    "KombuManager": ".kombu",
}

if TYPE_CHECKING:  # pragma: no cover
    from .kombu import KombuManager
    from .pubsub import BusError, BusHealth, PubSubManager
    from .redis import RedisManager


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sio_wsgi.managers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
