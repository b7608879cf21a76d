"""The deeper measures in a real digits audit: the stored depth and probability files, and the report's
columns and summary recomputed by hand from them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import audit
from audit.deep.label_issues import ensemble_probabilities, find_label_issues
from audit.report import build_report, format_summary
from audit.running.engine import AuditConfig, plan_audit, run_audit
from audit.store import AuditDir

pytestmark = pytest.mark.slow  # builds (or reuses) a trained digits audit


def test_depth_and_probability_files(digits_audit):
    result = audit.load(digits_audit)
    depth = result.depth("base")
    assert depth is not None and all(result.depth(m) is None for m in result.model_names[1:])  # --depth base
    val = depth[depth["split"] == "val"].sort_values("image_id")
    np.testing.assert_array_equal(val["image_id"], np.arange(result.n_images))
    # the depth file's network prediction is the stored final decision
    final = result.predicted(["base"])[:, 0]
    assert (val["predicted"].to_numpy() == final).mean() > 0.99
    record = json.loads(result.models.set_index("name").loc["base", "depth"])
    assert record["k"] == 30 and record["layers"][0] == "input" and record["layers"][-1] == "softmax"
    for m in result.model_names:
        p = np.load(digits_audit / "probs" / f"{m}.npy")
        assert p.dtype == np.float16 and p.shape == (result.n_images, result.n_classes)
        np.testing.assert_allclose(p.astype(np.float32).sum(axis=1), 1, atol=5e-3)
        assert (p.argmax(axis=1) == result.predicted([m])[:, 0]).mean() > 0.99


def test_report_columns_and_summary_recomputed_by_hand(digits_audit):
    result = audit.load(digits_audit)
    summary = json.loads((digits_audit / "report" / "summary.json").read_text())
    images = pd.read_parquet(digits_audit / "images.parquet").sort_values("image_id")
    depth = result.depth("base").query("split == 'val'").sort_values("image_id")["depth"].to_numpy()
    np.testing.assert_allclose(images["prediction_depth"], depth)
    for c in ("trivial", "inconclusive", "impossible"):
        vals = images.loc[images["category"] == c, "prediction_depth"].dropna()
        got = summary["depth"]["mean_by_category"][c]
        assert (got is None and vals.empty) or got == pytest.approx(vals.mean())
    # label issues: cleanlab on the mean of the stored probabilities
    probs = [np.load(digits_audit / "probs" / f"{m}.npy") for m in result.model_names]
    issues = find_label_issues(result.labels, ensemble_probabilities(probs))
    np.testing.assert_array_equal(images["is_label_issue"], issues.is_label_issue)
    np.testing.assert_allclose(images["label_quality"], issues.label_quality)
    imp = images["category"] == "impossible"
    assert summary["label_issues"]["impossible_flagged_share"] == pytest.approx(images.loc[imp, "is_label_issue"].mean())
    hist = pd.read_csv(digits_audit / "report" / "label_issues_histogram.csv")
    observed = pd.read_csv(digits_audit / "report" / "histogram.csv")["observed"]
    np.testing.assert_array_equal(hist["label_issue"] + hist["other"], observed)
    # causes only for impossible images, and they add up
    causes = images["impossible_cause"]
    assert (causes[~imp] == "").all()
    counts = summary["impossible_causes"]["counts"]
    assert sum(counts.values()) + summary["impossible_causes"]["undefined"] == imp.sum()
    assert (digits_audit / "report" / "label_issues.png").stat().st_size > 0
    text = format_summary(summary)
    assert "prediction depth" in text and "label issues" in text and "impossible images" in text


def test_learnability_and_depth_types_end_to_end(tmp_path):
    out = tmp_path / "audit"
    cfg = AuditConfig(dataset="digits", variants="minimal", epochs=1, device="cpu", learnability=True,
                      depth_types=True, depth="none", probs=False)
    outcome = run_audit(plan_audit(cfg), out)
    assert not outcome.failed and {"learnability", "depth_split"} <= set(outcome.done)
    store = AuditDir(out)
    assert store.finished_aux_jobs() == ["depth_split", "learnability"]
    assert store.finished_jobs() == sorted(["base", "init_seed_1", "init_seed_2", "data_order"])
    result = audit.load(out)
    assert result.model_names == ["base", "init_seed_1", "init_seed_2", "data_order"]  # aux jobs are no models
    split = result.aux_table("depth", "depth_split")
    assert len(split) == result.n_images and set(split["half"]) == {1, 2}
    summary = build_report(result, n_bootstrap=0)
    assert summary["audit"]["jobs_done"] == summary["audit"]["jobs_total"] == 6
    lea = summary["learnability"]["conditions"]
    assert set(lea) == {"true_data", "random_labels", "random_images"}
    assert lea["true_data"]["learnability"] > lea["random_labels"]["learnability"]
    images = pd.read_parquet(out / "images.parquet")
    frame = result.aux_table("learnability", "learnability")
    np.testing.assert_array_equal(images.sort_values("image_id")["learnable"], frame["agree_true_data"])
    types = summary["depth"]["types"]
    assert sum(types["counts"].values()) + types["undefined"] == result.n_images
    assert "depth_type" in images.columns and "is_label_issue" not in images.columns  # no probs stored
    # a rerun resumes: nothing is recomputed
    again = run_audit(plan_audit(cfg), out)
    assert again.done == [] and set(again.skipped) >= {"learnability", "depth_split"}
