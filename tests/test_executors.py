"""Executors: a local process pool and a real local Ray instance give the inline run's decisions."""

from __future__ import annotations

import numpy as np
import pytest

from audit.running.engine import AuditConfig, plan_audit, run_audit
from audit.running.executors import LocalExecutor
from audit.store import load


def _plan(**kw):
    # small: the executors, not the measures, are tested (every job still trains and records its decisions)
    plan = plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu", val_size=150,
                                  train_size=300, depth="none", rsa_images=0, **kw))
    plan.context.threads = 1  # the same thread count everywhere makes CPU results bit for bit equal
    return plan


@pytest.fixture(scope="module")
def inline_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("inline") / "a"
    run_audit(_plan(), out, executor=LocalExecutor())
    return load(out)


def _assert_same_decisions(a, b):
    assert a.model_names == b.model_names
    for m in a.model_names:
        for f in ("predicted", "true_prob"):
            np.testing.assert_array_equal(a.decision_array(m, f), b.decision_array(m, f), err_msg=f"{m} {f}")


class RecordingListener:
    def __init__(self):
        self.events = []

    def plan(self, jobs, todo):
        pass

    def job_started(self, name, index, total):
        self.events.append(("start", name))

    def job_progress(self, name, stage, done, total):
        self.events.append(("progress", name, stage, done, total))

    def job_finished(self, name, status, seconds, error=None):
        self.events.append(("finish", name, status))


@pytest.mark.slow
def test_process_pool_matches_inline(inline_audit, tmp_path):
    out = tmp_path / "pool"
    listener = RecordingListener()
    outcome = run_audit(_plan(), out, executor=LocalExecutor(workers=2), listener=listener)
    assert not outcome.failed
    _assert_same_decisions(inline_audit, load(out))
    # the workers' progress reaches this process: every job starts, reports training, then finishes
    for name in inline_audit.model_names:
        mine = [e for e in listener.events if e[1] == name]
        assert mine[0] == ("start", name) and mine[-1] == ("finish", name, "done")
        progress = [e for e in mine if e[0] == "progress"]
        assert progress and progress[-1][2:] == ("train", progress[-1][4], progress[-1][4])


def test_pool_rejects_zero_workers():
    with pytest.raises(ValueError, match="at least 1"):
        LocalExecutor(workers=0)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the cluster extra installs Ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    import cloudpickle

    import tests.faulty_jobs

    cloudpickle.register_pickle_by_value(tests.faulty_jobs)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_matches_inline(ray_cluster, inline_audit, tmp_path):
    from audit.running.executors import RayExecutor

    out = tmp_path / "ray"
    outcome = run_audit(_plan(), out, executor=RayExecutor())
    assert not outcome.failed and len(outcome.done) == 4
    _assert_same_decisions(inline_audit, load(out))


@pytest.mark.slow
def test_ray_worker_killed_mid_job(ray_cluster, inline_audit, tmp_path):
    from audit.running.executors import RayExecutor
    from tests.faulty_jobs import DieOnceJob

    # 1. a worker dies once: Ray retries the task and the audit completes
    plan = _plan()
    plan.jobs[1] = DieOnceJob(plan.jobs[1], marker=str(tmp_path / "once"))
    outcome = run_audit(plan, tmp_path / "retry", executor=RayExecutor(max_retries=1))
    assert not outcome.failed and (tmp_path / "once").exists()
    _assert_same_decisions(inline_audit, load(tmp_path / "retry"))

    # 2. a worker dies every time: that job is marked failed, the others finish ...
    plan = _plan()
    plan.jobs[2] = DieOnceJob(plan.jobs[2], marker=str(tmp_path / "always"), always=True)
    outcome = run_audit(plan, tmp_path / "fail", executor=RayExecutor(max_retries=0))
    assert list(outcome.failed) == [plan.jobs[2].name]
    assert load(tmp_path / "fail").n_models == 3
    # ... and a rerun completes what is missing, keeping the finished jobs
    outcome = run_audit(_plan(), tmp_path / "fail", executor=RayExecutor())
    assert outcome.done == [plan.jobs[2].name] and len(outcome.skipped) == 3
    _assert_same_decisions(inline_audit, load(tmp_path / "fail"))


def test_unreachable_cluster_is_a_clear_error():
    pytest.importorskip("ray")
    from audit.running.executors import RayExecutor, _check_reachable

    with pytest.raises(ValueError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1", 2.0)
    assert RayExecutor(address="127.0.0.1:1").address == "127.0.0.1:1"


def test_gpus_per_job_takes_fractions_or_whole_gpus():
    pytest.importorskip("ray")
    from audit.running.executors import RayExecutor

    assert RayExecutor(gpus_per_job=0.25).gpus_per_job == 0.25
    assert RayExecutor(gpus_per_job=2).gpus_per_job == 2
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="gpus_per_job"):
            RayExecutor(gpus_per_job=bad)
