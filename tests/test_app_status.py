"""What the app says about a run that is not complete: an interrupted run (its process is gone) or
a failed one is never shown as "still running". Through the app's data layer (audit_app/_data.py)
and Streamlit's AppTest on the real app.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit.report import Report
from audit.store import AuditDir, current_process
from audit.synthetic import make_synthetic_audit
from audit_app import _data

ROOT = Path(__file__).resolve().parents[1]
NO_SUCH_PID = 4_194_305  # above Linux's largest pid_max (2**22): never a running process


@pytest.fixture(autouse=True)
def _no_runs_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(tmp_path / "no-runs")])


def open_page(audit, page: str = "overview") -> AppTest:
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(audit)
    at.run()
    if page != "overview":
        at.switch_page(f"{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "title") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def set_process(path: Path, process: dict | None, **extra) -> Path:
    """Record a run's process (host, pid, start time) in the audit's manifest, as the engine does."""
    store = AuditDir(path)
    manifest = json.loads(store.manifest_path.read_text())
    manifest.pop("process", None)
    if process is not None:
        manifest["process"] = process
    manifest.update(extra)
    store.write_manifest(manifest)
    return path


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory):
    """Three finished models of five jobs; the process that ran them no longer exists."""
    path = make_synthetic_audit(tmp_path_factory.mktemp("status") / "audit", n_images=120, n_models=3,
                                n_epochs=3, n_unfinished=2)
    return set_process(path, {**current_process(), "pid": NO_SUCH_PID, "process_start": "1"})


def test_a_run_whose_process_is_gone_is_interrupted_not_running(unfinished):
    data = Report.load(unfinished)
    assert data.state == "interrupted" and not data.complete
    assert _data.status_label(data) == "interrupted (3/5)"
    message = _data.status_message(data)
    assert "interrupted" in message and "rerun the same command to resume" in message
    assert "still running" not in message and "Reload" not in message

    at = open_page(unfinished)
    assert {m.label: m.value for m in at.metric}["Status"] == "interrupted (3/5)"
    shown = texts(at)
    assert "rerun the same command to resume" in shown and "still running" not in shown
    at.switch_page("dynamics.py").run()  # every page says it
    assert "rerun the same command to resume" in texts(at) and "still running" not in texts(at)


def test_a_live_run_still_says_running(unfinished, tmp_path):
    import shutil

    live = set_process(shutil.copytree(unfinished, tmp_path / "live"), current_process())
    data = Report.load(live)
    assert data.state == "running" and _data.status_label(data) == "running (3/5)"
    assert "still running: 3 of 5 jobs" in _data.status_message(data)


def test_a_run_that_ended_with_failed_jobs_says_so(unfinished, tmp_path):
    import shutil

    path = shutil.copytree(unfinished, tmp_path / "failed")
    manifest = json.loads(AuditDir(path).manifest_path.read_text())
    for job in manifest["jobs"]:
        if job["status"] != "done":
            job["status"] = "failed"
    set_process(path, manifest["process"], jobs=manifest["jobs"], finished_at="2026-01-01T00:00:00Z")
    data = Report.load(path)
    assert data.state == "failed" and _data.status_label(data) == "failed (3/5)"
    message = _data.status_message(data)
    assert message.startswith("Audit run failed") and "Jobs table" in message and "running" not in message


def test_interrupted_pid_is_really_absent():
    with pytest.raises(ProcessLookupError):
        os.kill(NO_SUCH_PID, 0)
