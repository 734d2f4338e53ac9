"""Helpers shared by the e2e test modules (scenario building and assertions)."""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["CLIENT_TRANSPORTS", "b64", "check", "scenario"]

#: client-side transport choices: name -> socket.io-client ``transports`` option
CLIENT_TRANSPORTS: dict[str, list[str]] = {
    "upgrade": ["polling", "websocket"],
    "websocket": ["websocket"],
    "polling": ["polling"],
}


def b64(data: bytes) -> str:
    """Base64 text of ``data``.

    :param data: bytes.
    :returns: ASCII base64.
    """
    return base64.b64encode(data).decode("ascii")


def scenario(
    srv: Any,
    transport: str,
    steps: list[dict[str, Any]],
    clients: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build a driver.js scenario.

    :param srv: the server.
    :param transport: key of :data:`CLIENT_TRANSPORTS`.
    :param steps: the steps.
    :param clients: client specs (default one client ``a`` on ``/``).
    :param extra: more top-level fields (``timeout_ms``, ``options``...).
    :returns: the scenario dict.
    """
    sc: dict[str, Any] = {
        "url": srv.url,
        "timeout_ms": 4000,
        "overall_timeout_ms": 15000,
        "options": {"transports": CLIENT_TRANSPORTS[transport]},
        "clients": clients or {"a": {}},
        "steps": steps,
    }
    options = extra.pop("options", None)
    if options:
        sc["options"].update(options)
    sc.update(extra)
    return sc


def check(res: Any, srv: Any) -> None:
    """Assert the driver succeeded, showing its output and the server log otherwise.

    :param res: driver result.
    :param srv: the server.
    """
    assert res.ok, f"{res.dump()}\n--- server log ---\n{srv.log_tail()}"
