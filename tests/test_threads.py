"""Threads that fit the machine: --threads and OMP_NUM_THREADS win, busy cores are left to their processes,
and a resumed run keeps the threads it began with (the thread count changes float sums)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from audit.executors import allowed_cpus, choose_threads, free_cores


def test_requested_threads_and_omp_num_threads_win(monkeypatch):
    assert choose_threads(3) == (3, "--threads")
    assert choose_threads(4, workers=2) == (2, "--threads")
    assert choose_threads(1, workers=4) == (1, "--threads")  # never below one
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert choose_threads() == (5, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads, why = choose_threads()
    assert 1 <= threads <= len(allowed_cpus()) and "cores" in why


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_a_core_held_by_busy_processes_is_not_counted_free():
    cpu = min(allowed_cpus())
    spin = f"import os, time; os.sched_setaffinity(0, {{{cpu}}}); t = time.time() + 20\nwhile time.time() < t: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        import time

        time.sleep(0.5)
        assert free_cores({cpu}, sample_s=0.5) < 0.25
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_a_resumed_run_keeps_the_threads_it_began_with(tmp_path, monkeypatch):
    from audit.engine import AuditConfig, plan_audit, run_audit

    out = tmp_path / "audit"
    settings = dict(dataset="digits", variants="minimal", epochs=1, depth="none", learnability=False, val_size=100,
                    train_size=200, device="cpu")
    run_audit(plan_audit(AuditConfig(**settings, threads=1)), out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["threads"] == {"per_job": 1, "workers": 1, "chosen_by": "--threads"}
    assert manifest["config"]["threads"] == 1
    assert {json.loads(p.read_text())["environment"]["threads"] for p in (out / "jobs").glob("*.json")} == {1}
    # the same audit again without --threads (as after a kill), where 3 threads would be chosen: the recorded
    # count, not a new choice
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    run_audit(plan_audit(AuditConfig(**settings)), out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["threads"] == {"per_job": 1, "workers": 1, "chosen_by": "as when this audit began"}
