"""What a newcomer meets in the first hour: small folders, failed jobs, crashed runs, at-chance models,
skipped files, leftover temporary files, crafted audits and unhelpful messages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.running.engine import AuditConfig, plan_audit, run_audit
from audit.store import AuditDir, AuditError, current_process, load, process_alive, run_state
from tests.conftest import cli_exit_code, run_cli


def _small_folder(root, n_train=30, n_val=10, classes=3):
    """An ImageFolder of `classes` classes, told apart by brightness, with odd-sized splits."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = (rng.integers(0, 60, (40, 48, 3)) + 60 * c).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i}.jpg")
    return root


# --------------------------------------------------------------------------- the small-folder audit
@pytest.mark.slow
@pytest.mark.parametrize("size", [32, 64])
def test_small_imagefolder_quick_audit_finishes(tmp_path, size, capsys):
    """3 classes x 30 training images: the half-batch variant trains on odd batches of 45 (it crashed the CPU)."""
    root = _small_folder(tmp_path / "folder")
    out = tmp_path / "audit"
    # one epoch and none of the deeper measures: the crash was in training the variants themselves; the command
    # runs through the console entry point in this process
    code = cli_exit_code(["run", "--dataset", f"imagefolder:{root}", "--variants", "quick", "--image-size", size,
                          "--epochs", "1", "--depth", "none", "--rsa-images", "0", "--no-learnability", "--out", out])
    assert code == 0, capsys.readouterr().err[-2000:]
    result = load(out)
    assert result.state == "complete" and "half_batch" in result.model_names
    assert result.n_images == 30


# --------------------------------------------------------------------------- run states
def test_run_state_tells_a_live_run_from_a_crashed_one():
    jobs = [{"name": "a", "status": "done"}, {"name": "b", "status": "pending"}]
    me = current_process()
    assert run_state({"jobs": jobs, "process": me}) == "running"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = {**me, "pid": dead.pid, "process_start": "1"}
    assert run_state({"jobs": jobs, "process": gone}) == "interrupted"
    reused = {**me, "process_start": "1"}  # our pid, but another process's start time: a reused pid
    assert process_alive(reused) is False
    assert run_state({"jobs": jobs, "process": {**me, "host": socket.gethostname() + "-elsewhere"}}) == "running"
    failed = [{"name": "a", "status": "done"}, {"name": "b", "status": "failed"}]
    assert run_state({"jobs": failed, "process": gone, "finished_at": "x"}) == "failed"
    assert run_state({"jobs": [{"name": "a", "status": "done"}], "process": gone}) == "complete"


def test_a_second_run_does_not_write_into_a_live_one(tmp_path):
    out = tmp_path / "a"
    plan = plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu",
                                  learnability=False, depth="none"))
    run_audit(plan, out)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["jobs"][0]["status"] = "pending"
        manifest.pop("finished_at")
        manifest["process"] = {**current_process(), "pid": sleeper.pid,
                               "process_start": open(f"/proc/{sleeper.pid}/stat").read().rsplit(")", 1)[1].split()[19]}
        (out / "manifest.json").write_text(json.dumps(manifest))
        assert load(out).state == "running"
        with pytest.raises(AuditError, match="being written by another run"):
            run_audit(plan, out)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert load(out).state == "interrupted"
    run_audit(plan, out)
    assert load(out).state == "complete"


# --------------------------------------------------------------------------- failed jobs and the dry run
def test_a_run_whose_jobs_all_fail_says_so_and_exits_non_zero(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    out = tmp_path / "a"
    res = run_cli("run", "--dataset", "digits", "--variants", "none", "--models", f"resnet18={garbage}",
                  "--out", str(out))
    assert res.returncode == 1
    text = res.stdout + res.stderr
    assert "Traceback" not in text and "KeyError" not in text
    assert "Failed jobs" in res.stdout and "resnet18-ckpt-garbage: CheckpointMismatchError" in res.stdout
    assert "failed jobs: 1 of 1" in res.stderr
    result = load(out)
    assert result.n_models == 0 and result.state == "failed"
    rep = run_cli("report", str(out))
    assert rep.returncode == 1 and "Traceback" not in rep.stderr
    assert "Failed jobs" in rep.stdout and "failed jobs: 1 of 1" in rep.stderr
    # the long failure line is not wrapped at 80 columns in a pipe
    line = next(x for x in rep.stdout.splitlines() if "resnet18-ckpt-garbage:" in x)
    assert len(line) > 80 and line.rstrip().endswith("(UnpicklingError)")


def test_dry_run_with_pretrained_models(tmp_path):
    res = run_cli("run", "--dataset", "digits", "--variants", "minimal", "--models", "efficientnet_lite0@48",
                  "--dry-run", "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert "efficientnet_lite0-48px" in res.stdout and "pretrained" in res.stdout
    assert "estimated cost" in res.stdout
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- warnings a user should see
def test_models_at_chance_are_named(tmp_path):
    from audit.metrics.difficulty import near_chance
    from audit.report import build_report, format_summary
    from audit.synthetic import make_synthetic_audit

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    good = rng.random(2000) < 0.8
    chance = rng.random(2000) < 0.1
    flags = near_chance(np.stack([good, chance, rng.random(2000) < 0.14], axis=1), labels)
    assert flags["chance"] == pytest.approx(np.bincount(labels).max() / 2000)
    assert flags["near_chance"].tolist() == [False, True, True]
    # a model clearly above chance on very few images is still not trusted
    assert near_chance(np.ones((6, 1), bool), np.arange(6) % 2)["near_chance"].tolist() == [True]

    path = make_synthetic_audit(tmp_path / "e0", n_images=60, n_models=3, n_epochs=1)
    summary = build_report(load(path))
    at = summary["chance"]["models"]
    assert at and all(m["near_chance"] == (m["name"] in at) for m in summary["models"])
    text = format_summary(summary)
    assert "(near chance)" in text and "at or near chance" in text


def test_skipped_files_are_counted_in_the_run_output(tmp_path, capsys):
    root = _small_folder(tmp_path / "folder", n_train=4, n_val=3)
    (root / "val" / "class0" / "bad.jpg").write_bytes(b"garbage")
    for p in (root / "val" / "class2").iterdir():  # a whole class unreadable
        p.write_bytes(b"garbage")
    code = cli_exit_code(["run", "--dataset", f"imagefolder:{root}", "--variants", "minimal", "--epochs", "1",
                          "--image-size", "16", "--no-learnability", "--depth", "none", "--out", tmp_path / "a"])
    res = capsys.readouterr()
    assert code == 0, res.err
    assert "skipped 4 files that could not be decoded (4 val)" in res.err
    assert "no readable validation image in class2" in res.err
    assert "skipped 4 files" in res.out  # the report's notes say it too


# --------------------------------------------------------------------------- a crafted audit
def test_images_outside_the_dataset_root_are_refused(tmp_path):
    root = _small_folder(tmp_path / "folder", n_train=4, n_val=2)
    out = tmp_path / "a"
    run_audit(plan_audit(AuditConfig(dataset=f"imagefolder:{root}", variants="minimal", epochs=1, device="cpu",
                                     image_size=16, learnability=False, depth="none")), out)
    result = load(out)
    assert result.image(0).size == (48, 40)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(secret)
    images = pd.read_parquet(out / "images.parquet")
    images.loc[0, "source"] = str(secret)
    images.loc[1, "source"] = str(root / ".." / "secret.png")
    images.to_parquet(out / "images.parquet")
    crafted = load(out)
    for i in (0, 1):
        with pytest.raises(AuditError, match="outside the audit's dataset folder"):
            crafted.image(i)
    assert crafted.image(2).size == (48, 40)


# --------------------------------------------------------------------------- messages
def test_messages_read_well():
    from audit.cli import _os_error_text
    from audit.models.pretrained import _suggest
    from audit.report import count_noun

    assert _os_error_text(OSError(28, "No space left on device")) == "No space left on device"
    assert _os_error_text(OSError(28, "No space left on device", "runs/a")) == "No space left on device: runs/a"
    suggestions = _suggest("efficientnet_lite")
    names = suggestions.split("did you mean ")[1].rstrip("?").split(", ")
    assert len(names) == len(set(names)) == 4 and "efficientnet_lite1" in names
    assert count_noun(1, "model") == "1 model" and count_noun(2, "class") == "2 classes"


def test_tmp_files_of_a_live_run_are_kept(tmp_path):
    """Only a run that has stopped gets its temporary files removed: a live writer's are its writes in progress."""
    from audit.report import build_report
    from audit.synthetic import make_synthetic_audit

    path = make_synthetic_audit(tmp_path / "s", n_images=40, n_models=3, n_epochs=2, n_unfinished=1)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["process"] = current_process()
    (path / "manifest.json").write_text(json.dumps(manifest))
    live = path / "jobs" / ".m.json.abc.json.tmp"
    live.parent.mkdir(exist_ok=True)
    live.write_text("{")
    build_report(load(path))
    assert live.exists()
    manifest["process"]["pid"] = 2**22 + 1  # no such process
    (path / "manifest.json").write_text(json.dumps(manifest))
    build_report(load(path))
    assert not live.exists()
    assert AuditDir(path).remove_temporary_files() == []
    assert os.path.exists(path / "report" / "summary.json")
