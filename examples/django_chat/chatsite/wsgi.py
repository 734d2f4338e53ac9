"""The WSGI application: Django, wrapped by sio_wsgi.

:func:`sio_wsgi.django.get_wsgi_application` sets Django up and wraps its WSGI
application in a :class:`sio_wsgi.WSGIApp` with the Server of ``SIO_WSGI_SERVER``
(``chat.sockets.sio``): ``/socket.io/`` goes to the Socket.IO server (and
``/socket.io/socket.io.js`` is the official client, ``SIO_WSGI_CLIENT_JS``);
``/static/`` is served from chat_core's static directory (``SIO_WSGI_STATIC_FILES``),
so it works under gunicorn too; everything else is Django.
``python manage.py runsio`` and ``gunicorn chatsite.wsgi`` both use it.
"""

from __future__ import annotations

import os

from sio_wsgi.django import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

application = get_wsgi_application()
