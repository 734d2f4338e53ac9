"""The Socket.IO server of the chat, and who is connected, from Django's session.

The connect handler gets the WSGI environ of the handshake request. Its
``Cookie`` header carries Django's session cookie, so :func:`user_from_environ`
rebuilds a request from it and asks ``django.contrib.auth`` who that is,
exactly as ``AuthenticationMiddleware`` does for a view. Anonymous users are
refused: the browser gets a ``connect_error`` whose message says to log in.
"""

from __future__ import annotations

import io
import logging
import os
from importlib import import_module
from typing import Any

from chat_core import ChatState, register
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.handlers.wsgi import WSGIRequest
from django.db import connections

import sio_wsgi

__all__ = ["sio", "state", "identify", "user_from_environ", "LOGIN_REQUIRED"]

logger = logging.getLogger(__name__)

LOGIN_REQUIRED = "authentication required: log in to chat"

# async_mode=None picks gevent / eventlet when gunicorn's worker monkey-patched
# the process, threads otherwise; SIO_ASYNC_MODE forces one.
sio = sio_wsgi.Server(async_mode=os.environ.get("SIO_ASYNC_MODE") or None)


def user_from_environ(environ: dict[str, Any]) -> AbstractBaseUser | AnonymousUser:
    """The Django user whose session cookie came with a request.

    Runs outside Django's request cycle (in a Socket.IO handler), so it closes
    the database connections it opened in this thread when done.

    :param environ: a WSGI environ (the Socket.IO handshake's).
    :returns: the user, or ``AnonymousUser``.
    """
    request = WSGIRequest({**environ, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"})
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    try:
        user = get_user(request)
        user.is_authenticated  # noqa: B018 - resolve it while the connection is open
        return user
    finally:
        connections.close_all()


def identify(sid: str, environ: dict[str, Any], auth: Any) -> str:
    """Name a new connection after its Django user; refuse anonymous ones.

    :param sid: the connection's sid.
    :param environ: the handshake environ.
    :param auth: the client's auth object (unused: the session cookie decides).
    :returns: the username.
    :raises sio_wsgi.ConnectionRefusedError: for anonymous users.
    """
    user = user_from_environ(environ)
    if not user.is_authenticated:
        logger.info("refusing anonymous socket %s", sid)
        raise sio_wsgi.ConnectionRefusedError(LOGIN_REQUIRED, {"login_url": settings.LOGIN_URL})
    return str(user.get_username())


state: ChatState = register(sio, identify)
