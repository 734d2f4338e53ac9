"""WSGI middleware: mounts the Socket.IO (or Engine.IO) endpoint in front of an app.

::

    app = sio_wsgi.WSGIApp(sio, flask_app)      # /socket.io/ -> sio, the rest -> flask_app
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .client_js import ClientFiles
from .engine.ports import Environ, StartResponse

if TYPE_CHECKING:
    from .metrics import Auth

__all__ = ["WSGIApp", "Middleware", "StaticFiles"]

WSGIApplication = Callable[[Environ, StartResponse], Iterable[bytes]]
"""A WSGI application: ``app(environ, start_response) -> body``."""

StaticFilesMap = Mapping[str, str | dict[str, str]]
"""``static_files``: URL path -> file or directory path, or
``{"filename": path, "content_type": type}``."""


_INDEX = "index.html"


class _Handles(Protocol):
    def handle_request(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]: ...


def _not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "application/json")])
    return [b'{"code":404,"message":"Not found"}']


class StaticFiles:
    """Serves ``static_files`` the way python-socketio documents them.

    Keys are URL paths; values are a file or directory path, or a dict with
    ``filename`` and ``content_type``. A key maps a directory with or without a
    trailing ``/`` (``{"/static": "./public"}`` serves ``/static/hello.txt``);
    a request for the directory itself gets the file named by the ``""`` key,
    ``index.html`` by default. Paths outside a mapped directory (``..``,
    absolute, NUL, backslash) are refused.
    """

    def __init__(self, mapping: StaticFilesMap) -> None:
        self._mapping = {key: value for key, value in mapping.items() if key}
        default = mapping.get("", _INDEX)
        self._index = default if isinstance(default, str) else default["filename"]
        self._prefixes = sorted(self._mapping, key=len, reverse=True)

    def _match(self, path: str) -> tuple[str, str] | None:
        """The longest key that maps ``path``, and the rest of the path below it."""
        for prefix in self._prefixes:
            if path == prefix:
                return prefix, ""
            base = prefix if prefix.endswith("/") else prefix + "/"
            if path.startswith(base):
                return prefix, path[len(base) :]
        return None

    def _resolve(self, path: str) -> tuple[str, str | None] | None:
        matched = self._match(path)
        if matched is None:
            return None
        prefix, rest = matched
        entry = self._mapping[prefix]
        content_type = None
        if isinstance(entry, dict):
            content_type = entry.get("content_type")
            entry = entry["filename"]
        if not rest:
            if not os.path.isdir(entry):
                return entry, content_type
            rest = self._index
        elif rest.endswith("/"):  # a directory below the mapped one
            rest += self._index
        if "\x00" in rest or "\\" in rest:
            return None
        base = os.path.realpath(entry)
        target = os.path.realpath(os.path.join(base, rest.lstrip("/")))
        if target != base and not target.startswith(base + os.sep):
            return None
        return target, content_type

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes] | None:
        """Serve the file for this request, or return None when no mapping matches."""
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return None
        resolved = self._resolve(environ.get("PATH_INFO", "/") or "/")
        if resolved is None:
            return None
        filename, content_type = resolved
        if not os.path.isfile(filename):
            return None
        content_type = (
            content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        with open(filename, "rb") as fh:
            body = fh.read()
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


class WSGIApp:
    """Route ``/<socketio_path>/`` to the server and everything else to ``wsgi_app``.

    :param socketio_app: a :class:`sio_wsgi.Server` (anything with ``handle_request``).
    :param wsgi_app: the application to fall through to (404 JSON when None).
    :param static_files: URL path -> file mapping served before ``wsgi_app``.
    :param socketio_path: mount point, ``'socket.io'`` by default.
    :param client_js_path: where the ``socket.io-client`` ``dist`` files are
        (default: searched in ``node_modules`` from the working directory up).
    :param serve_client: serve ``/<socketio_path>/socket.io.js`` (default True).
    :param metrics_path: serve the server's metrics there (e.g. ``"/metrics"``, see
        :mod:`sio_wsgi.metrics`; enables them); off when None.
    :param metrics_auth: ``auth(environ) -> bool`` for the metrics (default: loopback only).
    """

    def __init__(
        self,
        socketio_app: _Handles,
        wsgi_app: WSGIApplication | None = None,
        static_files: StaticFilesMap | None = None,
        socketio_path: str = "socket.io",
        client_js_path: str | None = None,
        serve_client: bool = True,
        metrics_path: str | None = None,
        metrics_auth: Auth | None = None,
    ) -> None:
        self.server = socketio_app
        self.metrics_path = metrics_path
        self.metrics: WSGIApplication | None = None
        if metrics_path is not None:  # imported here: prometheus-client only when asked for
            from .metrics import MetricsApp

            server: Any = socketio_app
            self.metrics = MetricsApp(server, auth=metrics_auth)
        self.client = ClientFiles(client_js_path) if serve_client else None
        self.wsgi_app = wsgi_app
        self.static = StaticFiles(static_files) if static_files else None
        path = socketio_path.strip("/")
        self.mount = "/" + path + "/" if path else "/"
        self._mount_bare = self.mount.rstrip("/")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == self.metrics_path and self.metrics is not None:
            return self.metrics(environ, start_response)
        if path.startswith(self.mount) or path == self._mount_bare:
            name = path[len(self.mount) :]
            if self.client is not None and ClientFiles.handles(name):
                return self.client.serve(name, environ, start_response)
            return self.server.handle_request(environ, start_response)
        if self.static is not None:
            result = self.static(environ, start_response)
            if result is not None:
                return result
        if self.wsgi_app is not None:
            return self.wsgi_app(environ, start_response)
        return _not_found(environ, start_response)


Middleware = WSGIApp
