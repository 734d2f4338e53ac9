"""Server for the protocol conformance suite (``tests/conformance``).

It reproduces, on one port, the setups the official Engine.IO v4 and
Socket.IO v5 protocol test suites expect:

* ``/engine.io/``: an Engine.IO-only server that echoes every message back;
* ``/socket.io/``: a Socket.IO server with a ``/custom`` namespace; on connect
  it emits ``auth`` with the handshake auth (``{}`` when none), ``message`` is
  answered with ``message-back`` carrying the same arguments and
  ``message-with-ack`` is acknowledged with the same arguments;
* ``/restricted/``: an Engine.IO-only server whose CORS policy only accepts
  the origin ``http://allowed.test`` (used to check the 403 reply).

Both live servers use pingInterval 300 ms, pingTimeout 200 ms, maxPayload
1e6 and CORS ``*``; the Socket.IO server has a 1 s connect timeout
(python-socketio has no such option: with ``--impl socketio`` it is not set).

``--impl sio_wsgi`` (default) uses this project; ``--impl socketio`` uses
python-socketio / python-engineio as a baseline. ``--async-mode`` picks the
HTTP server: werkzeug ``run_simple(threaded=True)``, ``eventlet.wsgi`` (after
``eventlet.monkey_patch()``) or ``gevent.pywsgi`` (after
``gevent.monkey.patch_all()``). The process prints ``READY <port>`` on stdout
once it is about to serve.

The ``connect`` handlers run with ``always_connect=True`` so that, as with the
Node.js ``connection`` event, the CONNECT reply is on the wire before the
``auth`` event the handler emits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["build_app", "main", "parse_args"]

logger = logging.getLogger(__name__)

PING_INTERVAL = 0.3
PING_TIMEOUT = 0.2
MAX_PAYLOAD = 1_000_000
CONNECT_TIMEOUT = 1.0
ALLOWED_ORIGIN = "http://allowed.test"

WSGICallable = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    :param argv: arguments (``sys.argv[1:]`` when ``None``).
    :returns: the parsed options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--impl", choices=("sio_wsgi", "socketio"), default="sio_wsgi")
    parser.add_argument(
        "--async-mode", choices=("threading", "eventlet", "gevent"), default="threading"
    )
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Fallback WSGI app: 404 for anything outside the mounted paths.

    :param environ: WSGI environ.
    :param start_response: WSGI start_response.
    :returns: the body.
    """
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


def _import_impl(impl: str) -> tuple[Any, Any]:
    """Import the Socket.IO and Engine.IO packages of ``impl``.

    :param impl: ``sio_wsgi`` or ``socketio``.
    :returns: ``(socketio_module, engineio_module)``.
    """
    if impl == "socketio":
        import engineio
        import socketio

        return socketio, engineio
    import sio_wsgi  # this checkout's: the tests start this script with PYTHONPATH=<root>
    import sio_wsgi.engineio

    return sio_wsgi, sio_wsgi.engineio


def _common_options(impl: str, async_mode: str) -> dict[str, Any]:
    """Options shared by every server of the app.

    :param impl: ``sio_wsgi`` or ``socketio``.
    :param async_mode: the async mode.
    :returns: keyword arguments.
    """
    options: dict[str, Any] = {
        "async_mode": async_mode,
        "ping_interval": PING_INTERVAL,
        "ping_timeout": PING_TIMEOUT,
        "max_http_buffer_size": MAX_PAYLOAD,
    }
    if impl == "socketio":
        # python-engineio runs each handler in its own thread by default, which
        # could reorder the echo of a multi-packet payload.
        options["async_handlers"] = False
    return options


def build_echo_engine(impl: str, async_mode: str, eio_mod: Any, origins: Any) -> Any:
    """Create the echoing Engine.IO server of the Engine.IO suite.

    :param impl: ``sio_wsgi`` or ``socketio``.
    :param async_mode: the async mode.
    :param eio_mod: the Engine.IO package.
    :param origins: the ``cors_allowed_origins`` value.
    :returns: the Engine.IO server.
    """
    eio = eio_mod.Server(cors_allowed_origins=origins, **_common_options(impl, async_mode))

    def message(sid: str, data: Any) -> None:
        eio.send(sid, data)

    eio.on("message", message)
    return eio


def _register_namespace(sio: Any, namespace: str) -> None:
    """Install the handlers of the Socket.IO suite on ``namespace``.

    :param sio: the Socket.IO server.
    :param namespace: namespace name.
    """

    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        sio.emit("auth", auth if auth is not None else {}, to=sid, namespace=namespace)

    def message(sid: str, *args: Any) -> None:
        sio.emit("message-back", tuple(args), to=sid, namespace=namespace)

    def message_with_ack(sid: str, *args: Any) -> tuple[Any, ...]:
        return tuple(args)

    sio.on("connect", connect, namespace=namespace)
    sio.on("message", message, namespace=namespace)
    sio.on("message-with-ack", message_with_ack, namespace=namespace)


def build_socketio(impl: str, async_mode: str, sio_mod: Any) -> Any:
    """Create the Socket.IO server of the Socket.IO suite.

    :param impl: ``sio_wsgi`` or ``socketio``.
    :param async_mode: the async mode.
    :param sio_mod: the Socket.IO package.
    :returns: the Socket.IO server.
    """
    options = _common_options(impl, async_mode)
    options.pop("async_handlers", None)
    if impl == "sio_wsgi":
        options["connect_timeout"] = CONNECT_TIMEOUT
    sio = sio_mod.Server(cors_allowed_origins="*", always_connect=True, **options)
    for namespace in ("/", "/custom"):
        _register_namespace(sio, namespace)
    return sio


def build_app(impl: str, async_mode: str) -> WSGICallable:
    """Compose the WSGI app: Engine.IO echo, restricted Engine.IO, Socket.IO.

    :param impl: ``sio_wsgi`` or ``socketio``.
    :param async_mode: the async mode.
    :returns: the WSGI application.
    """
    sio_mod, eio_mod = _import_impl(impl)
    sio = build_socketio(impl, async_mode, sio_mod)
    app: WSGICallable = sio_mod.WSGIApp(sio, not_found, socketio_path="socket.io")
    restricted = build_echo_engine(impl, async_mode, eio_mod, [ALLOWED_ORIGIN])
    app = eio_mod.WSGIApp(restricted, app, engineio_path="restricted")
    echo = build_echo_engine(impl, async_mode, eio_mod, "*")
    return eio_mod.WSGIApp(echo, app, engineio_path="engine.io")  # type: ignore[no-any-return]


def _ready(port: int) -> None:
    """Announce readiness on stdout.

    :param port: the listening port.
    """
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()


def serve_threading(args: argparse.Namespace) -> None:
    """Serve with werkzeug's threaded development server.

    :param args: parsed options.
    """
    from werkzeug.serving import run_simple

    app = build_app(args.impl, "threading")
    _ready(args.port)
    run_simple("127.0.0.1", args.port, app, threaded=True, use_reloader=False)


def serve_eventlet(args: argparse.Namespace) -> None:
    """Serve with ``eventlet.wsgi`` (the caller has monkey-patched).

    :param args: parsed options.
    """
    import eventlet
    import eventlet.wsgi

    app = build_app(args.impl, "eventlet")
    listener = eventlet.listen(("127.0.0.1", args.port))
    _ready(args.port)
    eventlet.wsgi.server(listener, app, log_output=False)


def serve_gevent(args: argparse.Namespace) -> None:
    """Serve with ``gevent.pywsgi`` (the caller has monkey-patched).

    :param args: parsed options.
    """
    from gevent.pywsgi import WSGIServer

    app = build_app(args.impl, "gevent")
    server = WSGIServer(("127.0.0.1", args.port), app, log=None)
    _ready(args.port)
    server.serve_forever()


SERVERS: dict[str, Callable[[argparse.Namespace], None]] = {
    "threading": serve_threading,
    "eventlet": serve_eventlet,
    "gevent": serve_gevent,
}


def _monkey_patch(async_mode: str) -> None:
    """Monkey-patch the standard library for eventlet / gevent.

    :param async_mode: the async mode.
    """
    if async_mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point.

    :param argv: command line arguments.
    """
    args = parse_args(argv)
    _monkey_patch(args.async_mode)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logger.info("conformance app: impl=%s mode=%s port=%s", args.impl, args.async_mode, args.port)
    SERVERS[args.async_mode](args)


if __name__ == "__main__":
    main()
