#!/usr/bin/env bash
# Run the test suite. Where Debian's pg_virtualenv is available (package postgresql), the suite runs inside
# a throwaway PostgreSQL cluster, so the study store's tests also run against a real PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# Two workers (pytest-xdist), each taking whole test files, so a file's fixtures are built once.
# DDD_TEST_WORKERS=0: one process. (Torch keeps its own thread count: the digits audits that the label-issue
# tests train flag their few issues at that count, and none at one thread.)
WORKERS=${DDD_TEST_WORKERS:-2}
if [ "$WORKERS" != 0 ]; then
  set -- -n "$WORKERS" --dist loadfile "$@"
fi
if command -v pg_virtualenv >/dev/null 2>&1 && [ -z "${DDD_NO_POSTGRES:-}" ]; then
  exec pg_virtualenv sh -c 'DDD_STUDY_TEST_DB_URL="postgresql+psycopg://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE" exec "$0" -m pytest "$@"' "$PY" "$@"
fi
exec "$PY" -m pytest "$@"
