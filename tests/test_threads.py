"""Threads that fit the machine: --threads and OMP_NUM_THREADS win, busy cores are left to their processes,
and a resumed run keeps the threads it began with (the thread count changes float sums)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from audit.running.executors import allowed_cpus, choose_threads, free_cores


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


def test_a_run_records_its_threads_and_chooses_them_before_each_job(tmp_path, monkeypatch):
    from audit.running.engine import AuditConfig, plan_audit, run_audit

    settings = dict(dataset="digits", variants="minimal", epochs=1, depth="none", learnability=False, val_size=100,
                    train_size=200, device="cpu")
    run_audit(plan_audit(AuditConfig(**settings, threads=1)), tmp_path / "fixed")
    manifest = json.loads((tmp_path / "fixed" / "manifest.json").read_text())
    assert manifest["threads"] == {"per_job": 1, "workers": 1, "chosen_by": "--threads"}
    assert manifest["config"]["threads"] == 1
    jobs = [json.loads(p.read_text()) for p in (tmp_path / "fixed" / "jobs").glob("*.json")]
    assert len(jobs) == 4 and {j["environment"]["threads"] for j in jobs} == {1}
    # without --threads or OMP_NUM_THREADS: chosen from the free cores, again before each job
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run_audit(plan_audit(AuditConfig(**settings)), tmp_path / "auto")
    threads = json.loads((tmp_path / "auto" / "manifest.json").read_text())["threads"]
    assert threads["chosen_by"].endswith("; chosen again before each job")
    assert 1 <= threads["per_job"] <= len(allowed_cpus())
    for path in (tmp_path / "auto" / "jobs").glob("*.json"):
        assert 1 <= json.loads(path.read_text())["environment"]["threads"] <= len(allowed_cpus())


def test_a_variant_resumed_from_its_checkpoint_goes_on_with_its_threads(tmp_path):
    import numpy as np
    import torch

    from audit.data import load_dataset
    from audit.models.variants import VariantSpec
    from audit.running.train import TensorData, train_variant

    ds = load_dataset("digits")
    cpu = torch.device("cpu")
    train = TensorData.from_numpy(np.array(ds.train.images), ds.train.labels, cpu)
    val = TensorData.from_numpy(np.array(ds.val.images), ds.val.labels, cpu)
    spec = VariantSpec(name="base", group="base", arch_kwargs={"width": 8, "depth": 8}, epochs=2, lr=0.05,
                       batch_size=64)
    checkpoint = tmp_path / "base.pt"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train_variant(spec, train, val, 10, device=cpu, checkpoint=str(checkpoint))
        assert torch.load(checkpoint, weights_only=True)["threads"] == 2  # saved after epoch 1 of 2
        torch.set_num_threads(1)
        train_variant(spec, train, val, 10, device=cpu, checkpoint=str(checkpoint))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
