#!/usr/bin/env bash
# From a fresh clone: install, create the database and demo users, serve on http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e ../.. django
npm install --no-audit --no-fund --loglevel=error
python manage.py migrate -v0
python manage.py create_demo_users
exec python manage.py runsio "$@"
