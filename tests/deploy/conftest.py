"""Attach the server's log to the report of a failed deployment test."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

_LOG_TAIL = 8000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    server: Any = getattr(item, "funcargs", {}).get("server")
    if report.failed and server is not None and hasattr(server, "log_text"):
        report.sections.append((f"{server.kind} server log", server.log_text()[-_LOG_TAIL:]))
    return report
