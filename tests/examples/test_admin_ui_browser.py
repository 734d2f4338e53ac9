"""The official Socket.IO Admin UI (examples/admin_ui) in headless Chromium.

The example serves the npm package's ``ui/dist`` and calls ``sio.instrument()``
with a bcrypt hash as password (as the Node server takes it). The driver
(tests/browser/admin_ui_scenario.js) opens two demo pages (rooms red and blue),
logs in to the UI (a wrong password first), finds both sockets and their rooms,
and disconnects the blue one with the UI's button; the blue page sees
``io server disconnect`` and the server (``GET /sockets``) lists only the red sid.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.examples.examples_support import (
    ROOT,
    ExampleServer,
    gunicorn_argv,
    need_browser,
    need_client_js,
    output_path,
    report,
    run_scenario,
)
from tests.support import skip_or_fail, wait_until

EXAMPLE = ROOT / "examples" / "admin_ui"
DIST = EXAMPLE / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
PASSWORD = "changeit-too"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

SERVERS = {
    # the README's commands, run from examples/admin_ui/
    "threading": [sys.executable, "app.py", "--port", "{port}"],
    "gevent": gunicorn_argv("gevent", "app:app"),
}


@pytest.fixture(params=list(SERVERS))
def admin_ui(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ExampleServer]]:
    """The example on werkzeug's threaded server, then on gunicorn's gevent worker."""
    need_browser()
    need_client_js(EXAMPLE)
    if not (DIST / "index.html").is_file():
        skip_or_fail("examples/admin_ui/node_modules missing: run npm install there")
    name = str(request.param)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    env = {"ADMIN_USERNAME": "root", "ADMIN_PASSWORD_HASH": hashed}
    log = tmp_path / f"admin_ui-{name}.log"
    with ExampleServer(SERVERS[name], EXAMPLE, log, env=env) as server:
        yield name, server


def server_sids(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/sockets", timeout=5) as answer:
        sids: list[str] = json.load(answer)["sids"]
    return sids


def test_admin_ui_in_chromium(admin_ui: tuple[str, ExampleServer]) -> None:
    name, server = admin_ui
    node = need_browser()
    screenshot = output_path(f"admin_ui-{name}.png")
    scenario = {
        "base_url": server.url,
        "screenshot": str(screenshot),
        "username": "root",
        "password": PASSWORD,
    }
    lines = run_scenario(node, scenario, script="admin_ui_scenario.js")
    done = [line for line in lines if line.get("done")]
    assert done and done[-1]["ok"], report(lines) + "\n--- server log:\n" + server.log_tail()
    steps = {line["step"]: line for line in lines if line.get("ok") and "step" in line}
    assert set(steps) >= {
        "two demo clients connect",
        "wrong password is refused",
        "log in",
        "both sockets listed",
        "their rooms listed",
        "disconnect one socket from the UI",
    }, report(lines)
    gone = steps["disconnect one socket from the UI"]
    # the server side, asked by the driver before closing the pages: blue is gone
    assert gone["server_sids"] == [gone["still_connected"]], report(lines)
    wait_until(lambda: server_sids(server.url) == [], what="every page gone with the browser")
    print(f"\nscreenshot of the Admin UI ({name}): {screenshot}")
