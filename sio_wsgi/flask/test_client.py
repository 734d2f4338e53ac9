"""Flask-SocketIO's test client, on :class:`sio_wsgi.testing.SocketIOTestClient`.

``socketio.test_client(app, ...)`` returns one. It speaks the real protocol to the
app in-process, so handlers, rooms and sessions run as in production::

    client = socketio.test_client(app, auth={"token": "t"}, flask_test_client=http)
    assert client.is_connected()
    client.emit("join", "lobby")
    assert client.get_received() == [{"name": "joined", "args": ["lobby"], "namespace": "/"}]
    assert client.emit("add", 1, 2, callback=True) == 3

As in Flask-SocketIO: ``get_received()`` gives ``'message'`` and ``'json'`` events
with ``args`` holding the one value (not a list); an ack of several values comes
back as a list; ``emit``, ``get_received`` and ``disconnect`` on a namespace that
is not connected raise ``RuntimeError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sio_wsgi.protocol.serializers import Payload
from sio_wsgi.testing import SETTLE, Received
from sio_wsgi.testing import SocketIOTestClient as BaseTestClient

if TYPE_CHECKING:  # pragma: no cover
    from sio_wsgi.flask.extension import SocketIO
    from sio_wsgi.wsgi import WSGIApplication

__all__ = ["SocketIOTestClient"]

_SINGLE_VALUE_EVENTS = frozenset({"message", "json"})


def _cookies_of(flask_test_client: Any) -> dict[str, str]:
    """The cookies a Flask (werkzeug) test client holds, by name."""
    if flask_test_client is None:
        return {}
    jar = getattr(flask_test_client, "_cookies", None)  # werkzeug >= 2.3
    if isinstance(jar, Mapping):
        return {cookie.key: cookie.value for cookie in jar.values()}
    legacy = getattr(flask_test_client, "cookie_jar", None) or ()
    return {cookie.name: cookie.value or "" for cookie in legacy}


class SocketIOTestClient(BaseTestClient):
    """A Flask-SocketIO style test client (see the module).

    :param app: the Flask app.
    :param socketio: its :class:`~sio_wsgi.flask.SocketIO`.
    :param namespace: the namespace to connect to (``'/'``).
    :param query_string: for the handshake (``"a=1&b=2"``).
    :param headers: extra handshake headers.
    :param auth: the auth object of the namespace connect.
    :param flask_test_client: a Flask test client whose cookies (the login
        session) go with the handshake.
    """

    def __init__(
        self,
        app: WSGIApplication,
        socketio: SocketIO,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        flask_test_client: Any = None,
    ) -> None:
        self.socketio = socketio
        self.flask_test_client = flask_test_client
        super().__init__(
            app,
            server=socketio._server(),
            query_string=query_string,
            headers=headers,
            cookies=_cookies_of(flask_test_client),
            connect=False,
        )
        self.connect(namespace, auth=auth)

    def connect(  # type: ignore[override]
        self,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Payload = None,
        timeout: float | None = None,
    ) -> bool:
        """Connect to a namespace; ``query_string`` and ``headers`` apply when this
        starts a new connection (the first connect, or after a disconnect).

        :returns: True when connected (:meth:`is_connected` tells it too).
        """
        if self.eio_sid is None or self._closed:
            if query_string is not None:
                self.query_string = query_string.lstrip("?")
            if headers is not None:
                self.headers = dict(headers)
            if self.flask_test_client is not None:
                self.cookies = _cookies_of(self.flask_test_client)
        return super().connect(namespace, auth=auth, timeout=timeout)

    def _require(self, namespace: str | None) -> None:
        if not self.is_connected(namespace):
            raise RuntimeError(f"not connected to {namespace or '/'}")

    def disconnect(self, namespace: str | None = None) -> None:
        """Leave a namespace.

        :raises RuntimeError: when not connected to it.
        """
        self._require(namespace)
        super().disconnect(namespace)

    def emit(
        self,
        event: str,
        *args: Payload,
        callback: bool = False,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Payload:
        """Emit to the server; returns once its handler has returned.

        :param callback: return the ack: one value, or a list of several.
        :raises RuntimeError: when not connected to the namespace.
        """
        self._require(namespace)
        ack = super().emit(event, *args, namespace=namespace, callback=callback, timeout=timeout)
        return list(ack) if isinstance(ack, tuple) else ack

    def send(  # type: ignore[override]
        self,
        data: Payload,
        json: bool = False,
        callback: bool = False,
        namespace: str | None = None,
    ) -> Payload:
        """Emit a ``message`` event (``json`` with ``json=True``)."""
        return self.emit(
            "json" if json else "message", data, callback=callback, namespace=namespace
        )

    def get_received(self, namespace: str | None = None, settle: float = SETTLE) -> list[Received]:
        """The events received in a namespace since the last call (see the module).

        :raises RuntimeError: when not connected to the namespace.
        """
        self._require(namespace)
        received = super().get_received(namespace, settle)
        for item in received:
            if item["name"] in _SINGLE_VALUE_EVENTS:
                args = item["args"]
                item["args"] = args[0] if args else None
        return received
