"""Serve a WSGI app with one of the WSGI servers sio_wsgi supports.

Usage: ``python run_server.py KIND PORT MODULE:ATTR`` with KIND one of
``werkzeug``, ``eventlet``, ``gevent``, ``wsgiref``. (gunicorn is started with its
own command line.) Monkey-patching happens first, before the app is imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["main"]

HOST = "127.0.0.1"


def _load(spec: str) -> Any:
    # ``module`` is found next to this script: ``python run_server.py`` puts its directory
    # first on sys.path
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


def _werkzeug(port: int, spec: str) -> None:
    from werkzeug.serving import run_simple

    run_simple(HOST, port, _load(spec), threaded=True)


def _eventlet(port: int, spec: str) -> None:
    import eventlet

    eventlet.monkey_patch()
    import eventlet.wsgi

    eventlet.wsgi.server(eventlet.listen((HOST, port)), _load(spec))


def _gevent(port: int, spec: str) -> None:
    from gevent import monkey

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer

    WSGIServer((HOST, port), _load(spec)).serve_forever()


def _wsgiref(port: int, spec: str) -> None:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    make_server(HOST, port, _load(spec), server_class=ThreadingWSGIServer).serve_forever()


SERVERS: dict[str, Callable[[int, str], None]] = {
    "werkzeug": _werkzeug,
    "eventlet": _eventlet,
    "gevent": _gevent,
    "wsgiref": _wsgiref,
}


def main(argv: list[str]) -> None:
    """Run the server named by ``argv[1]`` on port ``argv[2]`` for app ``argv[3]``.

    :param argv: the command line.
    """
    kind, port, spec = argv[1], int(argv[2]), argv[3]
    SERVERS[kind](port, spec)


if __name__ == "__main__":
    main(sys.argv)
