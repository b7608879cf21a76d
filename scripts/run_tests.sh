#!/usr/bin/env bash
# Run the test suite. Where Debian's pg_virtualenv is available (package postgresql), the suite runs inside
# a throwaway PostgreSQL cluster, so the study store's tests also run against a real PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# Two workers (pytest-xdist), each taking whole test files, so a file's fixtures are built once; each worker
# computes on one thread, so two workers never fight over the 2 cores (the shared digits audit is trained at
# 2 threads whatever this says; see tests/conftest.py). DDD_TEST_WORKERS=0: one process, torch's own threads.
WORKERS=${DDD_TEST_WORKERS:-2}
if [ "$WORKERS" != 0 ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
  set -- -n "$WORKERS" --dist loadfile "$@"
fi
if command -v pg_virtualenv >/dev/null 2>&1 && [ -z "${DDD_NO_POSTGRES:-}" ]; then
  exec pg_virtualenv sh -c 'DDD_STUDY_TEST_DB_URL="postgresql+psycopg://$PGUSER@$PGHOST:$PGPORT/$PGDATABASE" exec "$0" -m pytest "$@"' "$PY" "$@"
fi
exec "$PY" -m pytest "$@"
