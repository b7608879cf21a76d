"""The audit engine end to end on digits: store layout, resume, bad input, numbers recomputed by hand."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from audit.models.variants import PAPER_CONDITIONS, preset_variants, resolve_variants
from audit.running.engine import AuditConfig, plan_audit, run_audit
from audit.store import AuditDir, AuditError, load
from tests.conftest import ROOT, cli_exit_code, run_cli


def test_store_layout_and_load(digits_audit):
    result = load(digits_audit)
    assert result.model_names == ["base", "init_seed_1", "init_seed_2", "data_order"]
    assert result.is_complete
    manifest = json.loads((digits_audit / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "digits" and len(manifest["dataset"]["fingerprint"]) == 16
    assert {j["status"] for j in manifest["jobs"]} == {"done"}
    assert "torch" in manifest["versions"]
    # epoch 0 (before training) and 2 epochs are recorded for every image
    dec = result.decisions("base")
    assert sorted(dec["epoch"].unique()) == [0, 1, 2]
    assert len(dec) == 3 * result.n_images
    np.testing.assert_array_equal(dec["correct"], dec["predicted"] == result.labels[dec["image_id"]])
    assert ((dec["true_prob"] <= dec["top_prob"] + 1e-6) & (dec["top_prob"] <= 1 + 1e-6)).all()
    # accuracy in the models table equals the stored decisions at the final epoch
    for _, row in result.models.iterrows():
        arr = result.decision_array(row["name"], "correct")
        assert row["accuracy"] == pytest.approx(arr[-1].mean())
    assert result.image(0).size == (8, 8)


def test_summary_equals_numbers_recomputed_from_decisions(digits_audit):
    result = load(digits_audit)
    summary = json.loads((digits_audit / "report" / "summary.json").read_text())
    images = pd.read_parquet(digits_audit / "images.parquet")
    # by hand: final-epoch correctness of every model, straight from the decision files
    finals = []
    for name in result.model_names:
        d = pd.read_parquet(digits_audit / "decisions" / f"{name}.parquet")
        last = d[d["epoch"] == d["epoch"].max()].sort_values("image_id")
        finals.append(last["correct"].to_numpy())
    correct = np.stack(finals, axis=1)
    m = correct.shape[1]
    n_correct = correct.sum(1)
    np.testing.assert_array_equal(images.sort_values("image_id")["n_correct"], n_correct)
    t = 1
    trivial = (n_correct >= m - t).mean()
    impossible = (n_correct <= t).mean()
    assert summary["tolerance_used"] == t
    observed = summary["split"]["observed"]
    assert observed["trivial"] == pytest.approx(trivial, abs=1e-12)
    assert observed["impossible"] == pytest.approx(impossible, abs=1e-12)
    assert observed["inconclusive"] == pytest.approx(1 - trivial - impossible, abs=1e-12)
    counts = summary["split"]["counts"]
    assert (counts["trivial"], counts["impossible"]) == (
        int((n_correct >= m - t).sum()), int((n_correct <= t).sum())
    )
    assert [row["name"] for row in summary["models"]] == result.model_names
    for row, acc in zip(summary["models"], correct.mean(0), strict=True):
        assert row["accuracy"] == pytest.approx(acc, abs=1e-12), row["name"]


def test_variant_grid_follows_meding2022_a1():
    specs = preset_variants("paper")
    groups = pd.Series([s.group for s in specs]).value_counts().to_dict()
    assert groups == {k: v for k, v in PAPER_CONDITIONS.items()}
    base = next(s for s in specs if s.group == "base")
    plus10 = next(s for s in specs if s.group == "plus10")
    assert plus10.epochs == base.epochs + 10
    assert all(1.48 * base.lr <= s.lr <= 1.52 * base.lr for s in specs if s.group == "lr_jitter")
    assert len({s.init_seed for s in specs if s.group == "init_seed"}) == 5
    assert {s.train_part for s in specs if s.group == "disjoint"} == {"first_half", "second_half"}
    combined = [s for s in specs if s.group == "combined"]
    assert all(s.nesterov and s.arch != base.arch for s in combined)
    assert preset_variants("paper") == specs  # the grid is deterministic by seed


def test_disjoint_halves_are_disjoint():
    from audit.running.train import train_indices

    specs = {s.name: dataclasses.replace(s, train_size=6000) for s in preset_variants("quick")}
    a = train_indices(1000, specs["disjoint_1"])
    b = train_indices(1000, specs["disjoint_2"])
    # a pool smaller than train_size (6000) is used whole: two halves of 500 that cover it
    assert len(a) == len(b) == 500
    assert not set(a) & set(b)
    assert sorted(set(a) | set(b)) == list(range(1000))
    # a larger pool is first cut to train_size, then halved inside that subset
    pool = train_indices(10000, specs["base"])
    a = train_indices(10000, specs["disjoint_1"])
    b = train_indices(10000, specs["disjoint_2"])
    assert len(a) == len(b) == specs["base"].train_size // 2 == 3000
    assert not set(a) & set(b)
    assert sorted(set(a) | set(b)) == list(pool)
    assert len(train_indices(10000, specs["base"])) == specs["base"].train_size


def test_grid_file(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("base:\n  epochs: 2\nconditions:\n  base: 1\n  init_seed: 3\n"
                    "variants:\n  - {name: wide, group: width, arch_kwargs: {width: 32, depth: 8}}\n")
    specs = resolve_variants(str(grid))
    assert [s.name for s in specs] == ["base", "init_seed_1", "init_seed_2", "init_seed_3", "wide"]
    assert specs[0].epochs == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"conditions": {"bogus": 1}}))
    with pytest.raises(ValueError, match="unknown conditions"):
        resolve_variants(str(bad))


def test_rerun_skips_finished_jobs_and_force_recomputes(tmp_path):
    out = tmp_path / "a"
    cfg = AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu")
    first = run_audit(plan_audit(cfg), out)
    assert first.skipped == [] and len(first.done) == 4
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "decisions").iterdir()}
    before = _decisions(out)
    assert len(before) == 4
    second = run_audit(plan_audit(cfg), out)
    assert second.done == [] and sorted(second.skipped) == sorted(first.done)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "decisions").iterdir()} == mtimes
    third = run_audit(plan_audit(cfg), out, force=True)
    assert len(third.done) == 4
    assert {p.name: p.stat().st_mtime_ns for p in (out / "decisions").iterdir()} != mtimes  # rewritten
    # seeds fix the decisions on the CPU: recomputing gives the same predictions
    assert load(out).n_models == 4
    after = _decisions(out)
    assert sorted(after) == sorted(before)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def _decisions(out) -> dict[str, pd.DataFrame]:
    """(image_id, epoch, predicted, correct) of every decision file, in a fixed row order."""
    cols = ["image_id", "epoch", "predicted", "correct"]
    return {
        p.stem: pd.read_parquet(p)[cols].sort_values(["image_id", "epoch"]).reset_index(drop=True)
        for p in sorted((out / "decisions").glob("*.parquet"))
    }


def test_different_audit_in_out_dir_is_refused(tmp_path):
    out = tmp_path / "a"
    run_audit(plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu")), out)
    other = plan_audit(AuditConfig(dataset="gaussian", variants="minimal", epochs=1, device="cpu",
                                   dataset_options={"n_classes": 4, "n_train_per_class": 5,
                                                    "n_val_per_class": 5, "image_size": 8}))
    with pytest.raises(AuditError, match="different audit"):
        run_audit(other, out)
    files_before = sorted(p.name for p in (out / "decisions").iterdir())
    assert files_before == sorted(f"{n}.parquet" for n in ["base", "init_seed_1", "init_seed_2", "data_order"])
    run_audit(other, out, force=True)
    assert load(out).manifest["dataset"]["name"] == "gaussian"


def test_failed_job_is_recorded_and_others_finish(tmp_path):
    plan = plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu"))

    class Broken:
        name, kind = "broken", "variant"

        def describe(self):
            return {"name": "broken", "kind": "variant", "group": "broken"}

        def estimate_seconds(self, ctx):
            return 0.0

        def run(self, ctx, progress=None):
            raise RuntimeError("weights file is corrupt")

    plan.jobs.insert(1, Broken())
    outcome = run_audit(plan, tmp_path / "a")
    assert list(outcome.failed) == ["broken"] and len(outcome.done) == 4
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    status = {j["name"]: j["status"] for j in manifest["jobs"]}
    assert status["broken"] == "failed" and "corrupt" in next(j for j in manifest["jobs"] if j["name"] == "broken")["error"]
    assert load(tmp_path / "a").n_models == 4


@pytest.mark.slow
def test_killed_run_resumes_without_retraining(tmp_path, capsys):
    out = tmp_path / "killed"
    # no prediction depth or representations: the jobs, the kill and the resume are what is tested
    args = ["run", "--dataset", "digits", "--variants", "minimal", "--epochs", "3", "--train-size", "600",
            "--depth", "none", "--rsa-images", "0", "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "audit", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    jobs = out / "jobs"
    while time.time() < deadline and not (jobs.exists() and len(list(jobs.glob("*.json"))) >= 1):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished = sorted(p.stem for p in jobs.glob("*.json"))
    assert 1 <= len(finished) < 4, "the kill must land mid-run"
    before = {n: (out / "decisions" / f"{n}.parquet").stat().st_mtime_ns for n in finished}
    # nothing half-written: every decision file present is readable and complete
    for p in (out / "decisions").glob("*.parquet"):
        assert len(pd.read_parquet(p)) == 4 * 599
    # the killed process is gone: report and load call the run interrupted, not running
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["process"]["pid"] == proc.pid and "finished_at" not in manifest
    assert load(out).state == "interrupted"
    # what a kill can leave behind mid-write; report removes it, as the next run would
    (out / "report").mkdir(exist_ok=True)
    leftovers = [out / "jobs" / ".base.json.abc123.json.tmp", out / "report" / ".summary.json.x1.json.tmp"]
    for p in leftovers:
        p.write_text("half")
    # the report and the resumed run go through the console entry point in this process
    code = cli_exit_code(["report", out])
    rep = capsys.readouterr()
    assert code == 0, rep.err
    assert "interrupted" in rep.out and "rerun the same command to resume" in rep.out
    assert not list(out.rglob("*.tmp"))
    leftovers[0].write_text("half")
    code = cli_exit_code(args)
    res = capsys.readouterr()
    assert code == 0, res.err
    assert not list(out.rglob("*.tmp"))
    assert load(out).state == "complete"
    assert f"resumed: {len(finished)} finished jobs kept" in res.err
    after = {n: (out / "decisions" / f"{n}.parquet").stat().st_mtime_ns for n in finished}
    assert after == before
    assert load(out).n_models == 4


@pytest.mark.slow
def test_a_variant_killed_mid_training_resumes_from_its_last_epoch(tmp_path, capsys):
    import torch

    out = tmp_path / "audit"
    args = ["--dataset", "digits", "--variants", "minimal", "--epochs", "6", "--train-size", "600", "--depth", "none",
            "--rsa-images", "0", "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "audit", "run", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = out / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not list(checkpoints.glob("*.pt")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p.stem for p in (out / "jobs").glob("*.json")}
    saved = {p.stem: torch.load(p, weights_only=False)["epoch"] for p in checkpoints.glob("*.pt")}
    saved = {name: epoch for name, epoch in saved.items() if name not in finished}
    assert saved, "the kill must land while a variant trains"
    code = cli_exit_code(["run", *args])  # the same command, through the console entry point in this process
    assert code == 0, capsys.readouterr().err
    result = load(out)
    models = result.models.set_index("name")
    for name, epoch in saved.items():
        assert models.loc[name, "resumed_after_epoch"] == epoch
        assert result.decision_array(name).shape == (7, 599)  # epoch 0 and six trained epochs
    assert not checkpoints.exists()  # removed once every variant has finished


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "imagenet21k"], "unknown dataset 'imagenet21k'; valid: fashion-mnist"),
        (["--dataset", "digits", "--variants", "bogus"], "unknown variant preset 'bogus'; valid:"),
        (["--dataset", "imagefolder:/nonexistent/folder"], "does not exist"),
        (["--dataset", "digits", "--data-root", "/nonexistent/root"], "--data-root /nonexistent/root does not exist"),
        (["--dataset", "digits", "--variants", "none"], "nothing to run"),
        (["--dataset", "digits", "--ray-address", "x:1"], "--ray-address needs --executor ray"),
        (["--dataset", "digits", "--gpus-per-job", "0.5"], "--gpus-per-job needs --executor ray"),
        (["--dataset", "digits", "--resizer", "cv2"], "--resizer must be pil or torch"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, args, message):
    res = run_cli("run", *args, "--out", str(tmp_path / "o"), timeout=120)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr.replace("\n", " ")
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_different_audit(tmp_path, capsys):
    out = tmp_path / "a"
    run_audit(plan_audit(AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu", train_size=300,
                                     val_size=150, depth="none", rsa_images=0)), out)
    code = cli_exit_code(["run", "--dataset", "gaussian", "--variants", "minimal", "--epochs", "1", "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and "holds a different audit" in err and "--force" in err
    assert "Traceback" not in err


def test_dry_run_lists_jobs_and_writes_nothing(tmp_path):
    res = run_cli("run", "--dataset", "digits", "--variants", "quick", "--dry-run", "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert "base" in res.stdout and "estimated cost" in res.stdout and "combined" in res.stdout
    assert not (tmp_path / "o").exists()


def test_imagefolder_audit_with_corrupt_file(tmp_path):
    from tests.test_data_sources import make_imagefolder

    root = make_imagefolder(tmp_path / "ds", classes=("a", "b", "c"), n=4)
    (root / "val" / "a" / "bad.jpg").write_bytes(b"garbage")
    out = tmp_path / "audit"
    run_audit(plan_audit(AuditConfig(dataset=f"imagefolder:{root}", variants="minimal", epochs=1, device="cpu",
                                     image_size=16)), out)
    result = load(out)
    assert result.n_images == 12 and result.n_models == 4
    assert [s["path"].rsplit("/", 1)[1] for s in result.manifest["dataset"]["skipped"]] == ["bad.jpg"]
    assert result.images["source"].str.endswith(".jpg").all()
    assert result.image(0).size == (24, 20)  # the original file, not the 16 px copy


def test_load_errors(tmp_path):
    with pytest.raises(AuditError, match="does not exist"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AuditError, match="not an audit directory"):
        load(tmp_path / "empty")
    assert AuditDir(tmp_path / "empty").finished_jobs() == []


def test_printed_summary_equals_numbers_recomputed_by_hand(digits_audit, capsys):
    code = cli_exit_code(["report", digits_audit, "--tolerance", "1"])
    res = capsys.readouterr()
    assert code == 0, res.err
    result = load(digits_audit)
    correct = np.stack([pd.read_parquet(digits_audit / "decisions" / f"{m}.parquet")
                        .query("epoch == epoch.max()").sort_values("image_id")["correct"].to_numpy()
                        for m in result.model_names], axis=1)
    for name, acc in zip(result.model_names, correct.mean(0), strict=True):
        assert f"{name}" in res.out and f"{100 * acc:.2f}%" in res.out
    n = correct.sum(1)
    m = correct.shape[1]
    lines = {}
    for ln in res.out.splitlines():
        if ln.strip():
            lines.setdefault(ln.split()[0], ln.split())
    assert lines["trivial"][1] == f"{100 * (n >= m - 1).mean():.1f}%"
    assert lines["impossible"][1] == f"{100 * (n <= 1).mean():.1f}%"
    assert lines["inconclusive"][1] == f"{100 * ((n > 1) & (n < m - 1)).mean():.1f}%"
    # the binomial column: P(K >= M-1) under K ~ Binomial(M, mean accuracy)
    from scipy.stats import binom

    p = correct.mean()
    assert lines["trivial"][2] == f"{100 * binom.sf(m - 2, m, p):.1f}%"


def test_list_command():
    res = run_cli("list")
    assert res.returncode == 0
    assert "fashion-mnist" in res.stdout and "preset quick" in res.stdout and "resnet_small" in res.stdout


def test_compile_without_a_cpp_compiler_is_a_clear_error(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AuditError, match="--compile on the CPU needs a C\\+\\+ compiler"):
        plan_audit(AuditConfig(dataset="digits", variants="minimal", device="cpu", compile=True))
