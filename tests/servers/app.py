"""End-to-end test application: one Flask app wrapped by a Socket.IO WSGI app.

The same handlers run on either implementation, so the e2e suite can be
validated against python-socketio (the baseline) and then run against
sio_wsgi::

    PYTHONPATH=. python tests/servers/app.py --impl sio_wsgi --async-mode eventlet --port 5000
    PYTHONPATH=. python tests/servers/app.py --impl socketio --async-mode threading --port 5000

(from the checkout's root: ``PYTHONPATH`` makes it use this checkout's ``sio_wsgi``, as
the ``live_server`` fixture does)

Server per async mode: ``threading`` uses werkzeug ``run_simple(threaded=True)``
(which exposes the raw socket as ``environ['werkzeug.socket']``), ``eventlet``
monkey-patches first and uses ``eventlet.wsgi.server``, ``gevent`` patches
first and uses ``gevent.pywsgi.WSGIServer``.

Handlers (on ``/`` and ``/chat``):

- ``connect(sid, environ, auth)``: refuses ``auth == {'token': 'bad'}`` with
  ``ConnectionRefusedError('bad token', {'why': 'x'})``, otherwise emits
  ``welcome`` with ``{'auth', 'sid', 'namespace'}``.
- ``echo(*args)``: acks the args and emits ``echo_back`` with them.
- ``join(room)`` / ``leave(room)``, ``to_room({room, event?, data})`` (skips the
  sender), ``broadcast(data)`` (all but the sender).
- ``ask_client(data)``: ``sio.call('question', data, to=sid, timeout=5)`` and
  acks ``{'answer': ...}`` (or ``{'error': ...}``).
- ``binary(*args)``: acks the args back plus a type map of what arrived.
- ``volatile_burst(n)``: ``n`` volatile ``vol`` events, then ``burst_done``.
- ``kick()``: the server disconnects the client from that namespace.
- ``disconnect_log()``: acks the recorded disconnects.

HTTP routes: ``GET /health``, ``GET /_log/disconnects``, ``POST /_log/clear``,
``POST /emit`` (``sio.emit`` from a view), ``POST /emit_from_thread`` (from a
plain OS thread), ``GET /`` (plain Flask page, proves fall-through).
A background task emits ``tick`` every 0.2 s to room ``ticks`` on ``/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

__all__ = ["parse_args", "build_app", "main"]

logger = logging.getLogger("e2e.app")

NAMESPACES = ("/", "/chat")
TICK_SECONDS = 0.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    :param argv: arguments, ``sys.argv[1:]`` when None.
    :returns: the parsed namespace.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=("sio_wsgi", "socketio"), default="sio_wsgi")
    p.add_argument("--async-mode", choices=("threading", "eventlet", "gevent"), default="threading")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--ping-interval", type=float, default=25.0)
    p.add_argument("--ping-timeout", type=float, default=20.0)
    p.add_argument(
        "--transports", default="polling,websocket", help="comma separated server transports"
    )
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--per-message-deflate", action="store_true", help="WebSocket compression (sio_wsgi)"
    )
    p.add_argument(
        "--serial-handlers", action="store_true", help="strictly serial handlers (sio_wsgi)"
    )
    return p.parse_args(argv)


def _monkey_patch(async_mode: str) -> None:
    """Monkey-patch the process for eventlet / gevent, before anything else is imported.

    :param async_mode: 'threading', 'eventlet' or 'gevent'.
    """
    if async_mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


def _os_thread_class(async_mode: str) -> Any:
    """Return a Thread class that creates a real OS thread even when monkey-patched.

    :param async_mode: the server's async mode.
    :returns: a ``threading.Thread``-like class.
    """
    if async_mode == "eventlet":
        from eventlet import patcher

        return patcher.original("threading").Thread
    if async_mode == "gevent":
        from gevent import monkey

        return monkey.get_original("threading", "Thread")
    import threading

    return threading.Thread


def _make_server(args: argparse.Namespace) -> tuple[Any, Any, type[Exception], type[Exception]]:
    """Create the Socket.IO server of the chosen implementation.

    :param args: parsed command line.
    :returns: ``(sio, WSGIApp class, ConnectionRefusedError class, call timeout error class)``.
    """
    opts: dict[str, Any] = {
        "async_mode": args.async_mode,
        "cors_allowed_origins": "*",
        "ping_interval": args.ping_interval,
        "ping_timeout": args.ping_timeout,
        "transports": [t for t in args.transports.split(",") if t],
    }
    if args.impl == "socketio":
        import socketio
        from socketio import exceptions as sio_exc

        sio = socketio.Server(logger=False, engineio_logger=False, **opts)
        return sio, socketio.WSGIApp, sio_exc.ConnectionRefusedError, sio_exc.TimeoutError
    import sio_wsgi  # this checkout's: the tests start this script with PYTHONPATH=<root>
    from sio_wsgi import exceptions as sw_exc

    if args.per_message_deflate:
        opts["per_message_deflate"] = True
    if args.serial_handlers:
        opts["serial_handlers"] = True
    sio = sio_wsgi.Server(**opts)
    return sio, sio_wsgi.WSGIApp, sw_exc.ConnectionRefusedError, sw_exc.TimeoutError


def _describe(value: Any) -> Any:
    """Replace bytes by ``'<bytes:N>'`` so the client can see what type arrived.

    :param value: any decoded payload.
    :returns: the same structure with bytes described.
    """
    if isinstance(value, (bytes, bytearray)):
        return f"<bytes:{len(value)}>"
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return value


def _supports_volatile(sio: Any) -> bool:
    """Tell whether ``sio.emit`` takes a ``volatile`` keyword (python-socketio does not).

    :param sio: the server.
    :returns: True when volatile emits are available.
    """
    import inspect

    try:
        return "volatile" in inspect.signature(sio.emit).parameters
    except (TypeError, ValueError):
        return False


class State:
    """Process-wide test state shared by the handlers and routes.

    :param sio: the Socket.IO server.
    :param refused: the ConnectionRefusedError class to raise.
    :param call_timeout: the exception ``sio.call`` raises on timeout.
    :param thread_class: a Thread class creating a real OS thread.
    """

    def __init__(
        self, sio: Any, refused: type[Exception], call_timeout: type[Exception], thread_class: Any
    ) -> None:
        import threading

        self.sio = sio
        self.refused = refused
        self.call_timeout = call_timeout
        self.thread_class = thread_class
        self.volatile = _supports_volatile(sio)
        self.disconnects: list[dict[str, Any]] = []
        self.log_lock = threading.Lock()

    def record_disconnect(self, sid: str, namespace: str, reason: Any) -> None:
        """Remember one disconnect for the ``/_log/disconnects`` route.

        :param sid: Socket.IO sid.
        :param namespace: the namespace.
        :param reason: the reason the server gave.
        """
        import time

        entry = {"sid": sid, "namespace": namespace, "reason": str(reason), "t": time.time()}
        with self.log_lock:
            self.disconnects.append(entry)
        logger.info("disconnect %s", entry)


def _register_namespace(st: State, ns: str) -> None:
    """Register every test handler on one namespace.

    :param st: shared state.
    :param ns: namespace name.
    """
    sio = st.sio

    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if auth == {"token": "bad"}:
            raise st.refused("bad token", {"why": "x"})
        sio.emit("welcome", {"auth": auth, "sid": sid, "namespace": ns}, to=sid, namespace=ns)

    def disconnect(sid: str, reason: Any = None) -> None:
        st.record_disconnect(sid, ns, reason)

    def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        sio.emit("echo_back", args, to=sid, namespace=ns)
        return args

    def join(sid: str, room: str) -> dict[str, Any]:
        sio.enter_room(sid, room, namespace=ns)
        return {"joined": room}

    def leave(sid: str, room: str) -> dict[str, Any]:
        sio.leave_room(sid, room, namespace=ns)
        return {"left": room}

    def to_room(sid: str, msg: dict[str, Any]) -> bool:
        event = msg.get("event", "room_msg")
        sio.emit(event, msg.get("data"), to=msg["room"], skip_sid=sid, namespace=ns)
        return True

    def broadcast(sid: str, data: Any) -> bool:
        sio.emit("broadcast_msg", data, skip_sid=sid, namespace=ns)
        return True

    def ask_client(sid: str, data: Any = None) -> dict[str, Any]:
        try:
            answer = sio.call("question", data, to=sid, namespace=ns, timeout=5)
        except st.call_timeout as exc:
            return {"error": f"timeout: {exc!r}"}
        return {"answer": answer}

    def ask_client_raw(sid: str, data: Any = None) -> dict[str, Any]:
        # like ask_client, but waiting on a plain Event the server knows nothing of
        import threading

        done, box = threading.Event(), []

        def got(*args: Any) -> None:
            box.append(args[0] if len(args) == 1 else list(args))
            done.set()

        sio.emit("question", data, to=sid, namespace=ns, callback=got)
        return {"answer": box[0]} if done.wait(5) else {"error": "timeout"}

    def block(sid: str, seconds: float) -> float:
        # blocks its thread without telling the server (time.sleep is patched in green modes)
        import time

        time.sleep(min(float(seconds), 5.0))
        return seconds

    def echo_plain(sid: str, *args: Any) -> None:
        # the same as echo_back, never compressed (sio_wsgi's per-emit compress flag)
        sio.emit("echo_back", args, to=sid, namespace=ns, compress=False)

    def binary(sid: str, *args: Any) -> tuple[Any, ...]:
        sio.emit("binary_back", args, to=sid, namespace=ns)
        return (*args, _describe(list(args)))

    def volatile_burst(sid: str, n: int) -> int:
        extra = {"volatile": True} if st.volatile else {}
        for i in range(int(n)):
            sio.emit("vol", i, to=sid, namespace=ns, **extra)
        sio.emit("burst_done", n, to=sid, namespace=ns)
        return int(n)

    def kick(sid: str) -> None:
        sio.disconnect(sid, namespace=ns)

    def disconnect_log(sid: str) -> list[dict[str, Any]]:
        with st.log_lock:
            return list(st.disconnects)

    handlers = {
        "connect": connect,
        "disconnect": disconnect,
        "echo": echo,
        "echo_plain": echo_plain,
        "join": join,
        "leave": leave,
        "to_room": to_room,
        "broadcast": broadcast,
        "ask_client": ask_client,
        "ask_client_raw": ask_client_raw,
        "block": block,
        "binary": binary,
        "volatile_burst": volatile_burst,
        "kick": kick,
        "disconnect_log": disconnect_log,
    }
    for name, fn in handlers.items():
        sio.on(name, fn, namespace=ns)


def _ticker(st: State) -> None:
    """Background task: emit ``tick`` to room ``ticks`` every :data:`TICK_SECONDS`.

    :param st: shared state.
    """
    n = 0
    while True:
        st.sio.sleep(TICK_SECONDS)
        n += 1
        try:
            st.sio.emit("tick", {"n": n}, to="ticks")
        except Exception:
            logger.exception("tick %s failed", n)


def _flask_app(st: State, args: argparse.Namespace) -> Any:
    """Build the Flask app with the test routes.

    :param st: shared state.
    :param args: parsed command line.
    :returns: the Flask app.
    """
    import os

    from flask import Flask, jsonify, request

    app = Flask("e2e")

    @app.get("/")
    def index() -> Any:
        return "e2e flask index"

    @app.get("/health")
    def health() -> Any:
        import threading

        return jsonify(
            ok=True,
            impl=args.impl,
            async_mode=args.async_mode,
            pid=os.getpid(),
            volatile=st.volatile,
            greenlets=_greenlets() if args.async_mode != "threading" else None,
            threads=threading.active_count(),
        )

    @app.get("/_log/disconnects")
    def disconnects() -> Any:
        with st.log_lock:
            return jsonify(list(st.disconnects))

    @app.post("/_log/clear")
    def clear() -> Any:
        with st.log_lock:
            st.disconnects.clear()
        return jsonify(ok=True)

    def _emit(body: dict[str, Any]) -> None:
        st.sio.emit(
            body.get("event", "from_route"),
            body.get("data"),
            to=body.get("to"),
            namespace=body.get("namespace", "/"),
        )

    @app.post("/emit")
    def emit() -> Any:
        _emit(request.get_json(force=True))
        return jsonify(ok=True)

    @app.post("/emit_from_thread")
    def emit_from_thread() -> Any:
        body = request.get_json(force=True)
        body.setdefault("event", "from_thread")
        t = st.thread_class(target=_emit, args=(body,), daemon=True)
        t.start()
        return jsonify(ok=True)

    return app


def _greenlets() -> int:
    """Greenlets alive in this process (tests/e2e/test_parked.py: idle WebSockets park)."""
    import gc

    import greenlet

    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet))


def build_app(args: argparse.Namespace) -> tuple[Any, State]:
    """Build the full WSGI application (call after monkey-patching).

    :param args: parsed command line.
    :returns: ``(wsgi_app, state)``.
    """
    sio, wsgi_app_cls, refused, call_timeout = _make_server(args)
    st = State(sio, refused, call_timeout, _os_thread_class(args.async_mode))
    for ns in NAMESPACES:
        _register_namespace(st, ns)
    flask_app = _flask_app(st, args)
    return wsgi_app_cls(sio, flask_app), st


def _serve_threading(app: Any, args: argparse.Namespace) -> None:
    from werkzeug.serving import run_simple

    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


def _serve_eventlet(app: Any, args: argparse.Namespace) -> None:
    import eventlet
    import eventlet.wsgi

    listener = eventlet.listen((args.host, args.port))
    eventlet.wsgi.server(listener, app, log_output=False)


def _serve_gevent(app: Any, args: argparse.Namespace) -> None:
    if os.environ.get(GEVENT_SERVER_ENV) == "gunicorn":
        _serve_gunicorn("gevent", lambda: app, args)
        return
    from gevent.pywsgi import WSGIServer

    WSGIServer((args.host, args.port), app, log=None).serve_forever()


#: ``gunicorn``: the gevent mode serves on one gunicorn gevent worker instead of
#: gevent.pywsgi (where idle WebSockets park: the ``parked`` group of tests/run.sh)
GEVENT_SERVER_ENV = "SIO_E2E_GEVENT_SERVER"
#: ``gunicorn``: the eventlet mode serves on one ``sio_wsgi.gunicorn.EventletWorker``
#: instead of eventlet.wsgi (idle WebSockets park there too)
EVENTLET_SERVER_ENV = "SIO_E2E_EVENTLET_SERVER"
#: ``gunicorn``: the threading mode serves on one gunicorn gthread worker instead of
#: werkzeug (idle WebSockets park there too)
THREADING_SERVER_ENV = "SIO_E2E_THREADING_SERVER"
#: gthread's ``--threads`` (100 by default)
GUNICORN_THREADS_ENV = "SIO_E2E_GUNICORN_THREADS"


def _serve_gunicorn(worker_class: str, load: Any, args: argparse.Namespace) -> None:
    """One gunicorn worker of ``worker_class``, in this process's child; ``load()``
    returns the application (called in the worker)."""
    from gunicorn.app.base import BaseApplication

    class _One(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"{args.host}:{args.port}",
                "workers": 1,
                "worker_class": worker_class,
                "worker_connections": 2000,
                # gthread: a thread per running request, waiting long-polls included
                "threads": int(os.environ.get(GUNICORN_THREADS_ENV, "100")),
                "graceful_timeout": 2,
                "loglevel": "warning",
                "control_socket_disable": True,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return load()

    _One().run()


SERVERS = {
    "threading": _serve_threading,
    "eventlet": _serve_eventlet,
    "gevent": _serve_gevent,
}


def main(argv: list[str] | None = None) -> None:
    """Parse args, patch, build and serve until killed.

    :param argv: arguments, ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    # eventlet and threading on gunicorn: the app (and its ticker thread) is built in
    # the worker, after the fork; the eventlet worker monkey-patches itself
    worker_class = {
        "eventlet": (EVENTLET_SERVER_ENV, "sio_wsgi.gunicorn.EventletWorker"),
        "threading": (THREADING_SERVER_ENV, "gthread"),
    }.get(args.async_mode)
    in_worker = worker_class is not None and os.environ.get(worker_class[0]) == "gunicorn"
    if not in_worker:
        _monkey_patch(args.async_mode)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if worker_class is not None and in_worker:
        _serve_gunicorn(worker_class[1], lambda: _start(args), args)
        return
    SERVERS[args.async_mode](_start(args), args)


def _start(args: argparse.Namespace) -> Any:
    """Build the application and start its ticker; returns the WSGI app."""
    app, st = build_app(args)
    st.sio.start_background_task(_ticker, st)
    logger.warning(
        "e2e app impl=%s mode=%s on %s:%s", args.impl, args.async_mode, args.host, args.port
    )
    return app


if __name__ == "__main__":
    main()
