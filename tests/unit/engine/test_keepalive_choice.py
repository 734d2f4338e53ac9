"""Which engines take polling keep-alive turns (sio_wsgi.transports.keepalive).

The turns themselves run under real gunicorn workers in tests/deploy/test_keepalive.py.
"""

from __future__ import annotations

import json
import logging

from werkzeug.test import Client

from sio_wsgi.config import DEFAULTS
from sio_wsgi.engine.server import EngineServer
from sio_wsgi.runtime.threading_driver import ThreadingDriver
from tests.unit.engine.test_engine_server import Recorder


class GreenNamedDriver(ThreadingDriver):
    """A threading driver under a green driver's name (what the choice looks at)."""

    name = "gevent"


def _engine(driver: ThreadingDriver, **options: object) -> EngineServer:
    return EngineServer(DEFAULTS.replace(**options), Recorder(), driver, logging.getLogger("test"))


def test_every_driver_takes_turns_unless_turned_off() -> None:
    green = _engine(GreenNamedDriver())._keepalive
    assert green is not None and not green.threads
    assert _engine(GreenNamedDriver(), polling_keepalive=False)._keepalive is None


def test_threading_takes_the_short_turns() -> None:
    keepalive = _engine(ThreadingDriver())._keepalive
    assert keepalive is not None and keepalive.threads


def test_a_server_without_gunicorn_s_socket_answers_as_usual() -> None:
    engine = _engine(GreenNamedDriver(), ping_interval=100.0, ping_timeout=100.0)
    client = Client(engine.handle_request)
    opened = client.get("/socket.io/?EIO=4&transport=polling")
    sid = json.loads(opened.get_data()[1:])["sid"]
    posted = client.post(f"/socket.io/?EIO=4&transport=polling&sid={sid}", data="1")
    assert (posted.status_code, posted.get_data()) == (200, b"ok")
    assert posted.headers["Content-Length"] == "2"
