"""Autobahn|Testsuite against sio_wsgi's own WebSocket layer, in every async mode.

For each mode, ``echo_app.py`` (framing of ``sio_wsgi.protocol.websocket``, the
connection code of ``sio_wsgi.transports.websocket``) runs under a real server on
a free 127.0.0.1 port -- gunicorn ``-k gthread``, ``-k sio_wsgi.gunicorn.EventletWorker``,
``-k gevent`` -- and ``wstest -m fuzzingclient`` runs every case of sections 1-7, 9
and 10 against it. Each case's exchange (``behavior``) must be rated OK, NON-STRICT
or INFORMATIONAL, and its closing handshake (``behaviorClose``) OK or INFORMATIONAL:
stricter than the suite's report, which shows a wrong close code as non-strict.

Sections 12-13 (permessage-deflate, negotiated by the echo endpoint as the server
does it): every group of both sections with its first nine payload sizes
(``DEFLATE_CI_CASES``) in gevent mode, the recommended one, and with the first seven
in the two others (``DEFLATE_SHORT_CASES``: the compression code is the same in every
mode, and the large messages of sections 9-10 go through each mode's reader);
``SIO_AUTOBAHN_DEFLATE=full`` runs them whole in every mode (about 14 minutes a
mode), ``ci`` the nine sizes in every mode, ``off`` none. The same ratings are
required there.

``wstest`` is Python 2.7 only: ``install_wstest.sh`` installs it once into a cache
folder. Without a Python 2.7 interpreter the tests skip, or fail under ``CI=true``.

    python -m pytest -m autobahn tests/autobahn -s      # ~3 min per mode, prints the tables
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.autobahn.autobahn_support import (
    MODES,
    WstestUnavailable,
    install_wstest,
    problems,
    run_fuzzingclient,
    running_echo_server,
    summary_table,
)
from tests.support import skip_or_fail

pytestmark = [pytest.mark.autobahn, pytest.mark.slow]

#: which cases of sections 12-13 (permessage-deflate): off, short, ci or full; by
#: default ci in gevent mode and short in the others
DEFLATE = os.environ.get("SIO_AUTOBAHN_DEFLATE")
#: the mode that runs the larger deflate cases by default
DEFLATE_CI_MODE = "gevent"


@pytest.fixture(scope="module")
def wstest() -> str:
    """The ``wstest`` command, installed if needed."""
    try:
        return install_wstest()
    except WstestUnavailable as exc:
        reason = f"Autobahn|Testsuite's wstest is not available: {exc}"
    # outside the except: no chained traceback in the report
    return skip_or_fail(reason)  # skips, or fails under CI=true


@pytest.mark.timeout(2700)
@pytest.mark.parametrize("async_mode", MODES)
def test_fuzzingclient(async_mode: str, wstest: str, tmp_path: Path) -> None:
    mode = async_mode
    with running_echo_server(mode, tmp_path) as server:
        info = server.info()
        assert info["driver"] == mode, info  # the worker patched what the mode needs
        deflate = DEFLATE or ("ci" if mode == DEFLATE_CI_MODE else "short")
        by_agent, seconds = run_fuzzingclient(wstest, {mode: server.ws_url}, tmp_path, deflate)
        errors = server.errors()
    results = by_agent[mode]
    print(f"\n{mode}: {len(results)} cases ({deflate} deflate cases) in {seconds:.1f} s")
    print(summary_table({mode: results}))

    expected_sections = {1, 2, 3, 4, 5, 6, 7, 9, 10} | ({12, 13} if deflate != "off" else set())
    assert {r.section for r in results} == expected_sections
    failing = problems(results)
    assert not failing, f"{len(failing)} cases failed in {mode} mode:\n" + "\n".join(
        r.describe() for r in failing
    )
    assert not errors, f"the {mode} server logged failures:\n" + "\n".join(errors)
