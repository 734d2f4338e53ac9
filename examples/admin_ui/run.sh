#!/usr/bin/env bash
# From a fresh clone: install, then serve the Admin UI on http://127.0.0.1:5000/admin-ui/
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e "../..[admin]" werkzeug
npm install --no-audit --no-fund --loglevel=error
exec python app.py "$@"
