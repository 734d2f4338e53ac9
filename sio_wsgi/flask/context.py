"""Run plain Socket.IO handlers inside Flask's contexts (:class:`FlaskContext`).

Plain handlers work with Flask already: ``sio.emit`` may be called from any
view, in every async mode, with no setup. What a plain handler does not have
is Flask's *context*: ``current_app``, ``g``, ``request`` and ``session``.
:class:`FlaskContext` adds it, per handler::

    from sio_wsgi.flask import FlaskContext

    ctx = FlaskContext(flask_app, sio)

    @ctx.on("chat")                      # like @sio.on("chat"), with the contexts pushed
    def chat(sid, text):
        user = flask.session.get("user")            # the login cookie of the handshake
        limit = flask.current_app.config["MAX_LEN"]
        flask.request.sid                           # this connection's sid
        ...

    sio.on("other", ctx.wrap(other_handler))        # or wrap any function yourself

Around each call it pushes ``app.request_context()`` built from the WSGI
environ of the connection's *handshake* request (which pushes the app context
too). So inside a handler:

- ``current_app``, ``app.config``, extensions and ``g`` work as in a view; ``g``
  is fresh for every handler call. Database sessions bound to the app context
  (e.g. Flask-SQLAlchemy) are opened and cleaned up per call, as per request.
- ``request`` describes the handshake: its headers, cookies, query string and
  remote address. ``request.sid`` and ``request.namespace`` name the connection.
  Its body is empty.
- ``session`` is the Flask session *as it was at the handshake*, read from the
  cookie. Changes made in a handler are never saved (there is no HTTP response
  to carry the cookie), and a login or logout done over HTTP later is seen only
  by connections made after it. Keep per-connection state in
  ``sio.session(sid)`` instead.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import flask

from sio_wsgi.engine.ports import Environ
from sio_wsgi.protocol.serializers import Payload

if TYPE_CHECKING:  # pragma: no cover
    from sio_wsgi.server import Server

__all__ = ["FlaskContext"]

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)


class FlaskContext:
    """Wraps Socket.IO handlers so they run inside a Flask request context.

    :param sio: the server; only needed for :meth:`on` and :meth:`event`.
    """

    def __init__(self, app: flask.Flask, sio: Server | None = None) -> None:
        self.app = app
        self.sio = sio

    def _environ(self, sid: str, namespace: str, args: tuple[object, ...]) -> Environ | None:
        """The handshake environ: the ``connect`` handler's argument, else the server's copy."""
        if args and isinstance(args[0], dict) and "REQUEST_METHOD" in args[0]:
            return args[0]
        if self.sio is None:
            return None
        return self.sio.get_environ(sid, namespace)

    def wrap(self, fn: Handler, namespace: str = "/") -> Handler:
        """Return ``fn`` wrapped to run inside the app and request contexts.

        :param fn: a handler called as ``fn(sid, *args)``.
        :param namespace: the namespace it is registered on (to find the environ).
        :returns: the wrapper.
        """

        @functools.wraps(fn)
        def wrapper(sid: str, *args: object) -> Payload:
            environ = self._environ(sid, namespace, args)
            if environ is None:
                with self.app.app_context():
                    return fn(sid, *args)
            fake = dict(environ)
            fake["wsgi.input"] = io.BytesIO(b"")
            fake["CONTENT_LENGTH"] = "0"
            with self.app.request_context(fake):
                flask.request.sid = sid  # type: ignore[attr-defined]
                flask.request.namespace = namespace  # type: ignore[attr-defined]
                return fn(sid, *args)

        return wrapper

    def on(self, event: str, namespace: str | None = None) -> Callable[[F], F]:
        """Decorator: register ``fn`` for ``event`` on the server, wrapped.

        :param namespace: the namespace, ``'/'`` by default.
        :returns: a decorator returning the original function.
        :raises RuntimeError: when no server was given.
        """
        if self.sio is None:
            raise RuntimeError("FlaskContext(app, sio) needs the server to register handlers")
        sio, ns = self.sio, namespace or "/"

        def register(fn: F) -> F:
            sio.on(event, self.wrap(fn, ns), namespace=ns)
            return fn

        return register

    def event(self, fn: F) -> F:
        """Decorator: register ``fn`` under its own name, wrapped.

        :returns: ``fn``.
        """
        return self.on(fn.__name__)(fn)
