"""How :class:`~sio_wsgi.flask.SocketIO` maps Flask-SocketIO's options onto sio_wsgi.

Pure functions and small classes, no server state: the constructor options become
:class:`sio_wsgi.Server` keyword arguments (:func:`server_options`), a
``message_queue`` URL a client manager (:func:`queue_manager`), and
``socketio.run``'s options :func:`sio_wsgi.run`'s (:func:`run_options`).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import flask
from flask.sessions import SessionMixin

from sio_wsgi.engine.ports import Environ
from sio_wsgi.engine.server import StartResponse
from sio_wsgi.exceptions import ConfigError
from sio_wsgi.manager import Manager
from sio_wsgi.server import Server
from sio_wsgi.wsgi import WSGIApp

__all__ = [
    "APP_ENVIRON_KEY",
    "SESSION_ENVIRON_KEY",
    "DEFAULT_CHANNEL",
    "DEFAULT_PATH",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "IGNORED_OPTIONS",
    "IGNORED_RUN_OPTIONS",
    "ExtensionOptions",
    "ManagedSession",
    "Middleware",
    "RunTarget",
    "FlaskSafeJSON",
    "queue_manager",
    "server_options",
    "run_options",
]

APP_ENVIRON_KEY = "flask.app"
"""WSGI environ key naming the Flask app a request came through (set by :class:`Middleware`)."""

SESSION_ENVIRON_KEY = "sio_wsgi.flask.session"
"""Handshake environ key keeping a connection's managed session (``manage_session=True``)."""

DEFAULT_CHANNEL = "flask-socketio"
"""The message queue channel when ``channel`` is not given (Flask-SocketIO's)."""

DEFAULT_PATH = "socket.io"
"""Where the endpoint is mounted when neither ``path`` nor ``resource`` is given."""

DEFAULT_HOST = "127.0.0.1"
"""``socketio.run``'s host when none is given."""

DEFAULT_PORT = 5000
"""``socketio.run``'s port when none is given and ``SERVER_NAME`` names none."""

IGNORED_OPTIONS: Mapping[str, str] = {
    "monitor_clients": "heartbeats always close inactive clients",
    "engineio_options": "pass Engine.IO options as keyword arguments",
}
"""python-socketio / Engine.IO options accepted with a warning and ignored (and why)."""

IGNORED_RUN_OPTIONS = ("extra_files", "reloader_options")
"""``socketio.run`` options accepted with a warning and ignored."""

_SERVER_PARAMETERS = frozenset(inspect.signature(Server.__init__).parameters) - {"self"}
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_UNSUPPORTED_QUEUES = ("kafka://", "zmq+", "zmq://")


class ManagedSession(dict[str, Any], SessionMixin):
    """A connection's own session: a dict with Flask's session attributes."""


class Middleware(WSGIApp):
    """The Socket.IO endpoint in front of the Flask app; names the app in the environ."""

    def __init__(self, server: Server, flask_app: flask.Flask, socketio_path: str) -> None:
        super().__init__(server, flask_app.wsgi_app, socketio_path=socketio_path)
        self.flask_app = flask_app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ[APP_ENVIRON_KEY] = self.flask_app
        return super().__call__(environ, start_response)


class RunTarget(WSGIApp):
    """The Flask app as ``socketio.run`` hands it to :func:`sio_wsgi.run`: every
    request goes through the app (and what wraps its ``wsgi_app``), and the server is
    in sight (``.server``) so that it is shut down gracefully."""

    def __init__(self, server: Server, flask_app: flask.Flask) -> None:
        super().__init__(server, serve_client=False)
        self.flask_app = flask_app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return self.flask_app(environ, start_response)


class FlaskSafeJSON:
    """``flask.json`` with the app context it needs pushed around each call."""

    def __init__(self, app: flask.Flask) -> None:
        self.app = app

    def dumps(self, *args: Any, **kwargs: Any) -> str:
        with self.app.app_context():
            return flask.json.dumps(*args, **kwargs)

    def loads(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            return flask.json.loads(*args, **kwargs)


def queue_manager(url: str, channel: str, write_only: bool) -> Manager:
    """The client manager of a ``message_queue`` URL.

    :param url: ``redis://``, ``rediss://`` or ``unix://`` (Redis); anything else
        Kombu understands (``amqp://``...).
    :param channel: the channel name.
    :param write_only: only publish (a process that emits for the servers).
    :returns: a :class:`~sio_wsgi.RedisManager` or :class:`~sio_wsgi.KombuManager`.
    :raises ConfigError: for Kafka and ZeroMQ, which sio_wsgi has no manager for.
    """
    if url.startswith(_UNSUPPORTED_QUEUES):
        raise ConfigError(f"message_queue {url!r}: only Redis and Kombu (AMQP...) are supported")
    if url.startswith(_REDIS_SCHEMES):
        from sio_wsgi.managers.redis import RedisManager

        return RedisManager(url, channel=channel, write_only=write_only)
    from sio_wsgi.managers.kombu import KombuManager

    return KombuManager(url, channel=channel, write_only=write_only)


@dataclasses.dataclass
class ExtensionOptions:
    """The constructor options, sorted.

    :param server: keyword arguments for :class:`sio_wsgi.Server`.
    :param manage_session: see :class:`~sio_wsgi.flask.SocketIO`.
    :param path: the endpoint, without slashes.
    """

    server: dict[str, Any]
    manage_session: bool
    path: str


def server_options(
    options: Mapping[str, Any], app: flask.Flask | None, manage_session: bool = True
) -> ExtensionOptions:
    """Sort Flask-SocketIO's constructor options.

    :param options: everything given to ``SocketIO(...)`` / ``init_app``.
    :param app: the Flask app; None makes a ``message_queue`` manager write-only.
    :param manage_session: the value when ``options`` has none.
    :returns: the server's keyword arguments and the extension's own options.
    :raises ConfigError: for an unknown option or an unsupported message queue.
    """
    server = dict(options)
    manage = bool(server.pop("manage_session", manage_session))
    url = server.pop("message_queue", None)
    channel = server.pop("channel", None) or DEFAULT_CHANNEL
    path = server.pop("path", None) or server.pop("resource", None) or DEFAULT_PATH
    server.pop("resource", None)
    for name, why in IGNORED_OPTIONS.items():
        if name in server:
            del server[name]
            warnings.warn(f"SocketIO option {name!r} is ignored: {why}", stacklevel=3)
    interval = server.get("ping_interval")
    if isinstance(interval, (tuple, list)):
        warnings.warn("ping_interval's grace period is ignored", stacklevel=3)
        server["ping_interval"] = interval[0]
    unknown = sorted(set(server) - _SERVER_PARAMETERS)
    if unknown:
        raise ConfigError(f"unknown SocketIO option(s): {', '.join(unknown)}")
    if url and server.get("client_manager") is None:
        server["client_manager"] = queue_manager(str(url), channel, write_only=app is None)
    if server.get("json") is flask.json and app is not None:
        server["json"] = FlaskSafeJSON(app)
    return ExtensionOptions(server, manage, str(path).strip("/"))


def run_options(
    app: flask.Flask, host: str | None, port: int | None, async_mode: str, given: Mapping[str, Any]
) -> dict[str, Any]:
    """``socketio.run(app, host, port, **given)`` as :func:`sio_wsgi.run`'s keywords.

    ``debug`` (default ``app.debug``) is set on the app and gives the ``debug`` log
    level; ``use_reloader`` (default ``debug``) is ``reloader``; ``log_output``
    (default ``debug``) chooses ``info`` over ``warning``; ``allow_unsafe_werkzeug``
    is dropped, :data:`IGNORED_RUN_OPTIONS` with a warning; the rest passes through.

    :param async_mode: the server's, unless ``given`` has one.
    :returns: the keywords (``host``, ``port``, ``reloader``, ``async_mode``, ``log_level``...).
    """
    kwargs = dict(given)
    if port is None:
        server_name = app.config.get("SERVER_NAME")
        port = DEFAULT_PORT
        if server_name and ":" in server_name:
            port = int(server_name.rsplit(":", 1)[1])
    debug = bool(kwargs.pop("debug", app.debug))
    log_output = bool(kwargs.pop("log_output", debug))
    use_reloader = bool(kwargs.pop("use_reloader", debug))
    kwargs.pop("allow_unsafe_werkzeug", None)
    for name in IGNORED_RUN_OPTIONS:
        if kwargs.pop(name, None):
            warnings.warn(f"run(): {name} is ignored", stacklevel=3)
    app.debug = debug
    kwargs.setdefault("async_mode", async_mode)
    kwargs.setdefault("log_level", "debug" if debug else "info" if log_output else "warning")
    return {"host": host or DEFAULT_HOST, "port": port, "reloader": use_reloader, **kwargs}
