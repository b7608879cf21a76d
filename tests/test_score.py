"""`ddd-audit score`: models that were not in an audit, run on its images and stored as kind "scored".

The numbers are recomputed here by hand from the stored decisions and images table; the split and
everything computed from it stay the audit's own models'. Bad input ends in one line and exit 2.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.metrics.consistency import error_consistency
from audit.metrics.scored import accuracy_ranks, scored_table
from audit.report import build_report
from audit.store import SCORED_TABLE, AuditDir, decisions_frame, load, read_json
from tests.conftest import ROOT, cli_exit_code, run_cli

MODEL = "efficientnet_lite0@32"
NAME = "efficientnet_lite0-32px"


def _copy(audit: Path, tmp_path: Path, name: str = "audit") -> Path:
    """A private copy of a session audit (scoring writes into it)."""
    return Path(shutil.copytree(audit, tmp_path / name))


def _in_process(capsys, *args):
    """`ddd-audit ARGS` through the console entry point in this process: what `run_cli` returns, without the
    interpreter's start (the first command of the new-model test still runs as a user runs it)."""
    from types import SimpleNamespace

    capsys.readouterr()
    code = cli_exit_code(list(args))
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def _one_line_error(res, needle: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    return lines[0]


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _fake_scored(path: Path, name: str, correct_share: float, seed: int = 0) -> np.ndarray:
    """Store a scored model through the store's writer, with decisions drawn here; returns its predictions."""
    result = load(path)
    rng = np.random.default_rng(seed)
    labels = result.labels
    predicted = np.where(rng.random(len(labels)) < correct_share, labels, (labels + 1) % result.n_classes)
    probs = np.full(len(labels), 0.9, dtype=np.float32)
    store = AuditDir(path)
    store.write_job(name, {"kind": "scored", "scored_kind": "pretrained", "spec": f"{name}@fake",
                           "accuracy": float((predicted == labels).mean())},
                    decisions_frame([0], result.image_ids, predicted[None], probs[None], probs[None], labels))
    store.write_models_table(order=[j["name"] for j in result.manifest["jobs"]])
    return predicted


# --------------------------------------------------------------------------- the measures, by hand
def test_scored_table_by_hand():
    rng = np.random.default_rng(1)
    audit = rng.random((300, 5)) < 0.7
    audit[:60] = True  # trivial images
    audit[60:90] = False  # impossible images
    scored = rng.random((300, 2)) < np.array([0.8, 0.5])
    n = audit.sum(axis=1)
    categories = np.where(n >= 4, "trivial", np.where(n <= 1, "impossible", "inconclusive"))
    table = scored_table(scored, audit, categories, names=["a", "b"], n_bootstrap=300, random_state=0)
    assert list(table["model"]) == ["a", "b"]
    for j in range(2):
        row = table.iloc[j]
        k = int(scored[:, j].sum())
        assert row["accuracy"] == pytest.approx(k / 300)
        assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx(_wilson(k, 300))
        for c in ("trivial", "inconclusive", "impossible"):
            mask = categories == c
            assert row[f"{c}_n"] == mask.sum()
            assert row[f"{c}_accuracy"] == pytest.approx(scored[mask, j].mean())
            assert (row[f"{c}_low"], row[f"{c}_high"]) == pytest.approx(_wilson(int(scored[mask, j].sum()), mask.sum()))
        for subset, mask in (("all", np.ones(300, bool)), ("inconclusive", categories == "inconclusive")):
            by_hand = np.mean([error_consistency(scored[mask, j], audit[mask, m]).kappa for m in range(5)])
            assert row[f"kappa_{subset}"] == pytest.approx(by_hand)
            assert row[f"kappa_{subset}_low"] < by_hand < row[f"kappa_{subset}_high"]
        # rank among the 5 audit models and the 2 scored ones, 1 = most accurate
        for subset, mask in (("all", np.ones(300, bool)), ("inconclusive", categories == "inconclusive")):
            accuracies = np.concatenate([audit[mask].mean(axis=0), scored[mask].mean(axis=0)])
            assert row[f"rank_{subset}"] == 1 + np.sum(accuracies > accuracies[5 + j])
        assert row["rank_change"] == row["rank_all"] - row["rank_inconclusive"]
        assert row["n_ranked"] == 7


def test_ranks_share_ties_and_bad_input_is_named():
    correct = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]], bool)
    ranks = accuracy_ranks(correct, np.array(["inconclusive"] * 4))
    assert ranks["rank_all"].tolist() == [1, 1, 1]  # all three are right on 2 of 4
    no_inc = accuracy_ranks(correct, np.array(["trivial"] * 4))
    assert no_inc["rank_inconclusive"].isna().all()
    with pytest.raises(ValueError, match="scored_correct has 4 images but audit_correct has 3"):
        scored_table(correct, correct[:3], ["trivial"] * 4)
    with pytest.raises(ValueError, match="categories must be one of"):
        scored_table(correct, correct, ["easy"] * 4)
    table = scored_table(correct[:, :1], correct[:, 1:], ["trivial"] * 4, n_bootstrap=0)
    assert np.isnan(table["kappa_inconclusive"].iloc[0]) and np.isnan(table["kappa_all_low"].iloc[0])
    assert table["inconclusive_n"].iloc[0] == 0 and np.isnan(table["inconclusive_accuracy"].iloc[0])


# --------------------------------------------------------------------------- scored makers stay out of the split
def test_scored_models_stay_out_of_the_split(digits_audit, tmp_path):
    path = _copy(digits_audit, tmp_path)
    before = load(path)
    images_before = before.images.copy()
    predicted = _fake_scored(path, "newcomer", 0.8)
    result = load(path)
    assert result.model_names == before.model_names and result.scored_names == ["newcomer"]
    assert "newcomer" not in set(result.models["name"])
    models_table = pd.read_parquet(path / "models.parquet")  # the models table keeps it, with its kind
    assert models_table.set_index("name").at["newcomer", "kind"] == "scored"
    summary = build_report(result)
    after = load(path)
    for col in ("n_correct", "category", "tp_agreement", "consensus"):
        pd.testing.assert_series_equal(after.images[col], images_before[col])
    assert [m["name"] for m in summary["models"]] == before.model_names
    kappa = pd.read_csv(path / "report" / "error_consistency_all.csv", index_col=0)
    assert list(kappa.index) == before.model_names
    assert pd.read_csv(path / "report" / "per_class_accuracy.csv").columns.tolist().count("newcomer") == 0
    # the table, recomputed by hand from the stored decisions and the audit's split
    table = pd.read_csv(path / "report" / SCORED_TABLE)
    correct = predicted == after.labels
    assert table.loc[0, "accuracy"] == pytest.approx(correct.mean())
    for c in ("trivial", "inconclusive", "impossible"):
        mask = after.images["category"].to_numpy() == c
        if mask.any():
            assert table.loc[0, f"{c}_accuracy"] == pytest.approx(correct[mask].mean())
    # the app's data layer and the report state do not count it either
    from audit.report import Report

    data = Report.load(path)
    assert data.model_names == before.model_names and data.source == "current"


def test_rerunning_an_audit_keeps_scored_models_out(digits_audit, tmp_path):
    from audit.running.engine import AuditConfig, plan_audit, run_audit

    path = _copy(digits_audit, tmp_path)
    _fake_scored(path, "newcomer", 0.7)
    config = load(path).manifest["config"]
    plan = plan_audit(AuditConfig(**config))
    outcome = run_audit(plan, path)  # a resume: nothing to do, the scored model stays scored
    assert outcome.done == [] and "newcomer" not in outcome.skipped
    result = load(path)
    assert result.scored_names == ["newcomer"] and "newcomer" not in result.model_names


# --------------------------------------------------------------------------- the command, as a user runs it
@pytest.mark.slow
def test_score_a_new_model_on_the_digits_audit(digits_audit, tmp_path, capsys):
    path = _copy(digits_audit, tmp_path)
    before = load(path)
    res = run_cli("score", str(path), "--models", MODEL, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"{NAME}: done" in res.stderr and "Scored models" in res.stdout and NAME in res.stdout
    assert f"table written to {path / 'report' / SCORED_TABLE}" in res.stdout

    result = load(path)
    assert result.model_names == before.model_names and result.scored_names == [NAME]
    record = read_json(path / "jobs" / f"{NAME}.json")
    assert record["kind"] == "scored" and record["scored_kind"] == "pretrained" and record["spec"] == MODEL
    # the split is the audit's own, unchanged
    np.testing.assert_array_equal(result.images["category"], before.images["category"])
    np.testing.assert_array_equal(result.images["n_correct"], before.images["n_correct"])
    summary = result.summary()
    assert [m["name"] for m in summary["models"]] == before.model_names

    # accuracies recomputed by hand from the stored decisions
    decisions = pd.read_parquet(path / "decisions" / f"{NAME}.parquet").sort_values("image_id")
    labels = result.images.set_index("image_id").loc[decisions["image_id"], "label"].to_numpy()
    correct = decisions["predicted"].to_numpy() == labels
    np.testing.assert_array_equal(correct, decisions["correct"].to_numpy())
    table = pd.read_csv(path / "report" / SCORED_TABLE).set_index("model")
    row = table.loc[NAME]
    assert row["accuracy"] == pytest.approx(correct.mean())
    assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx(_wilson(int(correct.sum()), len(correct)))
    categories = result.images["category"].to_numpy()
    audit_correct = before.correct()
    for c in ("trivial", "inconclusive", "impossible"):
        mask = categories == c
        assert row[f"{c}_n"] == mask.sum()
        if mask.any():
            assert row[f"{c}_accuracy"] == pytest.approx(correct[mask].mean())
    for subset, mask in (("all", np.ones(len(correct), bool)), ("inconclusive", categories == "inconclusive")):
        by_hand = np.mean([error_consistency(correct[mask], audit_correct[mask, m]).kappa
                           for m in range(audit_correct.shape[1])])
        assert row[f"kappa_{subset}"] == pytest.approx(by_hand)
        accuracies = np.append(audit_correct[mask].mean(axis=0), correct[mask].mean())
        assert row[f"rank_{subset}"] == 1 + np.sum(accuracies > accuracies[-1])
    printed = f"all {100 * correct.mean():.1f}%"
    assert printed in res.stdout

    # the same command again keeps it; `report` prints it too
    again = _in_process(capsys, "score", path, "--models", MODEL)
    assert again.returncode == 0, again.stderr
    assert f"kept: {NAME}" in again.stderr and f"{NAME}: done" not in again.stderr
    rep = _in_process(capsys, "report", path)
    assert rep.returncode == 0 and "Scored models" in rep.stdout and NAME in rep.stdout


@pytest.mark.slow
def test_score_a_trained_variant(digits_audit, tmp_path, capsys):
    path = _copy(digits_audit, tmp_path)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"variants": [{"name": "newcomer_wide", "epochs": 1}]}))
    res = _in_process(capsys, "score", path, "--variants", grid)
    assert res.returncode == 0, res.stderr
    result = load(path)
    assert result.scored_names == ["newcomer_wide"] and "newcomer_wide" not in result.model_names
    assert read_json(path / "jobs" / "newcomer_wide.json")["scored_kind"] == "variant"
    assert len(result.epochs("newcomer_wide")) == 2  # epoch 0 and 1; the table uses the last
    table = pd.read_csv(path / "report" / SCORED_TABLE)
    assert table.loc[0, "accuracy"] == pytest.approx(result.correct(["newcomer_wide"]).mean())


# --------------------------------------------------------------------------- bad input: one line, exit 2
def test_unfinished_audit_names_its_jobs(digits_audit, tmp_path, capsys):
    path = _copy(digits_audit, tmp_path)
    manifest = read_json(path / "manifest.json")
    manifest["jobs"][1]["status"] = "failed"
    manifest["jobs"][1]["error"] = "RuntimeError: out of memory"
    (path / "manifest.json").write_text(json.dumps(manifest))
    line = _one_line_error(_in_process(capsys, "score", str(path), "--models", MODEL), "unfinished jobs")
    assert manifest["jobs"][1]["name"] in line and "ddd-audit run" in line


def test_unknown_model_spec(digits_audit, tmp_path, capsys):
    path = _copy(digits_audit, tmp_path)
    _one_line_error(_in_process(capsys, "score", str(path), "--models", "efficientnet_litex"), "efficientnet_litex")
    assert load(path).scored_names == []


def test_a_model_of_the_audit_is_refused(digits_audit, tmp_path, capsys):
    path = _copy(digits_audit, tmp_path)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"variants": [{"name": "base", "epochs": 1}]}))
    for force in ([], ["--force"]):  # --force scores again a scored model, never one of the audit's own
        _one_line_error(_in_process(capsys, "score", str(path), "--variants", str(grid), *force), "base is one of the audit's own")


def test_a_model_scored_with_another_spec_needs_force(digits_audit, tmp_path):
    from audit.running.score import plan_scoring

    path = _copy(digits_audit, tmp_path)
    _fake_scored(path, NAME, 0.5)  # stored with the spec "efficientnet_lite0-32px@fake"
    with pytest.raises(ValueError, match="scored before with another spec"):
        plan_scoring(path, models=[MODEL])
    plan = plan_scoring(path, models=[MODEL], force=True)
    assert [j.name for j in plan.jobs] == [NAME]


def test_nothing_to_score_and_not_an_audit(tmp_path, digits_audit, capsys):
    _one_line_error(_in_process(capsys, "score", str(digits_audit)), "nothing to score")
    _one_line_error(_in_process(capsys, "score", str(tmp_path / "nowhere"), "--models", MODEL), "does not exist")


def _imported(tmp_path: Path, *, images: bool) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    rows = []
    for i in range(12):
        label = ["cat", "dog"][i % 2]
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        for m in range(3):
            right = i < 4 or rng.random() < 0.5
            rows.append({"maker": f"m{m}", "image": f"img{i}.png", "label": label,
                         "predicted": label if right else ["dog", "cat"][i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / ("with_images" if images else "bare")
    args = ["import", str(tmp_path / "d.csv"), "--out", str(out)] + (["--images", str(folder)] if images else [])
    assert cli_exit_code(args) == 0
    return out


def test_imported_audit_without_images_says_to_reimport(tmp_path, capsys):
    path = _imported(tmp_path, images=False)
    line = _one_line_error(_in_process(capsys, "score", str(path), "--models", MODEL), "imported without its images")
    assert "--images" in line


def test_moved_image_files_name_the_first_missing(tmp_path, capsys):
    path = _imported(tmp_path, images=True)
    first = sorted(load(path).images["source"])[0]
    (tmp_path / "imgs" / "img0.png").unlink()
    line = _one_line_error(_in_process(capsys, "score", str(path), "--models", MODEL), "image files have moved")
    assert "img0.png" in line and first.endswith("img0.png")
    assert load(path).scored_names == []


# --------------------------------------------------------------------------- the app's page
@pytest.fixture()
def _no_runs_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(tmp_path / "no-runs")])


def _open_scored_page(audit: Path):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(audit)
    at.run()
    at.switch_page("scored.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.usefixtures("_no_runs_folder")
def test_scored_page_lists_the_scored_models(digits_audit, tmp_path):
    path = _copy(digits_audit, tmp_path)
    predicted = _fake_scored(path, "newcomer", 0.8)
    build_report(load(path))
    at = _open_scored_page(path)
    (table,) = [d.value for d in at.dataframe if "rank all" in d.value.columns]
    assert table["model"].tolist() == ["newcomer"]
    accuracy = (predicted == load(path).labels).mean()
    assert table.loc[0, "all"].startswith(f"{100 * accuracy:.1f}%")
    assert table.loc[0, "of"] == load(path).n_models + 1
    assert any("rank by accuracy" in json.dumps(json.loads(c.proto.spec)) for c in at.get("vega_lite_chart"))


@pytest.mark.usefixtures("_no_runs_folder")
def test_scored_page_without_scored_models_says_how(digits_audit):
    at = _open_scored_page(digits_audit)
    assert any("ddd-audit score" in str(i.value) for i in at.info)
    assert not [d for d in at.dataframe if "rank all" in d.value.columns]


def test_imported_audit_needs_a_label_map_without_a_probe(tmp_path, capsys):
    path = _imported(tmp_path, images=True)
    _one_line_error(_in_process(capsys, "score", str(path), "--models", MODEL), "give --label-map FILE")


@pytest.mark.slow
def test_score_an_imported_audit_through_a_label_map(tmp_path, capsys):
    path = _imported(tmp_path, images=True)
    mapping = tmp_path / "map.csv"
    mapping.write_text("cat,281\ndog,207\n")  # tabby, golden retriever
    res = _in_process(capsys, "score", path, "--models", MODEL, "--label-map", mapping)
    assert res.returncode == 0, res.stderr
    result = load(path)
    assert result.scored_names == [NAME] and result.model_names == ["m0", "m1", "m2"]
    record = read_json(path / "jobs" / f"{NAME}.json")
    assert record["head"] == "mapping" and record["kind"] == "scored"
    table = pd.read_csv(path / "report" / SCORED_TABLE)
    assert table.loc[0, "accuracy"] == pytest.approx(result.correct([NAME]).mean())


@pytest.mark.usefixtures("_no_runs_folder")
def test_scored_page_on_a_one_model_and_a_running_audit(tmp_path):
    from audit.synthetic import make_synthetic_audit

    one = make_synthetic_audit(tmp_path / "one_model", n_images=120, n_models=1, n_epochs=2)
    _fake_scored(one, "newcomer", 0.6)
    build_report(load(one))
    at = _open_scored_page(one)
    (table,) = [d.value for d in at.dataframe if "rank all" in d.value.columns]
    assert table.loc[0, "of"] == 2
    running = make_synthetic_audit(tmp_path / "running", n_images=120, n_models=3, n_epochs=2, n_unfinished=1)
    at = _open_scored_page(running)
    shown = " ".join(str(e.value) for kind in ("warning", "info") for e in at.get(kind))
    assert "still running" in shown and "ddd-audit score" in shown
