#!/usr/bin/env bash
# Runs the chat demo on http://127.0.0.1:5000 from a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q -e . flask
(cd examples/demo && npm install --no-audit --no-fund --loglevel=error)
exec python examples/demo/app.py "$@"
