"""Shared fixtures: small real audits built once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DDD_AUDIT_DATA", str(ROOT / "test-artifacts" / "no-downloads"))

# The study store's PostgreSQL tests run only when this names a scratch database (scripts/run_tests.sh sets it).
STUDY_DB_ENV = "DDD_STUDY_TEST_DB_URL"
STUDY_DB_SKIP = (
    f"PostgreSQL NOT TESTED: set {STUDY_DB_ENV}=postgresql+psycopg://USER@HOST:PORT/DB (a scratch database), "
    "or run `make test` / scripts/run_tests.sh, which starts a throwaway PostgreSQL cluster "
    "(pg_virtualenv, Debian package postgresql)"
)


#: the longest test files (a minute or more each on 2 cores), run first: `make test` hands whole files to two
#: workers in collection order, so a long file collected late would keep one worker busy after the other ends
LONGEST_FIRST = ("test_docs_run.py", "test_random_kills.py", "test_gpu_check.py", "test_wheel.py",
                 "test_deeper_charts_browser.py", "test_score.py", "test_first_hour.py", "test_engine.py")


def pytest_collection_modifyitems(session, config, items):
    """Collect the longest files first (a stable sort: every other file keeps its place and order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One loud line at the end of a run that skipped the PostgreSQL tests."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and STUDY_DB_ENV in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_line(
            f"WARNING: {len(skipped)} study-store test(s) skipped. {STUDY_DB_SKIP}", yellow=True, bold=True
        )


def cli_exit_code(args: list) -> int:
    """Run `ddd-audit ARGS` in this process through the console entry point; its exit code."""
    from audit.cli import main

    old = sys.argv
    sys.argv = ["ddd-audit", *map(str, args)]
    try:
        main()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old


def invoke_cli(args: list, capsys) -> tuple[int, str]:
    """`cli_exit_code`, and all that the command printed."""
    code = cli_exit_code(args)
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip()


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None):
    """Run `python -m audit ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **(env or {})}
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def digits_audit(tmp_path_factory) -> Path:
    """A real audit of scikit-learn's digits: the `minimal` preset, 2 epochs, trained here.

    Trained once per test run: under xdist the first worker to ask trains it into the run's shared folder
    (behind a file lock) and every worker gets its own copy, so no test sees another's writes.
    """
    import shutil

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this run's folder, shared by its workers
    built = shared / "digits-audit"
    with FileLock(str(shared / "digits-audit.lock")):
        if not (built / "report" / "summary.json").exists():
            shutil.rmtree(built, ignore_errors=True)
            _train_digits(built)
    out = tmp_path_factory.mktemp("audits") / "digits"
    shutil.copytree(built, out, symlinks=True)
    return out


def _train_digits(out: Path) -> None:
    from audit.report import build_report
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.store import load

    # 2 threads whatever the worker's own setting (make test runs one thread per worker): float sums differ
    # with the thread count, and the label-issue tests need the few images that this audit flags at 2
    # threads (at 1 thread, 2 epochs flag none).
    plan = plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=2, device="cpu", threads=2))
    run_audit(plan, out)
    build_report(load(out))
