"""Serve an application in one call: :func:`run` (and ``python -m sio_wsgi``).

:func:`run` takes a :class:`~sio_wsgi.WSGIApp`, a :class:`~sio_wsgi.Server`
alone, or any WSGI application (Flask, Django) with ``server=`` a ``Server``,
and serves it on the WSGI server that fits the server's async mode:

=============  ===================================================================
async mode     WSGI server
=============  ===================================================================
gevent         ``gevent.pywsgi.WSGIServer``
eventlet       ``eventlet.wsgi.server``
threading      werkzeug's threaded server when werkzeug is installed, else the
               standard library's :mod:`wsgiref` with one thread per connection
=============  ===================================================================

All of them let sio_wsgi take the socket over for WebSocket (see
:mod:`sio_wsgi.transports.hijack`). The first log line names the choice::

    sio_wsgi 0.1.0 serving on http://127.0.0.1:5000 (gevent.pywsgi, async mode gevent)

``SIGINT`` (Ctrl-C) and ``SIGTERM`` stop it gracefully: the listening socket
closes, :meth:`Server.shutdown` disconnects every client (their disconnect
handlers run), in-flight requests get :data:`~sio_wsgi.config.RUN_GRACE`
seconds, and :func:`run` returns. A second signal stops at once.

``reloader=True`` runs the server in a child process that werkzeug's reloader
restarts when a source file changes (development only). ``workers=N`` (N > 1)
hands the process over to gunicorn with the worker class of the async mode
(:data:`~sio_wsgi.config.GUNICORN_WORKER_CLASS`); it needs a client manager
(``RedisManager``, ``KombuManager``), since processes without one do not see
each other's clients, and the application must be importable as
``module:attr``.

The green modes work only in a process their library has monkey-patched
before anything else was imported: ``python -m sio_wsgi --async-mode gevent
module:app`` does that (:func:`patch`, then the import).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from .config import (
    ASYNC_MODES,
    GUNICORN_THREADS,
    GUNICORN_WORKER_CLASS,
    RUN_GRACE,
    RUN_HOST,
    RUN_POLL,
    RUN_PORT,
    RUN_RELOAD_INTERVAL,
)
from .exceptions import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server
    from .wsgi import WSGIApplication

__all__ = ["run", "serve", "patch", "load", "wsgi_app", "Served", "resolve", "gunicorn_argv"]

logger = logging.getLogger(__name__)

#: ``log_level`` names accepted (``logging``'s, lower case)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: environment variable werkzeug's reloader sets in the child it runs the server in
_RELOADER_CHILD = "WERKZEUG_RUN_MAIN"


@dataclass(frozen=True)
class Served:
    """What :func:`run` serves, once resolved.

    :param app: the WSGI application handed to the WSGI server.
    :param sio: its :class:`~sio_wsgi.Server` (None: a WSGI application that
        hides it, such as ``WSGIApp`` under another middleware).
    :param async_mode: ``'threading'``, ``'eventlet'`` or ``'gevent'``.
    """

    app: WSGIApplication
    sio: Server | None
    async_mode: str


def resolve(app: Any, server: Any = None, async_mode: str | None = None) -> Served:
    """Work out the application, its Server and the async mode.

    :param app: a ``WSGIApp``, a ``Server``, or a WSGI application.
    :param server: the ``Server`` to wrap a plain WSGI application with.
    :param async_mode: the mode asked for; must be the Server's when there is one.
    :returns: what to serve.
    :raises ConfigError: for an object that is none of those, a second Server,
        or a mode that is not the Server's.
    """
    from .server import Server
    from .wsgi import WSGIApp

    if async_mode is not None and async_mode not in ASYNC_MODES:
        raise ConfigError(f"unknown async_mode {async_mode!r}: use one of {', '.join(ASYNC_MODES)}")
    if server is not None and not isinstance(server, Server):
        raise ConfigError(f"server= must be a sio_wsgi.Server, not {type(server).__name__}")
    sio: Server | None
    if isinstance(app, Server):
        if server is not None and server is not app:
            raise ConfigError("run() got two Servers: the app and server=")
        sio, wsgi = app, WSGIApp(app)
    elif isinstance(app, WSGIApp):
        mounted = app.server if isinstance(app.server, Server) else None
        if server is not None and server is not mounted:
            raise ConfigError("run() got a WSGIApp and a different server=: pass only the WSGIApp")
        sio, wsgi = mounted, app
    elif callable(app):
        sio, wsgi = server, app if server is None else WSGIApp(server, app)
    else:
        raise ConfigError(
            f"cannot serve {type(app).__name__}: pass a sio_wsgi.WSGIApp, a sio_wsgi.Server, "
            "or a WSGI application with server=<sio_wsgi.Server>"
        )
    if sio is None:
        from .runtime.select import detect_async_mode

        return Served(wsgi, None, async_mode or detect_async_mode())
    if async_mode is not None and async_mode != sio.async_mode:
        raise ConfigError(
            f"async_mode={async_mode!r}, but the Server runs in {sio.async_mode!r} mode: "
            f"create it with async_mode={async_mode!r} (or leave it out) in a process "
            f"patched first (python -m sio_wsgi --async-mode {async_mode} module:app)"
        )
    return Served(wsgi, sio, sio.async_mode)


def patch(async_mode: str | None) -> None:
    """Monkey-patch the process for a green mode (no-op for threading and None).

    Call it before anything else is imported: ``python -m sio_wsgi`` does.

    :param async_mode: ``'gevent'``, ``'eventlet'``, ``'threading'`` or None.
    :raises ConfigError: when the library is not installed.
    """
    if async_mode not in ("gevent", "eventlet"):
        return
    from .runtime.select import detect_async_mode

    if detect_async_mode() == async_mode:
        return  # patched already (by the application, or by the reloader's parent)
    try:
        if async_mode == "gevent":
            from gevent import monkey

            monkey.patch_all()
        else:
            with warnings.catch_warnings():  # its import warns "Eventlet is deprecated"
                warnings.filterwarnings("ignore", r"\s*Eventlet is deprecated")
                import eventlet
            eventlet.monkey_patch()
    except ImportError as exc:
        raise ConfigError(
            f"async_mode={async_mode!r} needs the {async_mode} package: "
            f"pip install 'sio_wsgi[{async_mode}]'"
        ) from exc


def load(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted) and return the object.

    Without ``:attr``, the first of ``app``, ``application``, ``sio`` the module has.

    :param spec: ``'package.module:name'``.
    :returns: the object.
    :raises ConfigError: when the module or the attribute is missing.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"{spec!r} is not module:attr")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # a module the application imports is missing: its own traceback
        raise ConfigError(
            f"no module named {exc.name!r} (from {spec!r}): run from the directory that "
            "holds it, or put that directory on PYTHONPATH"
        ) from exc
    names = [attr] if attr else ["app", "application", "sio"]
    for name in names:
        obj: Any = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise ConfigError(f"module {module_name!r} has no {' or '.join(names)}")


def wsgi_app(target: str, server: str | None = None) -> WSGIApplication:
    """The WSGI application for ``target`` (and ``server``), both ``module:attr``.

    gunicorn loads this factory when :func:`run` hands over to it with a Server
    alone or a WSGI application plus a Server.

    :param target: a ``WSGIApp``, a ``Server`` or a WSGI application.
    :param server: the ``Server`` for a plain WSGI application.
    :returns: the application.
    """
    return resolve(load(target), load(server) if server else None).app


# ---------------------------------------------------------------- the WSGI servers


class _WSGIServer(Protocol):
    """One WSGI server, bound at construction."""

    name: str
    address: tuple[str, int]

    def start(self) -> None: ...
    def alive(self) -> bool: ...
    def stop_accepting(self) -> None: ...
    def close(self, grace: float) -> None: ...


class _Threaded:
    """werkzeug's threaded server (or wsgiref's, threaded) on a background thread."""

    def __init__(self, host: str, port: int, app: WSGIApplication, options: Mapping[str, Any]):
        try:
            from werkzeug.serving import make_server
        except ImportError:
            self.name = "wsgiref, threaded"
            self._httpd: Any = _wsgiref_server(host, port, app, options)
        else:
            self.name = "werkzeug, threaded"
            self._httpd = make_server(host, port, app, threaded=True, **options)
        self.address = self._httpd.server_address[:2]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": RUN_POLL}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop_accepting(self) -> None:
        self._httpd.shutdown()

    def close(self, grace: float) -> None:
        self._httpd.server_close()


def _wsgiref_server(host: str, port: int, app: WSGIApplication, options: Mapping[str, Any]) -> Any:
    """The standard library's WSGI server with a thread per connection."""
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logging.getLogger("wsgiref").info(format, *args)

    return make_server(host, port, app, ThreadingWSGIServer, Handler, **options)


class _Gevent:
    """``gevent.pywsgi.WSGIServer``."""

    name = "gevent.pywsgi"

    def __init__(self, host: str, port: int, app: WSGIApplication, options: Mapping[str, Any]):
        from gevent.pywsgi import WSGIServer

        log = logging.getLogger("gevent.pywsgi")
        self._server = WSGIServer((host, port), app, log=log, error_log=log, **options)
        self._server.init_socket()
        self.address = self._server.address[:2]

    def start(self) -> None:
        self._server.start()

    def alive(self) -> bool:
        return bool(self._server.started)

    def stop_accepting(self) -> None:
        self._server.stop_accepting()

    def close(self, grace: float) -> None:
        self._server.stop(timeout=grace)


class _Eventlet:
    """``eventlet.wsgi.server`` on a green thread."""

    name = "eventlet.wsgi"

    def __init__(self, host: str, port: int, app: WSGIApplication, options: Mapping[str, Any]):
        import eventlet

        self._sock = eventlet.listen((host, port))
        self.address = self._sock.getsockname()[:2]
        self._app = app
        self._options = options
        self._thread: Any = None

    def start(self) -> None:
        import eventlet
        import eventlet.wsgi

        self._thread = eventlet.spawn(
            eventlet.wsgi.server,
            self._sock,
            self._app,
            log=logging.getLogger("eventlet.wsgi"),
            **self._options,
        )

    def alive(self) -> bool:
        return self._thread is not None and not self._thread.dead

    def stop_accepting(self) -> None:
        # the server's own clean-up: idle connections shut, busy ones finish
        self._thread.kill()

    def close(self, grace: float) -> None:
        import eventlet
        from greenlet import GreenletExit

        with eventlet.Timeout(grace, False), contextlib.suppress(GreenletExit):
            self._thread.wait()  # re-raises the GreenletExit of stop_accepting()


_SERVERS: dict[str, Callable[[str, int, WSGIApplication, Mapping[str, Any]], _WSGIServer]] = {
    "threading": _Threaded,
    "gevent": _Gevent,
    "eventlet": _Eventlet,
}


# ---------------------------------------------------------------- signals


class _StopSignal:
    """SIGINT / SIGTERM set a flag the main loop polls; a second one stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Catch the signals: only possible on the main OS thread, and left to
        werkzeug's reloader in the child process it runs the server in.

        :returns: whether they are caught here.
        """
        if os.environ.get(_RELOADER_CHILD) == "true":
            return False
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:  # not the main thread (green threads are, under eventlet)
            self.restore()
            return False
        return True

    def restore(self) -> None:
        """Put the previous handlers back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


# ---------------------------------------------------------------- run


def _configure_logging(log_level: str | None) -> None:
    """Log to stderr at ``log_level`` unless the application configured logging."""
    if log_level is None:
        return
    if log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    level = getattr(logging, log_level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(level)


def _version() -> str:
    """sio_wsgi's version (the package is imported before any of its modules)."""
    return str(getattr(sys.modules[__package__ or "sio_wsgi"], "__version__", "?"))


def _url(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    served: Served, host: str, port: int, options: Mapping[str, Any], grace: float = RUN_GRACE
) -> None:
    """Serve until SIGINT / SIGTERM, then shut down gracefully (see the module).

    :param served: from :func:`resolve`.
    :param host: address to bind.
    :param port: port to bind (0: any free one; the log line says which).
    :param options: keyword arguments of the WSGI server.
    :param grace: seconds in-flight requests get after the Server's shutdown.
    """
    http = _SERVERS[served.async_mode](host, port, served.app, options)
    stop = _StopSignal()
    caught = stop.install()
    logger.info(
        "sio_wsgi %s serving on %s (%s, async mode %s%s)",
        _version(),
        _url(http.address),
        http.name,
        served.async_mode,
        ", reloader on" if os.environ.get(_RELOADER_CHILD) == "true" else "",
    )
    if served.sio is None:
        logger.warning("no sio_wsgi.Server in sight: it will not be shut down gracefully")
    try:
        http.start()
        while stop.signum is None and http.alive():
            time.sleep(RUN_POLL)  # green under gevent / eventlet (patched)
        if stop.signum is not None:
            logger.info("%s: shutting down", signal.Signals(stop.signum).name)
        http.stop_accepting()
        if served.sio is not None:
            served.sio.shutdown()
        http.close(grace)
    finally:
        if caught:
            stop.restore()
    logger.info("sio_wsgi stopped")


def _run_with_reloader(main: Callable[[], None]) -> None:
    """Run ``main`` under werkzeug's reloader (a child process, restarted on changes)."""
    try:  # werkzeug's run_simple(use_reloader=True) runs this one (no public name since 2.1)
        from werkzeug._reloader import run_with_reloader
    except ImportError as exc:
        raise ConfigError(
            "reloader=True (--reload) uses werkzeug's reloader: pip install werkzeug"
        ) from exc
    # "stat": polling, no extra thread library (green modes run it on a greenlet)
    run_with_reloader(main, interval=RUN_RELOAD_INTERVAL, reloader_type="stat")


def _import_path(obj: object) -> str | None:
    """``module:attr`` under which ``obj`` can be imported, if a loaded module has it."""
    main = sys.modules.get("__main__")
    found_in_main: str | None = None
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith("sio_wsgi"):
            continue
        for attr, value in list(vars(module).items()):
            if value is obj and not attr.startswith("_"):
                if module is not main:
                    return f"{name}:{attr}"
                found_in_main = attr
    if found_in_main is None or main is None:
        return None
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return f"{spec.name}:{found_in_main}"
    path = getattr(main, "__file__", None)
    if path:
        return f"{os.path.splitext(os.path.basename(path))[0]}:{found_in_main}"
    return None


def gunicorn_argv(
    target: str,
    async_mode: str,
    workers: int,
    host: str,
    port: int,
    log_level: str | None,
    options: Mapping[str, Any],
) -> list[str]:
    """The gunicorn command for :func:`run`'s ``workers=N``.

    :param target: gunicorn's application (``module:attr``, or a factory call).
    :param async_mode: picks the worker class.
    :param workers: worker processes.
    :param host: address to bind.
    :param port: port to bind.
    :param log_level: gunicorn's ``--log-level``.
    :param options: more gunicorn settings: ``graceful_timeout=2`` becomes
        ``--graceful-timeout 2``, ``True`` a bare flag.
    :returns: the argv, starting with the Python interpreter.
    """
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = [sys.executable, "-m", "gunicorn", "-k", GUNICORN_WORKER_CLASS[async_mode]]
    argv += ["-w", str(workers), "-b", bind]
    if async_mode == "threading" and "threads" not in options:
        argv += ["--threads", str(GUNICORN_THREADS)]
    if log_level:
        argv += ["--log-level", log_level.lower()]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value is not None:
            argv += [flag, str(value)]
    argv.append(target)
    return argv


def _gunicorn_target(app: Any, app_obj: object, server: Any, server_obj: object) -> str:
    """gunicorn's application argument for what :func:`run` got (objects or names)."""
    from .wsgi import WSGIApp

    path = app if isinstance(app, str) else _import_path(app_obj)
    if path is not None and isinstance(app_obj, WSGIApp):
        return path
    server_path = server if isinstance(server, str) or server is None else _import_path(server_obj)
    if path is not None and (server is None or server_path is not None):
        args = repr(path) if server_path is None else f"{path!r}, {server_path!r}"
        return f"sio_wsgi.runner:wsgi_app({args})"
    raise ConfigError(
        "workers > 1 runs gunicorn, which imports the application by name, and this one is "
        "not a module attribute: run `python -m sio_wsgi module:app --workers N`"
    )


def _hand_over_to_gunicorn(
    served: Served,
    target: str,
    workers: int,
    host: str,
    port: int,
    log_level: str | None,
    options: Mapping[str, Any],
) -> None:
    """Check for a client manager, then replace this process with gunicorn."""
    from .managers.pubsub import PubSubManager

    if served.sio is None:
        logger.warning("workers=%d: cannot see the Server to check its client manager", workers)
    elif not isinstance(served.sio.manager, PubSubManager):
        raise ConfigError(
            f"workers={workers} needs a client manager: without one each process knows only "
            "its own clients, so emits, rooms and polling requests that reach another worker "
            "are lost. Create the Server with client_manager=sio_wsgi.RedisManager(url) "
            "(or KombuManager), or use workers=1 (one process serves thousands of clients "
            "in the gevent / eventlet modes)"
        )
    try:
        import gunicorn  # noqa: F401 - only checks it is installed
    except ImportError as exc:
        raise ConfigError(f"workers={workers} runs gunicorn: pip install gunicorn") from exc
    argv = gunicorn_argv(target, served.async_mode, workers, host, port, log_level, options)
    logger.info(
        "sio_wsgi %s serving on %s (gunicorn, %d workers of class %s, async mode %s)",
        _version(),
        _url((host, port)),
        workers,
        GUNICORN_WORKER_CLASS[served.async_mode],
        served.async_mode,
    )
    logger.info("exec %s", " ".join(argv))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def run(
    app: Any,
    host: str = RUN_HOST,
    port: int = RUN_PORT,
    *,
    server: Any = None,
    async_mode: str | None = None,
    workers: int = 1,
    reloader: bool = False,
    log_level: str | None = "info",
    **server_options: Any,
) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM (see the module for the choices made).

    :param app: a :class:`~sio_wsgi.WSGIApp`, a :class:`~sio_wsgi.Server` (wrapped
        in a ``WSGIApp``), or any WSGI application together with ``server=``; or
        the name of one, ``'module:attr'``, imported here (after :func:`patch` for
        a green ``async_mode``; in the reloader's child process only).
    :param host: address to bind.
    :param port: port to bind (0: a free one, named in the first log line).
    :param server: the ``Server`` (or ``'module:attr'``) to wrap a plain WSGI
        application (Flask, Django) with.
    :param async_mode: the mode expected (the Server's must match); None: the Server's.
    :param workers: more than 1 hands over to gunicorn (needs a client manager).
    :param reloader: restart on source changes (werkzeug's reloader; development only).
    :param log_level: level of the log on stderr (``'info'``...); None leaves logging alone.
    :param server_options: keyword arguments for the WSGI server (gevent's
        ``WSGIServer``, ``eventlet.wsgi.server``, werkzeug's ``make_server``), or
        gunicorn settings with ``workers > 1`` (``graceful_timeout=2``).
    :raises ConfigError: for what cannot be served as asked (the message says why).
    """
    _configure_logging(log_level)
    if workers < 1:
        raise ConfigError(f"workers={workers}: at least 1")
    reloader_parent = reloader and workers == 1 and os.environ.get(_RELOADER_CHILD) != "true"
    if (isinstance(app, str) or isinstance(server, str)) and not reloader_parent:
        # before the import, and before the reloader's child starts its thread; never in
        # the reloader's parent, which only restarts the child (and must stay unpatched
        # for SIGTERM to end the child with it)
        patch(async_mode)
    if reloader and workers == 1:

        def main() -> None:
            run(
                app,
                host,
                port,
                server=server,
                async_mode=async_mode,
                log_level=None,
                **server_options,
            )

        _run_with_reloader(main)
        return
    app_obj = load(app) if isinstance(app, str) else app
    server_obj = load(server) if isinstance(server, str) else server
    served = resolve(app_obj, server_obj, async_mode)
    if workers > 1:
        target = _gunicorn_target(app, app_obj, server, server_obj)
        options = {**server_options, "reload": True} if reloader else server_options
        _hand_over_to_gunicorn(served, target, workers, host, port, log_level, options)
        return
    serve(served, host, port, server_options)
