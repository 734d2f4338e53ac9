"""What every test folder shares (``from tests.support import ...``).

- :data:`HOST` (``127.0.0.1``, the only address a test binds), :data:`ROOT` (the
  checkout), :data:`ASYNC_MODES`;
- :func:`free_port`, :func:`port_open`;
- :func:`in_ci`, :func:`skip_or_fail` (a missing tool skips, or fails under ``CI=true``);
- :func:`wait_until`: poll until truthy, raise ``AssertionError`` on timeout;
- :func:`run_python`: ``python -c`` a script from the checkout's root, output captured;
- :class:`ServerProcess`: a server command on a free port, ready once its health URL
  (or its port) answers, stopped by PID; :func:`http_answers`.

The checkout's root is on ``sys.path`` through pytest's ``pythonpath`` option
(setup.cfg), and ``tests/`` and its folders are packages, so this imports from any
test folder without ``sys.path`` edits. ``bench/`` does not import it.
"""

from __future__ import annotations

from tests.support.common import (
    ASYNC_MODES,
    HOST,
    ROOT,
    free_port,
    in_ci,
    port_open,
    run_python,
    skip_or_fail,
    wait_until,
)
from tests.support.process import ServerProcess, http_answers

__all__ = [
    "ASYNC_MODES",
    "HOST",
    "ROOT",
    "ServerProcess",
    "free_port",
    "http_answers",
    "in_ci",
    "port_open",
    "run_python",
    "skip_or_fail",
    "wait_until",
]
