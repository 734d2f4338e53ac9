"""The WSGI application: Django, wrapped by sio_wsgi.

``/socket.io/`` goes to the Socket.IO server (and ``/socket.io/socket.io.js`` is
the official client from ``node_modules``); ``/static/`` is served from
chat_core's static directory (the only one in ``STATICFILES_DIRS``), so it works
under gunicorn too; everything else is Django. ``python manage.py runserver``
and ``gunicorn chatsite.wsgi`` both use it.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

import sio_wsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

django_app = get_wsgi_application()  # sets Django up: import the chat only after this

import chat_core  # noqa: E402
from chat.sockets import sio  # noqa: E402

application = sio_wsgi.WSGIApp(
    sio,
    django_app,
    static_files={"/static/": chat_core.STATIC_DIR},  # = STATIC_URL and STATICFILES_DIRS
    client_js_path=str(settings.SOCKETIO_CLIENT_JS),
)
