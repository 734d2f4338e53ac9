"""The small helpers every test folder shares: host, ports, CI policy, waiting."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

__all__ = [
    "ASYNC_MODES",
    "HOST",
    "ROOT",
    "free_port",
    "in_ci",
    "port_open",
    "skip_or_fail",
    "wait_until",
]

T = TypeVar("T")

#: the checkout's root (``sio_wsgi/``, ``tests/``, ``bench/``, ``examples/``)
ROOT = Path(__file__).resolve().parents[2]
#: every server a test starts binds this address, nothing else
HOST = "127.0.0.1"
#: the async modes a server under test runs in
ASYNC_MODES = ("threading", "eventlet", "gevent")


def in_ci() -> bool:
    """:returns: True under ``CI=true``, where skips become failures."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
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


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """:returns: whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 3.0,
    what: str = "condition",
    interval: float = 0.01,
) -> T:
    """Call ``predicate`` until it returns something truthy.

    :param predicate: the condition; called at least once.
    :param timeout: seconds before giving up.
    :param what: what is awaited, for the failure message.
    :param interval: seconds between two calls.
    :returns: the truthy value.
    :raises AssertionError: when ``timeout`` passes first (the message names
        ``what`` and shows the last value).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            shown = repr(value)
            shown = shown if len(shown) <= 300 else shown[:300] + "..."
            raise AssertionError(f"{what}: not met within {timeout:g} s (last value: {shown})")
        time.sleep(min(interval, left))


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args...`` from the checkout's root, output captured as text.

    :param code: the script.
    :param args: its ``sys.argv[1:]``.
    :param env: the whole environment (None: this process's).
    :param timeout: seconds before it is killed (``subprocess.TimeoutExpired``).
    :returns: the finished process (its exit status is not checked).
    """
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=env,
        check=False,
    )
