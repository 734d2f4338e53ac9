"""EngineServer decisions driven through WSGI calls, on a clock the test moves."""

from __future__ import annotations

import json
import logging
from typing import Any

from werkzeug.test import Client

from sio_wsgi.config import DEFAULTS
from sio_wsgi.engine.server import EngineServer
from sio_wsgi.runtime.threading_driver import ThreadingDriver


class ClockDriver(ThreadingDriver):
    """Threading driver whose clock only moves when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.disconnects: list[tuple[str, str]] = []

    def on_connect(self, sid: str, environ: dict[str, Any]) -> bool:
        return True

    def on_message(self, sid: str, data: str | bytes) -> None:
        pass

    def on_disconnect(self, sid: str, reason: str) -> None:
        self.disconnects.append((sid, reason))


def make(**options: Any) -> tuple[EngineServer, ClockDriver, Recorder, Client]:
    driver, handler = ClockDriver(), Recorder()
    engine = EngineServer(
        DEFAULTS.replace(ping_interval=100.0, ping_timeout=100.0, **options),
        handler,
        driver,
        logging.getLogger("test"),
    )
    return engine, driver, handler, Client(engine.handle_request)


def test_overdue_pong_closes_session_even_if_the_timer_lags() -> None:
    engine, driver, handler, client = make()
    body = client.get("/engine.io/?EIO=4&transport=polling").get_data(as_text=True)
    sid = json.loads(body[1:])["sid"]
    session = engine.sessions[sid]
    assert session.ping_timer is not None
    driver.now = session.ping_timer.when + 5.0  # the timer task runs 5 s late
    engine._send_ping(session)
    driver.now += 94.0
    assert client.get(f"/?EIO=4&transport=polling&sid={sid}").get_data(as_text=True) == "2"
    driver.now += 2.0  # past due + ping_timeout; the (real-time) timer has not fired
    response = client.get(f"/?EIO=4&transport=polling&sid={sid}")
    assert response.status_code == 400
    assert json.loads(response.get_data()) == {"code": 1, "message": "Session ID unknown"}
    assert handler.disconnects == [(sid, "ping timeout")]
    engine.shutdown()


def test_pong_in_time_keeps_session() -> None:
    engine, driver, handler, client = make()
    body = client.get("/?EIO=4&transport=polling").get_data(as_text=True)
    sid = json.loads(body[1:])["sid"]
    engine._send_ping(engine.sessions[sid])
    assert client.get(f"/?EIO=4&transport=polling&sid={sid}").get_data(as_text=True) == "2"
    driver.now += 50.0
    assert client.post(f"/?EIO=4&transport=polling&sid={sid}", data="3").status_code == 200
    driver.now += 500.0  # no ping outstanding: no deadline
    assert sid in engine.sessions and engine.sessions[sid].pong_deadline is None
    assert handler.disconnects == []
    engine.shutdown()
    assert handler.disconnects == [(sid, "server shutting down")]


class _Records(logging.Handler):
    """Keeps the records of the loggers it is added to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def sticky_warnings(self) -> list[int]:
        return [r.levelno for r in self.records if "sticky" in r.getMessage()]


def test_a_request_after_the_clients_own_close_is_not_taken_for_a_missing_sticky_session() -> None:
    engine, _driver, handler, client = make()
    body = client.get("/?EIO=4&transport=polling").get_data(as_text=True)
    sid = json.loads(body[1:])["sid"]
    assert client.post(f"/?EIO=4&transport=polling&sid={sid}", data="1").status_code == 200
    assert [closed for closed, _reason in handler.disconnects] == [sid]  # its CLOSE packet
    records = _Records()
    # an earlier Server(logger=False) may have set the "sio_wsgi" logger to ERROR
    loggers = [logging.getLogger("sio_wsgi.engine.server"), engine.logger]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(records)
        logger.setLevel(logging.DEBUG)
    try:
        response = client.get(f"/?EIO=4&transport=polling&sid={sid}")  # polls once more
        assert response.status_code == 400
        assert json.loads(response.get_data()) == {"code": 1, "message": "Session ID unknown"}
        assert records.sticky_warnings() == []
        client.get("/?EIO=4&transport=polling&sid=NeverSeenHere0000000")  # another node's?
        assert records.sticky_warnings() == [logging.WARNING]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(records)
            logger.setLevel(level)
    engine.shutdown()


def test_the_closed_session_memory_is_bounded() -> None:
    engine, _driver, _handler, _client = make()
    for n in range(3000):
        engine._remember_closed(f"sid{n}")
    assert len(engine._closed_sids) == 1024 and "sid2999" in engine._closed_sids
    assert "sid0" not in engine._closed_sids
    engine.shutdown()
