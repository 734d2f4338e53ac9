"""Helpers every test folder shares (importable as ``testsupport``: pytest puts
``tests/`` on ``sys.path`` when it loads ``tests/conftest.py``)."""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["HOST", "free_port", "in_ci", "skip_or_fail"]

HOST = "127.0.0.1"


def in_ci() -> bool:
    """:returns: True under ``CI=true``, where skips become failures."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip the test with ``reason``, or fail it under CI.

    :param reason: why the test cannot run.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """:returns: a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])
