"""Running Flask-SocketIO style handlers in Flask's contexts (a base of
:class:`~sio_wsgi.flask.extension.SocketIO`).

The server calls every handler as ``handler(sid, *args)`` (with the event name and
namespace first for ``'*'`` registrations); a Flask-SocketIO handler takes no sid.
:meth:`HandlerContexts._wrap` turns one into the other, and
:meth:`HandlerContexts._handle_event` runs the handler inside the app and request
contexts of the connection's handshake, with ``request.sid``, ``request.namespace``
and ``request.event`` set, the session of ``manage_session``, and the namespace's
error handler around it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import flask
from flask.ctx import RequestContext
from flask.sessions import SessionMixin

from sio_wsgi.engine.ports import Environ
from sio_wsgi.exceptions import ConnectionRefusedError
from sio_wsgi.flask.wiring import APP_ENVIRON_KEY, SESSION_ENVIRON_KEY, ManagedSession
from sio_wsgi.namespace import CATCH_ALL, positional_capacity
from sio_wsgi.protocol.serializers import Payload
from sio_wsgi.server import Server

__all__ = ["HandlerContexts", "ErrorHandler"]

ErrorHandler = Callable[[Exception], Any]
"""An ``on_error`` handler: gets the exception, returns the ack."""


def _trim(handler: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` cut to what ``handler`` accepts (connect/disconnect arguments are optional)."""
    capacity = positional_capacity(handler)
    return args if capacity is None else args[:capacity]


class HandlerContexts:
    """Handlers in Flask's contexts; :class:`SocketIO` provides the attributes declared here."""

    app: flask.Flask | None
    manage_session: bool
    exception_handlers: dict[str, ErrorHandler]
    default_exception_handler: ErrorHandler | None

    def _server(self) -> Server:
        raise NotImplementedError

    def _wrap(self, handler: Callable[..., Any], message: str, ns: str) -> Callable[..., Any]:
        """The function the server calls: it takes the event name and namespace off
        the front (for ``'*'`` registrations) and runs ``handler`` in Flask's contexts."""

        def server_handler(*raw: Any) -> Payload:
            rest = list(raw)
            event = rest.pop(0) if message == CATCH_ALL else message
            namespace = rest.pop(0) if ns == CATCH_ALL else ns
            sid = rest.pop(0)
            args = (event, *rest) if message == CATCH_ALL else tuple(rest)
            return self._handle_event(handler, event, namespace, sid, *args)

        # no functools.wraps: its __wrapped__ would give the server the handler's
        # signature, and the server would cut connect's (sid, environ, auth)
        server_handler.__name__ = getattr(handler, "__name__", message)
        server_handler.__doc__ = handler.__doc__
        return server_handler

    def _session_for(
        self, app: flask.Flask, environ: Environ, request: flask.Request
    ) -> SessionMixin:
        """The connection's managed session, copied from the cookie session the first time."""
        saved = environ.get(SESSION_ENVIRON_KEY)
        if saved is None:
            interface = app.session_interface
            opened = interface.open_session(app, request)
            if opened is None:
                opened = interface.make_null_session(app)
            saved = ManagedSession(opened)
            environ[SESSION_ENVIRON_KEY] = saved
        return saved

    def _handle_event(
        self,
        handler: Callable[..., Any],
        message: str | None,
        namespace: str,
        sid: str,
        *args: Any,
    ) -> Payload:
        """Run ``handler`` in the app and request contexts of ``sid``'s connection.

        ``connect`` gets ``(auth)`` from ``(environ, auth)``, ``disconnect``
        ``(reason)``, each only if it takes it. An exception goes to the
        namespace's error handler (whose return value is the result), else up.
        """
        environ = self._server().get_environ(sid, namespace)
        if environ is None:  # the client is gone
            return None
        app = environ.get(APP_ENVIRON_KEY) or self.app
        if app is None:
            raise RuntimeError("no Flask app for this connection")
        fake = dict(environ)
        fake["wsgi.input"] = io.BytesIO(b"")
        fake["CONTENT_LENGTH"] = "0"
        fake.pop(SESSION_ENVIRON_KEY, None)
        request_obj = app.request_class(fake)
        session = self._session_for(app, environ, request_obj) if self.manage_session else None
        ctx = RequestContext(app, fake, request=request_obj, session=session)
        if message == "connect":
            call_args = _trim(handler, args[1:2] if len(args) > 1 else (None,))
        elif message == "disconnect":
            call_args = _trim(handler, args)
        else:
            call_args = args
        with ctx:
            request: Any = flask.request
            request.sid = sid
            request.namespace = namespace
            request.event = {"message": message, "args": call_args}
            try:
                result = handler(*call_args)
            except ConnectionRefusedError:
                raise
            except Exception as exc:
                error_handler = self.exception_handlers.get(
                    namespace, self.default_exception_handler
                )
                if error_handler is None:
                    raise
                return error_handler(exc)
            if not self.manage_session:
                session = flask.session
                if getattr(session, "modified", True):
                    app.session_interface.save_session(app, session, app.response_class())
            return result

    @staticmethod
    def _current_sid() -> str | None:
        """``request.sid`` inside a Socket.IO handler, else None."""
        if not flask.has_request_context():
            return None
        sid = getattr(flask.request, "sid", None)
        return sid if isinstance(sid, str) else None

    def _callback(
        self, callback: Callable[..., Any] | None, namespace: str
    ) -> Callable[..., Any] | None:
        """Run an ack callback in the contexts of the client whose handler emitted."""
        sid = self._current_sid()
        if callback is None or sid is None:
            return callback
        origin_ns = getattr(flask.request, "namespace", None) or namespace
        original = callback

        def in_context(*ack: Any) -> Any:
            return self._handle_event(original, None, origin_ns, sid, *ack)

        return in_context
