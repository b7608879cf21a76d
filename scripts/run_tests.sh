#!/usr/bin/env bash
# Run the test suite. Where Debian's pg_virtualenv is available (package postgresql), the suite runs inside
# a throwaway PostgreSQL cluster, so the study store's tests also run against a real PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# Two workers (pytest-xdist; an idle worker takes over tests queued for the other). DDD_TEST_WORKERS=0: one process.
WORKERS=${DDD_TEST_WORKERS:-2}
if [ "$WORKERS" != 0 ]; then
  set -- -n "$WORKERS" --dist worksteal "$@"
fi
if command -v pg_virtualenv >/dev/null 2>&1 && [ -z "${DDD_NO_POSTGRES:-}" ]; then
  exec pg_virtualenv sh -c 'DDD_STUDY_TEST_DB_URL="postgresql+psycopg://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE" exec "$0" -m pytest "$@"' "$PY" "$@"
fi
exec "$PY" -m pytest "$@"
