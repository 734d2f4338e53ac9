"""The Flask chat example in headless Chromium (Debian's ``chromium``, driven by playwright-core).

Three browser contexts: alice forced to long-polling, bob on WebSocket only,
carol with the default (polling, then upgrade). The driver checks chat both
ways with sent/delivered acks, the typing indicator, a private message reaching
only bob, rooms and member lists, a binary image, ``POST /announce`` reaching
every page and a reload reconnecting, then saves a screenshot to tests/output/.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.examples_support import (
    ROOT,
    WORKERS,
    ExampleServer,
    check_scenario,
    gunicorn_argv,
    need_browser,
    need_client_js,
    output_path,
)

EXAMPLE = ROOT / "examples" / "flask_chat"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

SERVERS = {
    # the README's commands, run from examples/flask_chat/
    "threading": [sys.executable, "app.py", "--port", "{port}"],
    **{worker: gunicorn_argv(worker, "app:app") for worker in WORKERS},
}


@pytest.fixture(params=list(SERVERS))
def flask_chat(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, ExampleServer]]:
    """The example on each README server: werkzeug's (threads), then gunicorn's workers.

    :param request: gives the server name.
    :param tmp_path: for the server log.
    :returns: the server name and the running server.
    """
    need_browser()  # skip before starting anything
    need_client_js(EXAMPLE)
    name = str(request.param)
    with ExampleServer(SERVERS[name], EXAMPLE, tmp_path / f"flask_chat-{name}.log") as server:
        yield name, server


def test_flask_chat_in_chromium(flask_chat: tuple[str, ExampleServer]) -> None:
    name, server = flask_chat
    screenshot = output_path("flask_chat.png" if name == "threading" else f"flask_chat-{name}.png")
    check_scenario({"kind": "flask"}, server, screenshot)
    print(f"\nscreenshot of the Flask chat ({name}): {screenshot}")
