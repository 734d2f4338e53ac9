"""Serves the official JavaScript client (``socket.io-client``) when it is installed.

The files are looked up in ``dist/`` of the ``socket.io-client`` npm package:
in a directory given by the user, or in ``node_modules`` of the current
directory or any of its parents. Responses carry an ETag (304 on a match),
``Cache-Control`` and gzip when the browser accepts it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable

from .engine.ports import Environ, StartResponse

__all__ = ["ClientFiles", "find_client_dist"]

_FILES = {
    "socket.io.js": "application/javascript; charset=utf-8",
    "socket.io.min.js": "application/javascript; charset=utf-8",
    "socket.io.js.map": "application/json",
    "socket.io.min.js.map": "application/json",
    "socket.io.esm.min.js": "application/javascript; charset=utf-8",
    "socket.io.esm.min.js.map": "application/json",
}


def find_client_dist(start: str | None = None) -> str | None:
    """Return the ``dist`` directory of an installed ``socket.io-client``, or None."""
    here = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(here, "node_modules", "socket.io-client", "dist")
        if os.path.isfile(os.path.join(candidate, "socket.io.js")):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


class _Entry:
    __slots__ = ("body", "gzipped", "etag", "content_type")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.gzipped = gzip.compress(body, mtime=0)
        self.etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        self.content_type = content_type


class ClientFiles:
    """WSGI handler for ``/<path>/socket.io.js`` and friends.

    :param client_path: a ``socket.io-client`` ``dist`` directory, a path to
        ``socket.io.js`` itself, or None to search ``node_modules``.
    """

    def __init__(self, client_path: str | None = None) -> None:
        self._explicit = client_path
        self._cache: dict[str, _Entry] = {}

    def _dist(self) -> str | None:
        if self._explicit:
            path = self._explicit
            return os.path.dirname(path) if path.endswith(".js") else path
        return find_client_dist()

    @staticmethod
    def handles(name: str) -> bool:
        """True when ``name`` is one of the client's file names."""
        return name in _FILES

    def _load(self, name: str) -> _Entry | None:
        entry = self._cache.get(name)
        if entry is not None:
            return entry
        dist = self._dist()
        if dist is None:
            return None
        filename = os.path.join(dist, name)
        if not os.path.isfile(filename):
            return None
        with open(filename, "rb") as fh:
            entry = _Entry(fh.read(), _FILES[name])
        self._cache[name] = entry
        return entry

    def serve(self, name: str, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a request for client file ``name``."""
        entry = self._load(name)
        if entry is None:
            body = (
                b"// The socket.io JavaScript client is not installed. Run `npm install "
                b"socket.io-client` next to your app, or pass client_js_path= to WSGIApp.\n"
                b"console.error('sio_wsgi: socket.io-client is not installed on the server');\n"
            )
            start_response(
                "404 Not Found",
                [
                    ("Content-Type", "application/javascript; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        headers = [
            ("Content-Type", entry.content_type),
            ("ETag", entry.etag),
            ("Cache-Control", "public, max-age=0, must-revalidate"),
            ("Vary", "Accept-Encoding"),
        ]
        if entry.etag in environ.get("HTTP_IF_NONE_MATCH", ""):
            start_response("304 Not Modified", headers)
            return [b""]
        body = entry.body
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = entry.gzipped
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]
