"""``python -m sio_wsgi module:app``: serve an application with :func:`sio_wsgi.run`.

Monkey-patching comes first (``--async-mode gevent`` / ``eventlet``), then the
application is imported: that order is what the green modes need. ``module:attr``
names a :class:`~sio_wsgi.WSGIApp`, a :class:`~sio_wsgi.Server`, or a WSGI
application together with ``--server module:attr``. Run
``python -m sio_wsgi --help`` for the options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import ASYNC_MODES, RUN_HOST, RUN_PORT
from .exceptions import ConfigError
from .runner import LOG_LEVELS, run

__all__ = ["main", "parser"]

#: exit status for a command line or application that cannot be served
EXIT_USAGE = 2


def parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    cli = argparse.ArgumentParser(
        prog="python -m sio_wsgi",
        description="Serve a sio_wsgi application on the WSGI server that fits its async mode "
        "(gevent.pywsgi, eventlet.wsgi, or a threaded server), WebSocket included.",
    )
    cli.add_argument(
        "target",
        help="module:attr of a sio_wsgi.WSGIApp, a sio_wsgi.Server, or a WSGI application "
        "(then give --server); without :attr, 'app', 'application' or 'sio'",
    )
    cli.add_argument("--server", help="module:attr of the sio_wsgi.Server to wrap TARGET with")
    cli.add_argument("--host", default=RUN_HOST, help=f"address to bind (default {RUN_HOST})")
    cli.add_argument(
        "--port", type=int, default=RUN_PORT, help=f"port to bind (default {RUN_PORT})"
    )
    cli.add_argument(
        "--async-mode",
        choices=ASYNC_MODES,
        help="monkey-patch for gevent / eventlet before importing TARGET "
        "(default: the Server's own mode)",
    )
    cli.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N > 1: run gunicorn with N workers of the mode's class (needs a client manager)",
    )
    cli.add_argument(
        "--reload", action="store_true", help="restart when a source file changes (werkzeug)"
    )
    cli.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="default info")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until Ctrl-C / SIGTERM.

    :param argv: the arguments (default ``sys.argv[1:]``).
    :returns: the exit status (0 after a graceful shutdown).
    """
    args = parser().parse_args(argv)
    try:
        run(
            args.target,
            args.host,
            args.port,
            server=args.server,
            async_mode=args.async_mode,
            workers=args.workers,
            reloader=args.reload,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        print(f"python -m sio_wsgi: error: {exc}", file=sys.stderr)  # noqa: T201 - a CLI
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
