"""The application the hostile-input catalogue attacks (one subprocess per async mode).

::

    PYTHONPATH=. python tests/hostile/hostile_app.py --async-mode gevent --port 5000

(from the checkout's root: ``PYTHONPATH`` makes it use this checkout's ``sio_wsgi``;
the tests' :class:`~tests.hostile.hostile_support.HostileServer` sets it).

It runs ``sio_wsgi.Server`` with small limits (so every limit is cheap to hit)
and the security options at their defaults (same-origin CORS), plus a sticky
cookie and ``static_files`` mapped on ``/static/`` and ``/public`` (no trailing slash).

Socket.IO handlers on ``/`` (and ``echo`` on ``/chat``):

- ``echo(*args)`` acks the arguments; ``join(room)``; ``boom()`` raises;
  ``block(seconds)`` sleeps in the handler; ``flood(n, size)`` emits ``n``
  ``flood`` events of ``size`` characters to the caller; ``bcast(data)``
  emits ``bcast`` to everybody else.
- a background task emits ``tick`` to room ``ticks`` every 0.05 s.

Introspection routes (plain WSGI, everything else falls through to 404):

- ``GET /_hostile/health``: ``{"ok": true, "pid": ...}``
- ``GET /_hostile/stats``: engine sessions, Socket.IO clients, RSS bytes, threads
- ``GET /_hostile/disconnects``: every disconnect handler call ``{sid, namespace, reason}``
- ``POST /_hostile/shutdown``: ``sio.shutdown()``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["LIMITS", "build_app", "main", "rss_bytes"]

logger = logging.getLogger("hostile.app")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TICK_SECONDS = 0.05

#: server options of the catalogue (small, so that each limit is cheap to reach)
LIMITS: dict[str, Any] = {
    "ping_interval": 1.0,
    "ping_timeout": 1.5,
    "max_http_buffer_size": 64_000,
    "max_attachments": 3,
    "max_json_depth": 16,
    "max_pending_bytes": 256_000,
    "connect_timeout": 1.5,
    "upgrade_timeout": 1.0,
    "http_body_timeout": 1.0,
    "cookie": "io",
}


def rss_bytes() -> int:
    """Resident set size of this process.

    :returns: bytes (0 when /proc is not available).
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _json(start_response: Any, body: Any, status: str = "200 OK") -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class Routes:
    """The introspection routes, a plain WSGI app.

    :param sio: the Socket.IO server.
    :param disconnects: the disconnect log (shared with the handlers).
    """

    def __init__(self, sio: Any, disconnects: list[dict[str, Any]]) -> None:
        self.sio = sio
        self.disconnects = disconnects

    def stats(self) -> dict[str, Any]:
        """:returns: the counters the catalogue watches."""
        import threading

        return {
            "sessions": len(self.sio.eio.sessions),
            "clients": len(self.sio._clients),
            "rss": rss_bytes(),
            "threads": threading.active_count(),
            "fds": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1,
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_hostile/health":
            return _json(start_response, {"ok": True, "pid": os.getpid()})
        if path == "/_hostile/stats":
            return _json(start_response, self.stats())
        if path == "/_hostile/disconnects":
            return _json(start_response, list(self.disconnects))
        if path == "/_hostile/shutdown" and method == "POST":
            self.sio.shutdown()
            return _json(start_response, {"ok": True})
        return _json(start_response, {"code": 404, "message": "Not found"}, "404 Not Found")


def _register(sio: Any, disconnects: list[dict[str, Any]]) -> None:
    """Register the test handlers.

    :param sio: the server.
    :param disconnects: where disconnects are recorded.
    """

    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and isinstance(auth.get("room"), str):
            sio.enter_room(sid, auth["room"])

    def disconnect(sid: str, reason: Any = None) -> None:
        disconnects.append({"sid": sid, "namespace": "/", "reason": str(reason)})

    def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    def join(sid: str, room: str) -> str:
        sio.enter_room(sid, room)
        return room

    def boom(sid: str, *args: Any) -> None:
        raise RuntimeError("boom: a handler failing on purpose")

    def block(sid: str, seconds: float) -> str:
        sio.sleep(0)  # let the reply path run in green modes
        import time

        time.sleep(min(float(seconds), 10.0))  # patched under eventlet / gevent
        return "unblocked"

    def flood(sid: str, n: int, size: int) -> int:
        chunk = "x" * int(size)
        for _ in range(int(n)):
            sio.emit("flood", chunk, to=sid)
        return int(n)

    def bcast(sid: str, data: Any) -> bool:
        sio.emit("bcast", data, skip_sid=sid)
        return True

    for name, fn in {
        "connect": connect,
        "disconnect": disconnect,
        "echo": echo,
        "join": join,
        "boom": boom,
        "block": block,
        "flood": flood,
        "bcast": bcast,
    }.items():
        sio.on(name, fn)

    def chat_disconnect(sid: str, reason: Any = None) -> None:
        disconnects.append({"sid": sid, "namespace": "/chat", "reason": str(reason)})

    sio.on("echo", echo, namespace="/chat")
    sio.on("disconnect", chat_disconnect, namespace="/chat")


def _ticker(sio: Any) -> None:
    n = 0
    while True:
        sio.sleep(TICK_SECONDS)
        n += 1
        try:
            sio.emit("tick", n, to="ticks")
        except Exception:
            logger.exception("tick %s failed", n)


def build_app(async_mode: str) -> tuple[Any, Any]:
    """Build the server and its WSGI app (after monkey-patching).

    :param async_mode: 'threading', 'eventlet' or 'gevent'.
    :returns: ``(sio, wsgi_app)``.
    """
    import sio_wsgi

    sio = sio_wsgi.Server(async_mode=async_mode, logger=True, engineio_logger=True, **LIMITS)
    disconnects: list[dict[str, Any]] = []
    _register(sio, disconnects)
    app = sio_wsgi.WSGIApp(
        sio,
        Routes(sio, disconnects),
        static_files={"/static/": str(STATIC_DIR), "/public": str(STATIC_DIR)},
    )
    return sio, app


def _serve(mode: str, app: Any, port: int) -> None:
    if mode == "eventlet":
        import eventlet
        import eventlet.wsgi

        eventlet.wsgi.server(eventlet.listen(("127.0.0.1", port)), app, log_output=False)
    elif mode == "gevent":
        from gevent.pywsgi import WSGIServer

        WSGIServer(("127.0.0.1", port), app, log=None).serve_forever()
    else:
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


def main(argv: list[str] | None = None) -> None:
    """Patch, build and serve until killed.

    :param argv: command line, ``sys.argv[1:]`` when None.
    """
    p = argparse.ArgumentParser(description="hostile-input target app")
    p.add_argument("--async-mode", choices=("threading", "eventlet", "gevent"), required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    if args.async_mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif args.async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sio, app = build_app(args.async_mode)
    sio.start_background_task(_ticker, sio)
    logger.warning("hostile app mode=%s on 127.0.0.1:%s", args.async_mode, args.port)
    _serve(args.async_mode, app, args.port)


if __name__ == "__main__":
    main()
