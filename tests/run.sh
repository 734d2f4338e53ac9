#!/usr/bin/env bash
# Run the whole sio_wsgi test suite; this is the command README and CI use:
#
#     bash tests/run.sh [extra pytest arguments]
#
# First the static checks CI runs too: `ruff check`, `ruff format --check` and
# `mypy` (strict, configured in setup.cfg), and the documentation site built with
# warnings as errors (`sphinx-build -W`, docs/conf.py, into a temporary folder).
# Then, as eventlet and gevent monkey-patching is process-wide, and so is the choice
# between the compiled and the pure-Python protocol modules, the suite runs as groups,
# one pytest process each:
#   main      everything not marked eventlet/gevent (servers under test that need
#             patching run in their own subprocesses anyway)
#   eventlet  modules marked `pytest.mark.eventlet`, in a process patched by eventlet
#   gevent    modules marked `pytest.mark.gevent`, in a process patched by gevent
#   pure      the protocol-level tests again with SIO_WSGI_PURE_PYTHON=1: `main` runs
#             what `pip install -e .` built (sio_wsgi/protocol's websocket, sio and eio
#             compiled by mypyc where it could), this group the .py sources of the three
#   parked    tests/e2e's gevent tests again with the server on gunicorn's gevent
#             worker instead of gevent.pywsgi (idle WebSockets park there)
# The exit status is non-zero if any group failed.
#
# Layout: tests/ and every test folder are Python packages (so test modules may
# share a basename: tests.unit.transports.test_websocket, tests.hostile.test_websocket),
# and setup.cfg's pytest `pythonpath = .` puts the checkout's root first on sys.path.
# Folders by kind: unit, integration, e2e, conformance, hostile, multinode, deploy,
# examples, fuzz, bench (smoke runs of bench/), metrics. What every folder shares --
# HOST, free_port, in_ci/skip_or_fail, wait_until, ServerProcess (a server command
# on a free port, ready once its health URL or port answers, stopped by PID) -- is in
# tests/support (`from tests.support import ...`); fixtures are in the conftest.py
# files, folder-specific helpers in <folder>/*_support.py.
#
# Missing test dependencies are installed first (`pip install -e ".[test]"`, and
# `npm ci` for each tests/*/package.json without node_modules); set
# SIO_SKIP_INSTALL=1 to skip that step.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
failed=()

install_deps() {
    [ "${SIO_SKIP_INSTALL:-0}" = "1" ] && return 0
    if ! "$PYTHON" -c "import sio_wsgi, socketio, websocket, requests, pytest, pytest_timeout, hypothesis, flask, gunicorn, eventlet, gevent, mypy, ruff, sphinx, furo, myst_parser" 2>/dev/null; then
        echo "=== installing the test dependencies"
        "$PYTHON" -m pip install -q -e ".[test]" || return 1
    fi
    local pkg dir
    for pkg in tests/*/package.json examples/*/package.json bench/node/package.json; do
        [ -f "$pkg" ] || continue
        dir=$(dirname "$pkg")
        if [ ! -d "$dir/node_modules" ] && command -v npm >/dev/null; then
            echo "=== npm install in $dir"
            (cd "$dir" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; }) || return 1
        fi
    done
}

run_group() {  # run_group NAME OK_CODES COMMAND...
    local name=$1 ok=$2 rc
    shift 2
    echo "=== [$name] $*"
    "$@"
    rc=$?
    if [[ " $ok " != *" $rc "* ]]; then
        failed+=("$name (exit $rc)")
    fi
}

marked_modules() {  # test modules that carry pytest.mark.<mode>
    grep -rlE "pytest\.mark\.$1\b" tests --include='test_*.py' --exclude-dir=node_modules 2>/dev/null | sort
}

patched_pytest() {  # a pytest run inside a process monkey-patched by $1
    case $1 in
        eventlet) echo 'import eventlet; eventlet.monkey_patch()' ;;
        gevent) echo 'from gevent import monkey; monkey.patch_all()' ;;
    esac
    echo 'import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))'
}

install_deps || { echo "FAILED: installing the test dependencies"; exit 1; }

run_group lint "0" "$PYTHON" -m ruff check sio_wsgi tests bench examples
run_group format "0" "$PYTHON" -m ruff format --check sio_wsgi tests bench examples
run_group types "0" "$PYTHON" -m mypy

docs_out=$(mktemp -d "${TMPDIR:-/tmp}/sio_wsgi_docs.XXXXXX")
run_group docs "0" "$PYTHON" -m sphinx -W --keep-going -q -b html docs "$docs_out"
rm -rf "$docs_out"

run_group main "0" "$PYTHON" -m pytest -q -m "not eventlet and not gevent" "$@"

for mode in eventlet gevent; do
    mapfile -t modules < <(marked_modules "$mode")
    [ ${#modules[@]} -eq 0 ] && continue
    # exit 5 = nothing selected, fine for these groups
    run_group "$mode" "0 5" "$PYTHON" -c "$(patched_pytest "$mode")" -q -m "$mode" "${modules[@]}" "$@"
done

# the codec tests (tests/unit/protocol, tests/fuzz, and the unit tests that drive the
# WebSocket and Engine.IO codecs directly) on the pure-Python modules
pure_tests=(tests/unit/protocol tests/fuzz
    tests/unit/engine/test_outgoing.py tests/unit/transports/test_websocket.py)
# exit 5 = extra arguments selected nothing here
run_group pure "0 5" env SIO_WSGI_PURE_PYTHON=1 "$PYTHON" -m pytest -q -m "not eventlet and not gevent" "${pure_tests[@]}" "$@"

# the gevent end-to-end tests again on gunicorn's gevent worker, where idle WebSockets
# park (tests/servers/app.py's SIO_E2E_GEVENT_SERVER). tests/e2e/test_parked.py runs in
# `main`, on gunicorn's gevent and gthread workers and sio_wsgi.gunicorn.EventletWorker
# (SIO_E2E_EVENTLET_SERVER, SIO_E2E_THREADING_SERVER run any e2e test there by hand)
run_group parked "0 5" env SIO_E2E_GEVENT_SERVER=gunicorn "$PYTHON" -m pytest -q -m "not eventlet and not gevent" --e2e-modes gevent --ignore=tests/e2e/test_parked.py tests/e2e "$@"

if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED groups: ${failed[*]}"
    exit 1
fi
echo "all test groups passed"
