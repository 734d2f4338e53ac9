"""``python manage.py runsio [addr:port] [--async-mode MODE] [--noreload]``.

The development server of a project using sio_wsgi: Django's ``runserver``
hides the client socket from WSGI applications, so WebSocket upgrades fail
there; this command serves the project's ``WSGI_APPLICATION`` with
:func:`sio_wsgi.run` instead (WebSocket included, graceful Ctrl-C).

- threading (the default, unless the Server says otherwise): served in this
  process, restarted on code changes by Django's own autoreloader (as
  ``runserver``) unless ``--noreload``;
- ``--async-mode gevent`` / ``eventlet``: the process must be monkey-patched
  before Django and the project are imported, so the command hands over to
  ``python -m sio_wsgi --async-mode MODE <WSGI_APPLICATION>`` (a fresh process;
  the reloader there is werkzeug's, used when werkzeug is installed).

A ``WSGI_APPLICATION`` that is plain Django is wrapped with ``SIO_WSGI_SERVER``
(see :mod:`sio_wsgi.django`), so ``wsgi.py`` need not change for development.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....config import ASYNC_MODES, RUN_HOST
from ....exceptions import ConfigError

#: port when none is given (Django's runserver's)
DEFAULT_PORT = 8000
_ADDRPORT = re.compile(r"^(?:(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):)?(?P<port>\d+)$")
_VERBOSITY_LOG = {0: "warning", 1: "info"}


def parse_addrport(value: str | None) -> tuple[str, int]:
    """``"8000"``, ``"0.0.0.0:8000"``, ``"[::1]:8000"`` -> (host, port).

    :param value: the command's ``addrport`` argument, or None.
    :returns: host and port.
    :raises CommandError: when it is neither.
    """
    if not value:
        return RUN_HOST, DEFAULT_PORT
    found = _ADDRPORT.match(value)
    if found is None:
        raise CommandError(f'"{value}" is not a port number or an address:port pair')
    host = (found.group("host") or RUN_HOST).strip("[]")
    return host, int(found.group("port"))


class Command(BaseCommand):  # type: ignore[misc]
    """Serve the project with WebSocket support (a development server)."""

    help = (
        "Start the development server with Socket.IO and WebSocket support (sio_wsgi), "
        "instead of runserver."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """``addrport``, ``--async-mode``, ``--noreload``.

        :param parser: the command's parser.
        """
        parser.add_argument("addrport", nargs="?", help="port or address:port (127.0.0.1:8000)")
        parser.add_argument(
            "--async-mode",
            choices=ASYNC_MODES,
            help="gevent / eventlet: serve in a process patched first (python -m sio_wsgi)",
        )
        parser.add_argument(
            "--noreload",
            action="store_false",
            dest="use_reloader",
            help="do not restart on code changes",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Serve until Ctrl-C / SIGTERM.

        :param args: unused.
        :param options: the parsed options.
        """
        host, port = parse_addrport(options.get("addrport"))
        mode = options.get("async_mode")
        log_level = _VERBOSITY_LOG.get(int(options.get("verbosity", 1)), "debug")
        reload = bool(options.get("use_reloader", True))
        if mode in ("gevent", "eventlet"):
            self._hand_over(mode, host, port, reload, log_level)
            return
        from django.utils import autoreload

        from ....runner import run

        def inner_run() -> None:
            try:
                run(_application(), host, port, async_mode=mode, log_level=log_level)
            except ConfigError as exc:
                raise CommandError(str(exc)) from exc

        self.check(display_num_errors=False)
        if reload:
            autoreload.run_with_reloader(inner_run)
        else:
            inner_run()

    def _hand_over(self, mode: str, host: str, port: int, reload: bool, log_level: str) -> None:
        """Replace this process with ``python -m sio_wsgi`` for a green mode."""
        target = _wsgi_application_path()
        argv = [sys.executable, "-m", "sio_wsgi", target, "--async-mode", mode]
        argv += ["--host", host, "--port", str(port), "--log-level", log_level]
        if getattr(settings, "SIO_WSGI_SERVER", None):
            from ... import server_path

            argv += ["--server", server_path()]
        if reload and importlib.util.find_spec("werkzeug") is not None:
            argv.append("--reload")
        elif reload:
            self.stderr.write("no reloader in gevent / eventlet mode without werkzeug installed")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", str(settings.SETTINGS_MODULE))
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)


def _wsgi_application_path() -> str:
    """``WSGI_APPLICATION`` as ``module:attr``."""
    dotted = getattr(settings, "WSGI_APPLICATION", None)
    if not dotted:
        raise CommandError("runsio --async-mode needs WSGI_APPLICATION in the settings")
    module, _, attr = str(dotted).rpartition(".")
    return f"{module}:{attr}"


def _application() -> Any:
    """The project's WSGI application, wrapped with ``SIO_WSGI_SERVER`` if it is plain Django."""
    from django.core.servers.basehttp import get_internal_wsgi_application

    from ....wsgi import WSGIApp

    app = get_internal_wsgi_application()
    if isinstance(app, WSGIApp) or not getattr(settings, "SIO_WSGI_SERVER", None):
        return app
    from ... import wrap

    return wrap(app)
