"""Choose the :class:`~sio_wsgi.runtime.base.Driver` for an ``async_mode``.

Rule for ``async_mode=None``: eventlet when eventlet has monkey-patched
``socket``, else gevent when gevent has, else threading. An explicit
``async_mode`` always wins. This is the only module that names the libraries.
"""

from __future__ import annotations

import sys

from ..exceptions import ConfigError
from .base import Driver

__all__ = ["get_driver", "detect_async_mode"]


def _eventlet_patched() -> bool:
    if "eventlet" not in sys.modules:
        return False
    from eventlet import patcher

    return bool(patcher.is_monkey_patched("socket"))


def _gevent_patched() -> bool:
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


def detect_async_mode() -> str:
    """Return the mode ``async_mode=None`` resolves to in this process."""
    if _eventlet_patched():
        return "eventlet"
    if _gevent_patched():
        return "gevent"
    return "threading"


_PATCHED = {"eventlet": _eventlet_patched, "gevent": _gevent_patched}

_HOW_TO_PATCH = {
    "eventlet": "import eventlet; eventlet.monkey_patch()",
    "gevent": "from gevent import monkey; monkey.patch_all()",
}
_GUNICORN_WORKER = {"eventlet": "sio_wsgi.gunicorn.EventletWorker", "gevent": "gevent"}


def _require_patched(mode: str) -> None:
    """A green mode works only where its library patched ``socket``: the WSGI
    server's sockets and threads must be its green ones (a gthread worker's are
    not, and every session would hang). Say so when the server is created."""
    if mode in _PATCHED and not _PATCHED[mode]():
        raise ConfigError(
            f"async_mode={mode!r} needs a process that {mode} has monkey-patched, and "
            f"this one is not: under gunicorn use `-k {_GUNICORN_WORKER[mode]}`; elsewhere "
            f"run `{_HOW_TO_PATCH[mode]}` first, before other imports. Or leave "
            "async_mode out: it is then detected (threading here)."
        )


def get_driver(async_mode: str | None) -> Driver:
    """Return a new driver for ``async_mode`` (None: see the module docstring).

    :raises ConfigError: unknown mode, its library is not installed, or (eventlet,
        gevent) it has not monkey-patched this process.
    """
    mode = async_mode or detect_async_mode()
    try:
        if mode == "threading":
            from .threading_driver import ThreadingDriver

            return ThreadingDriver()
        if mode == "eventlet":
            from .eventlet_driver import EventletDriver

            _require_patched(mode)
            return EventletDriver()
        if mode == "gevent":
            from .gevent_driver import GeventDriver

            _require_patched(mode)
            return GeventDriver()
    except ImportError as exc:
        raise ConfigError(
            f"async_mode={mode!r} needs the {mode} package: pip install 'sio_wsgi[{mode}]'"
        ) from exc
    raise ConfigError(f"unknown async_mode {mode!r}: use threading, eventlet, gevent or None")
