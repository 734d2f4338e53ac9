"""The test node of :mod:`node_app`, with the sticky-session cookie turned on.

Same events, same ``/health``, same bus settings as :mod:`node_app`; the only
differences are ``cookie=MN_COOKIE`` (default ``io``: the polling handshake
answers ``Set-Cookie: io=<sid>; Path=/; HttpOnly; SameSite=Lax``), no session
relay (``MN_RELAY=0``, so that routing alone decides) and an engine logger at
INFO, so that every request for a session of another node leaves its ``unknown
session id`` line in the node's log.

:mod:`node_app` builds its server as ``sio_wsgi.Server(...)``; this module
imports it while that name is a subclass adding the two options, then puts the
real class back.
"""

from __future__ import annotations

import os
from typing import Any

import sio_wsgi

__all__ = ["COOKIE", "app", "sio", "manager"]

#: the cookie name the nodes set on the polling handshake
COOKIE = os.environ.get("MN_COOKIE", "io")

_Server = sio_wsgi.Server


class _CookieServer(_Server):
    """``sio_wsgi.Server`` with ``cookie`` and ``engineio_logger`` defaulted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """:param args: as :class:`sio_wsgi.Server`.
        :param kwargs: as :class:`sio_wsgi.Server`; ``cookie`` defaults to
            :data:`COOKIE`, ``engineio_logger`` to True.
        """
        kwargs.setdefault("cookie", COOKIE)
        kwargs.setdefault("engineio_logger", True)
        super().__init__(*args, **kwargs)


# the sticky cookie is what these nodes test: no session relay behind it
os.environ.setdefault("MN_RELAY", "0")
setattr(sio_wsgi, "Server", _CookieServer)  # noqa: B010 - node_app reads the module attribute
try:
    import node_app
finally:
    setattr(sio_wsgi, "Server", _Server)  # noqa: B010

app = node_app.app
sio = node_app.sio
manager = node_app.manager
