"""``python manage.py runchat [addr:port]``: the project on a threaded stdlib server.

Django's ``runserver`` hides the client socket from WSGI applications, so
sio_wsgi cannot take it over for a WebSocket there: browsers then stay on
HTTP long-polling, which works, just less efficiently. This command serves the
same ``WSGI_APPLICATION`` (Django wrapped by sio_wsgi, static files included)
on :mod:`wsgiref` with one thread per connection, WebSocket included. It is a
development server; use gunicorn in production (see the README).
"""

from __future__ import annotations

import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.management.base import BaseCommand, CommandParser
from django.core.servers.basehttp import get_internal_wsgi_application


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per connection."""

    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    """Logs requests through the command's verbosity instead of stderr."""

    verbose = False

    def log_message(self, format: str, *args: Any) -> None:
        """Log one request when ``-v 2`` was given.

        :param format: %-format string.
        :param args: its arguments.
        """
        if self.verbose:
            super().log_message(format, *args)


class Command(BaseCommand):
    """Serve the project, WebSocket included."""

    help = "Run the chat on a threaded development server that supports WebSocket."

    def add_arguments(self, parser: CommandParser) -> None:
        """Add the optional ``addrport``.

        :param parser: the argument parser.
        """
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        """Serve until Ctrl-C.

        :param args: unused.
        :param options: parsed options.
        """
        host, _, port = str(options["addrport"]).rpartition(":")
        QuietHandler.verbose = int(options.get("verbosity", 1)) > 1
        app = get_internal_wsgi_application()
        with make_server(
            host or "127.0.0.1", int(port), app, ThreadingWSGIServer, QuietHandler
        ) as httpd:
            self.stdout.write(
                f"Django chat on http://{host or '127.0.0.1'}:{port}  "
                "(open it in two tabs; Ctrl-C to stop)"
            )
            self.stdout.flush()
            try:
                httpd.serve_forever()
            except KeyboardInterrupt:
                self.stdout.write("bye")
