"""RedisManager: server nodes joined through Redis (or Valkey) pub/sub, on redis-py.

Usage::

    mgr = sio_wsgi.RedisManager("redis://127.0.0.1:6379/0")
    sio = sio_wsgi.Server(client_manager=mgr)

URLs: ``redis://[:password@]host:port/db``, ``rediss://`` (TLS) and
``unix:///path/to/redis.sock?db=0``. External emitters (a script, a Celery
worker) use ``RedisManager(url, write_only=True)`` and call :meth:`emit`.
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sio_wsgi.config import RecoveryOptions
from sio_wsgi.exceptions import ConfigError
from sio_wsgi.managers.pubsub import PubSubManager
from sio_wsgi.recovery import RecoveryStore

if TYPE_CHECKING:  # pragma: no cover
    from redis.client import PubSub

__all__ = ["RedisManager"]


def _redis() -> types.ModuleType:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ConfigError("RedisManager needs redis-py: pip install redis") from exc
    return redis


class RedisManager(PubSubManager):
    """A :class:`~sio_wsgi.managers.pubsub.PubSubManager` on Redis pub/sub.

    :param url: the Redis URL (``redis://``, ``rediss://`` or ``unix://``).
    :param channel: the pub/sub channel shared by the nodes.
    :param write_only: only publish (external emitters): no listener.
    :param logger: a ``logging.Logger`` for bus events (faults are always logged).
    :param redis_options: extra ``redis.Redis.from_url`` keyword arguments
        (``ssl_ca_certs``, ``password``, ...).
    :param kwargs: :class:`~sio_wsgi.managers.pubsub.PubSubManager` options
        (``publish_timeout``, ``reconnect_delay``, ``heartbeat_interval``, ...).
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        channel: str = "socketio",
        write_only: bool = False,
        logger: logging.Logger | bool | None = None,
        redis_options: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        redis = _redis()
        super().__init__(channel, write_only, logger, **kwargs)
        self.url = url
        options: dict[str, Any] = {
            "socket_connect_timeout": 5,
            "health_check_interval": 15,
            # reconnecting is the manager's job (with logging and backoff)
            "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        }
        if not url.startswith("unix:"):  # TCP only: unix socket connections reject it
            options["socket_keepalive"] = True
        options.update(redis_options or {})
        self.redis = redis.Redis.from_url(url, **options)
        self.retry_errors = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        )
        self._pubsub: PubSub | None = None

    def recovery_store(self, options: RecoveryOptions, lock: Any) -> RecoveryStore | None:
        """Connection state recovery in Redis, for every node (not write-only)."""
        if self.write_only:
            return None
        from sio_wsgi.managers.recovery_redis import RedisRecoveryStore

        return RedisRecoveryStore(self, options, lock)

    def _publish_once(self, data: bytes) -> None:
        """``PUBLISH channel data``."""
        self.redis.publish(self.channel, data)

    def _publish_direct_once(self, host: str, data: bytes) -> bool:
        """``PUBLISH channel.host data``; its reply counts the listeners."""
        return int(self.redis.publish(self.direct_channel(host), data)) > 0

    def _host_alive(self, host: str) -> bool:
        """``PUBSUB NUMSUB channel.host``: is that process subscribed?"""
        counts = self.redis.pubsub_numsub(self.direct_channel(host))
        return bool(counts) and int(counts[0][1]) > 0

    def _reset_publisher(self) -> None:
        """Drop pooled connections that may be dead."""
        with contextlib.suppress(*self.retry_errors):
            self.redis.connection_pool.disconnect()

    def _listen(self) -> Iterator[bytes | None]:
        """Subscribe to the channel and this process's inbox; yield their messages.

        :returns: messages, or ``None`` every :attr:`poll_interval` when idle.
        """
        pubsub = self.redis.pubsub()
        self._pubsub = pubsub
        try:
            pubsub.subscribe(self.channel, self.direct_channel(self.host_id))
            channel = self.channel.encode()
            while not self.closing:
                message = pubsub.get_message(timeout=self.poll_interval)
                if message is None:
                    yield None
                elif message["type"] == "subscribe":
                    if message["channel"] in (channel, self.channel):
                        self._on_subscribed()
                elif message["type"] == "message":
                    yield message["data"]
        finally:
            self._pubsub = None
            with contextlib.suppress(*self.retry_errors):
                pubsub.close()

    def _close_connections(self) -> None:
        """Close the client's connections."""
        with contextlib.suppress(*self.retry_errors):
            self.redis.close()
