"""The chat shared by the Flask and the Django examples, free of either framework.

- :mod:`chat_core.events`: the Socket.IO side (rooms, private messages, typing,
  files, acks); :func:`register` takes the one thing that differs between the
  examples, ``identify(sid, environ, auth) -> name`` (Flask's session cookie or
  Django's auth);
- ``static/chat_core/``: ``chat.js`` (the browser side) and ``chat.css``,
  served by each framework as its own static files (:data:`STATIC_DIR`);
- ``templates/chat_core/``: ``base.html`` and ``chat.html``, written in the
  syntax Jinja2 and Django's template language read alike (``extends``,
  ``block``, ``if``, ``{{ name }}``); each example extends them and fills the
  blocks with its own links and forms (:data:`TEMPLATES_DIR`). They need the
  variables made by :func:`page_context`, which each example adds to every
  template through a context processor.

The examples put ``examples/`` on ``sys.path`` to import this package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .events import (
    DEFAULT_ROOMS,
    MAX_FILE_BYTES,
    MAX_TEXT,
    ChatEvents,
    ChatState,
    announce,
    register,
)

__all__ = [
    "ChatEvents",
    "ChatState",
    "register",
    "announce",
    "page_context",
    "DEFAULT_ROOMS",
    "MAX_FILE_BYTES",
    "MAX_TEXT",
    "STATIC_DIR",
    "TEMPLATES_DIR",
]

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = str(HERE / "static")
"""Static files root: ``chat_core/chat.js`` and ``chat_core/chat.css`` below it."""
TEMPLATES_DIR = str(HERE / "templates")
"""Templates root: ``chat_core/base.html`` and ``chat_core/chat.html`` below it."""


def page_context(static_url: Callable[[str], str], example_dir: str) -> dict[str, str]:
    """The variables the shared templates use.

    :param static_url: the framework's way to turn a path below
        :data:`STATIC_DIR` into a URL (Flask's ``url_for('static', filename=...)``,
        Django's ``static()``).
    :param example_dir: the example's folder, named in the "run npm install" banner.
    :returns: ``{"chat_css", "chat_js", "example_dir"}``.
    """
    return {
        "chat_css": static_url("chat_core/chat.css"),
        "chat_js": static_url("chat_core/chat.js"),
        "example_dir": example_dir,
    }
