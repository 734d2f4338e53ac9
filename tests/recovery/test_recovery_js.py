"""Connection state recovery end to end: gunicorn (every worker kind) and the official
JS client, which needs nothing special (v4.6+). A stream of ticks to a room is cut by
a dropped connection; the client must come back as itself and get every tick exactly
once, in order (tests/js/recovery_client.js checks it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.examples.examples_support import WORKERS as EXAMPLE_WORKERS
from tests.examples.examples_support import gunicorn_argv
from tests.support import ROOT, ServerProcess, skip_or_fail

JS = ROOT / "tests" / "js"
TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}


@pytest.fixture(scope="module", params=sorted(EXAMPLE_WORKERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    worker: str = request.param
    log = tmp_path_factory.mktemp("recovery") / f"{worker}.log"
    argv = gunicorn_argv(worker, "tests.recovery.recovery_app:app")
    proc = ServerProcess(argv, log, health="/health", attempts=3)
    proc.start()
    yield proc
    proc.stop()


def run_client(url: str, **scenario: Any) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "socket.io-client").is_dir():
        skip_or_fail("node and tests/js/node_modules are needed")
    assert node is not None
    done = subprocess.run(
        [node, str(JS / "recovery_client.js"), json.dumps({"url": url, **scenario})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=str(JS),
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, (done.stdout, done.stderr)
    report: dict[str, Any] = json.loads(lines[-1])
    report["stderr"] = done.stderr[-2000:]
    return report


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("drop", ["engine-close", "kill-tcp"])
def test_a_dropped_client_gets_every_tick_once(
    server: ServerProcess, transport: str, drop: str
) -> None:
    if drop == "kill-tcp" and transport == "polling":
        pytest.skip("a long-polling client has no one connection to cut")
    report = run_client(
        server.url,
        transports=TRANSPORTS[transport],
        drop=drop,
        ticks=400,
        drop_after=120,
        drops=2,
        interval_ms=3,
        timeout_ms=30000,
    )
    assert report["ok"], (
        json.dumps(report)[:3000] + "\n" + Path(server.log_path).read_text()[-3000:]
    )
    assert report["recovered"] == [False, True, True], report
    assert report["me"]["recovered"] is True and report["first_gap"] == -1, report
