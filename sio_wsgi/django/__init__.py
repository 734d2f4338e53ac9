"""Django integration: add ``"sio_wsgi.django"`` to ``INSTALLED_APPS``.

It gives the project:

- :func:`get_wsgi_application`, Django's WSGI application wrapped in a
  :class:`~sio_wsgi.WSGIApp` with the project's :class:`~sio_wsgi.Server`, for
  ``wsgi.py``::

      import os
      from sio_wsgi.django import get_wsgi_application

      os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
      application = get_wsgi_application()

- ``python manage.py runsio [addr:port] [--async-mode MODE] [--noreload]``: the
  development server with WebSocket (Django's ``runserver`` hides the client
  socket, so browsers stay on long-polling there), served by :func:`sio_wsgi.run`.

Settings (only ``SIO_WSGI_SERVER`` is needed):

=========================  ==========================================================
``SIO_WSGI_SERVER``        dotted path of the ``Server``: ``"chat.sockets.sio"``
``SIO_WSGI_STATIC_FILES``  ``WSGIApp(static_files=...)``: URL prefix -> directory, served
                           before Django (``{"/static/": BASE_DIR / "static"}``); default
                           ``{STATIC_URL: STATIC_ROOT}`` once ``collectstatic`` filled it
``SIO_WSGI_CLIENT_JS``     where the ``socket.io-client`` ``dist`` files are
                           (``WSGIApp(client_js_path=...)``)
``SIO_WSGI_PATH``          the Socket.IO mount point, ``"socket.io"`` by default
=========================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..runner import load
from ..wsgi import WSGIApp, WSGIApplication

if TYPE_CHECKING:  # pragma: no cover
    from ..server import Server

__all__ = ["get_wsgi_application", "get_server", "wrap", "server_path"]


def _settings() -> Any:
    from django.conf import settings

    return settings


def server_path() -> str:
    """``SIO_WSGI_SERVER`` as ``module:attr``.

    :returns: the import path of the project's Server.
    :raises ConfigError: when the setting is missing.
    """
    dotted = getattr(_settings(), "SIO_WSGI_SERVER", None)
    if not dotted or not isinstance(dotted, str):
        raise ConfigError(
            "sio_wsgi.django needs SIO_WSGI_SERVER in the settings: the dotted path of your "
            'sio_wsgi.Server, for example SIO_WSGI_SERVER = "chat.sockets.sio"'
        )
    if ":" in dotted:
        return dotted
    module, _, attr = dotted.rpartition(".")
    if not module:
        raise ConfigError(f"SIO_WSGI_SERVER = {dotted!r}: a dotted path, module.attribute")
    return f"{module}:{attr}"


def get_server() -> Server:
    """Import the ``Server`` named by ``SIO_WSGI_SERVER``.

    :returns: the Server.
    :raises ConfigError: when the setting is missing or names something else.
    """
    from ..server import Server

    server = load(server_path())
    if not isinstance(server, Server):
        raise ConfigError(f"SIO_WSGI_SERVER names a {type(server).__name__}, not a sio_wsgi.Server")
    return server


def _static_files() -> Mapping[str, str] | None:
    settings = _settings()
    configured = getattr(settings, "SIO_WSGI_STATIC_FILES", None)
    if configured is not None:
        return {str(url): str(path) for url, path in dict(configured).items()}
    url, root = getattr(settings, "STATIC_URL", None), getattr(settings, "STATIC_ROOT", None)
    if url and root and os.path.isdir(root) and not str(url).startswith(("http:", "https:")):
        return {"/" + str(url).strip("/") + "/": str(root)}
    return None


def wrap(django_app: WSGIApplication) -> WSGIApp:
    """Wrap a Django WSGI application with the project's Server (see the settings).

    :param django_app: Django's WSGI handler.
    :returns: the ``WSGIApp``.
    """
    settings = _settings()
    client_js = getattr(settings, "SIO_WSGI_CLIENT_JS", None)
    return WSGIApp(
        get_server(),
        django_app,
        static_files=_static_files(),
        socketio_path=str(getattr(settings, "SIO_WSGI_PATH", "socket.io")),
        client_js_path=str(client_js) if client_js else None,
    )


def get_wsgi_application() -> WSGIApp:
    """Django's ``get_wsgi_application()`` (which sets Django up), wrapped by :func:`wrap`.

    :returns: the project's WSGI application, Socket.IO included.
    """
    from django.core.wsgi import get_wsgi_application as django_wsgi_application

    return wrap(django_wsgi_application())
