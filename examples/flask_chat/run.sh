#!/usr/bin/env bash
# From a fresh clone: install, then serve the Flask chat on http://127.0.0.1:5000
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e ../.. flask
npm install --no-audit --no-fund --loglevel=error
exec python -m sio_wsgi app:app "$@"
