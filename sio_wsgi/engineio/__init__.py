"""The Engine.IO layer on its own, shaped like python-engineio's sync server.

::

    from sio_wsgi import engineio

    eio = engineio.Server(cors_allowed_origins="*")

    @eio.on("message")
    def message(sid, data):
        eio.send(sid, data)

    app = engineio.WSGIApp(eio, other_wsgi_app, engineio_path="engine.io")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar, overload

from ..config import DEFAULTS, ServerOptions
from ..engine.outgoing import Outgoing
from ..engine.ports import DisconnectReason, Environ, StartResponse
from ..engine.server import EngineServer
from ..protocol.eio import Wire
from ..runtime.base import Task
from ..runtime.select import get_driver
from ..wsgi import StaticFilesMap, WSGIApplication
from ..wsgi import WSGIApp as _WSGIApp

__all__ = ["Server", "WSGIApp"]

_EVENTS = ("connect", "message", "disconnect")

F = TypeVar("F", bound=Callable[..., object])


def _make_logger(logger: logging.Logger | bool, name: str) -> logging.Logger:
    if isinstance(logger, logging.Logger):
        return logger
    log = logging.getLogger(name)
    if logger is True and log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    return log


class Server:
    """An Engine.IO v4 server: connect / message / disconnect callbacks, ``send``.

    Takes the Engine.IO options of :class:`sio_wsgi.config.ServerOptions` as keyword
    arguments (defaults in :data:`sio_wsgi.config.DEFAULTS`), plus ``logger``.
    """

    def __init__(self, logger: logging.Logger | bool = False, **options: object) -> None:
        self.options: ServerOptions = DEFAULTS.replace(**options)
        self.logger = _make_logger(logger, "sio_wsgi.engineio")
        self.handlers: dict[str, Callable[..., object]] = {}
        self.driver = get_driver(self.options.async_mode)
        self.async_mode: str = self.driver.name
        self.engine = EngineServer(self.options, self, self.driver, self.logger)

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register a handler for ``connect``, ``message`` or ``disconnect``.

        Usable as ``@eio.on('message')`` or ``eio.on('message', fn)``.
        """
        if event not in _EVENTS:
            raise ValueError(f"event must be one of {_EVENTS}")

        def register(fn: F) -> F:
            self.handlers[event] = fn
            return fn

        return register if handler is None else register(handler)

    # EngineHandler --------------------------------------------------------
    def on_connect(self, sid: str, environ: Environ) -> bool:
        handler = self.handlers.get("connect")
        return handler is None or handler(sid, environ) is not False

    def on_message(self, sid: str, data: Wire) -> None:
        handler = self.handlers.get("message")
        if handler is not None:
            try:
                handler(sid, data)
            except Exception:
                self.logger.exception("message handler failed")

    def on_disconnect(self, sid: str, reason: DisconnectReason) -> None:
        handler = self.handlers.get("disconnect")
        if handler is None:
            return
        import inspect

        try:
            params = inspect.signature(handler).parameters
            positional = [
                p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            takes_reason = len(positional) >= 2 or any(
                p.kind is p.VAR_POSITIONAL for p in params.values()
            )
        except (TypeError, ValueError):
            takes_reason = True
        if takes_reason:
            handler(sid, reason)
        else:
            handler(sid)

    # API --------------------------------------------------------------------
    def send(self, sid: str, data: Wire) -> bool:
        """Send one message (str: text, bytes: binary) to ``sid``."""
        return self.engine.send(sid, Outgoing.messages((data,)))

    def disconnect(self, sid: str | None = None) -> None:
        """Close one session, or all of them when ``sid`` is None."""
        if sid is None:
            for each in list(self.engine.sessions):
                self.engine.close(each)
        else:
            self.engine.close(sid)

    def transport(self, sid: str) -> str | None:
        """``"polling"`` or ``"websocket"``."""
        return self.engine.transport(sid)

    def get_environ(self, sid: str) -> Environ | None:
        """The handshake environ of ``sid``."""
        return self.engine.environ(sid)

    def handle_request(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """WSGI entry point."""
        return self.engine.handle_request(environ, start_response)

    def start_background_task(
        self, target: Callable[..., object], *args: object, **kwargs: object
    ) -> Task:
        """Run ``target`` in a task of this server's async mode."""
        return self.driver.spawn(target, *args, **kwargs)

    def sleep(self, seconds: float = 0) -> None:
        """Sleep in a way that suits the async mode."""
        self.driver.sleep(seconds)

    def shutdown(self) -> None:
        """Close every session and stop the timers."""
        self.engine.shutdown()


class WSGIApp(_WSGIApp):
    """Mount an Engine.IO :class:`Server` at ``/<engineio_path>/``."""

    def __init__(
        self,
        engineio_app: Server,
        wsgi_app: WSGIApplication | None = None,
        static_files: StaticFilesMap | None = None,
        engineio_path: str = "engine.io",
    ) -> None:
        super().__init__(engineio_app, wsgi_app, static_files, socketio_path=engineio_path)
