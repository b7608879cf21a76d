"""Tests for the report (audit.report): stored numbers equal numbers recomputed by hand
from the stored decision files."""

import hashlib
import json
import shutil
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

import audit
from audit.report import REPORT_COLUMNS, build_report, format_summary
from audit.store import BASE_IMAGE_COLUMNS
from audit.synthetic import make_synthetic_audit

N_VARIANTS, N_EPOCHS = 4, 6


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = make_synthetic_audit(
        tmp_path_factory.mktemp("rep") / "audit",
        n_images=240,
        n_models=N_VARIANTS + 1,
        n_epochs=N_EPOCHS,
        n_pretrained=1,
        random_state=3,
    )
    hashes = _decision_hashes(path)
    summary = build_report(audit.load(path), n_bootstrap=50)
    return path, summary, hashes


def _decision_hashes(path):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((path / "decisions").iterdir())
    }


def _by_hand(path):
    """Decisions read straight from the parquet files: {model: frame sorted by epoch, image_id}."""
    names = [j["name"] for j in json.loads((path / "manifest.json").read_text())["jobs"]]
    return {
        m: pd.read_parquet(path / "decisions" / f"{m}.parquet").sort_values(["epoch", "image_id"])
        for m in names
    }


def _final(frame, fld):
    last = frame["epoch"].max()
    return frame.loc[frame["epoch"] == last, fld].to_numpy()


def _kappa(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = cohen_kappa_score(x, y)
    return 1.0 if np.isnan(k) and (x == y).all() else k


def test_report_files_exist_and_decisions_are_untouched(built):
    path, summary, hashes = built
    report = path / "report"
    for name in summary["files"]["tables"] + summary["files"]["figures"] + ["summary.json"]:
        assert (report / name).stat().st_size > 0, name
    assert {"histogram.png", "error_consistency.png", "decision_maps.png", "swaps_per_epoch.png"} <= set(
        summary["files"]["figures"]
    )
    assert _decision_hashes(path) == hashes
    assert json.loads((report / "summary.json").read_text())["split"] == summary["split"]


def test_accuracy_split_and_histogram_by_hand(built):
    path, summary, _ = built
    frames = _by_hand(path)
    names = list(frames)
    correct = np.stack([_final(frames[m], "correct") for m in names], axis=1)
    m = len(names)
    for row, name in zip(summary["models"], names, strict=True):
        assert row["name"] == name
        assert row["accuracy"] == pytest.approx(_final(frames[name], "correct").mean(), abs=1e-12)

    images = pd.read_parquet(path / "images.parquet").sort_values("image_id")
    n_corr = correct.sum(axis=1)
    assert images["n_correct"].tolist() == n_corr.tolist()
    hand_split = ["trivial" if k >= m - 1 else "impossible" if k <= 1 else "inconclusive" for k in n_corr]
    assert images["category"].tolist() == hand_split
    for c in ("trivial", "impossible", "inconclusive"):
        assert summary["split"]["observed"][c] == pytest.approx(hand_split.count(c) / len(hand_split))
    np.testing.assert_allclose(images["tp_agreement"], n_corr / m)
    final_pred = np.stack([_final(frames[n], "predicted") for n in names], axis=1)
    hand_consensus = [max(Counter(row.tolist()).values()) / m for row in final_pred]
    np.testing.assert_allclose(images["consensus"], hand_consensus)

    hist = pd.read_csv(path / "report" / "histogram.csv")
    assert hist["observed"].tolist() == [int((n_corr == k).sum()) for k in range(m + 1)]
    p = correct.mean()
    np.testing.assert_allclose(hist["binomial"], len(n_corr) * stats.binom.pmf(np.arange(m + 1), m, p))
    assert hist["beta_binomial"].sum() == pytest.approx(len(n_corr))
    binom_trivial = stats.binom.pmf([m - 1, m], m, p).sum()
    assert summary["split"]["binomial"]["trivial"] == pytest.approx(binom_trivial)


def test_error_consistency_tables_by_hand(built):
    path, summary, _ = built
    frames = _by_hand(path)
    names = list(frames)
    correct = np.stack([_final(frames[m], "correct") for m in names], axis=1)
    inconclusive = (
        pd.read_parquet(path / "images.parquet").sort_values("image_id")["category"].eq("inconclusive")
    )
    for subset, mask in (("all", np.ones(len(correct), bool)), ("inconclusive", inconclusive.to_numpy())):
        table = pd.read_csv(path / "report" / f"error_consistency_{subset}.csv", index_col=0)
        assert list(table.index) == names and list(table.columns) == names
        sub = correct[mask]
        hand = np.array(
            [[_kappa(sub[:, i], sub[:, j]) for j in range(len(names))] for i in range(len(names))]
        )
        np.testing.assert_allclose(table.to_numpy(), hand, atol=1e-12)
        iu = np.triu_indices(len(names), 1)
        assert summary["error_consistency"][subset]["mean"] == pytest.approx(hand[iu].mean(), abs=1e-12)
        assert summary["error_consistency"][subset]["n_images"] == int(mask.sum())
        low, high = summary["error_consistency"][subset]["ci95"]
        assert low <= summary["error_consistency"][subset]["mean"] <= high


def test_per_class_accuracy_by_hand(built):
    path, _, _ = built
    frames = _by_hand(path)
    labels = pd.read_parquet(path / "images.parquet").sort_values("image_id")["label"].to_numpy()
    table = pd.read_csv(path / "report" / "per_class_accuracy.csv")
    base = _final(frames["base"], "correct")
    for k in range(10):
        assert table.loc[k, "base"] == pytest.approx(base[labels == k].mean())
        assert table.loc[k, "n_images"] == int((labels == k).sum())


def test_dynamics_by_hand(built):
    path, summary, _ = built
    frames = _by_hand(path)
    variants = [m for m in frames if frames[m]["epoch"].nunique() > 1]
    assert summary["dynamics"]["models"] == variants
    # (n_models, n_epochs, n_images)
    cube = np.stack(
        [f["correct"].to_numpy().reshape(N_EPOCHS, -1) for m, f in frames.items() if m in variants]
    )

    swaps = pd.read_csv(path / "report" / "swaps_per_epoch.csv")
    for i, name in enumerate(variants):
        hand = [int((cube[i, e] != cube[i, e + 1]).sum()) for e in range(N_EPOCHS - 1)]
        assert swaps[name].tolist() == hand

    images = pd.read_parquet(path / "images.parquet").sort_values("image_id")
    np.testing.assert_allclose(images["accessibility"], cube.mean(axis=(0, 1)))
    forgetting = [
        sum(
            int(cube[i, e, j] and not cube[i, e + 1, j])
            for i in range(len(variants))
            for e in range(N_EPOCHS - 1)
        )
        for j in range(cube.shape[2])
    ]
    assert images["forgetting_events"].tolist() == forgetting
    for j in range(0, cube.shape[2], 7):
        learned = []
        for i in range(len(variants)):
            seq = cube[i, :, j]
            stays = [e for e in range(N_EPOCHS) if seq[e:].all()]
            learned.append(stays[0] if stays else np.inf)
        med = np.median(learned)
        got = images["learned_epoch"].iloc[j]
        assert (np.isnan(got) and np.isinf(med)) or got == med

    tpa = pd.read_csv(path / "report" / "tp_agreement_by_epoch.csv")
    scores = cube.mean(axis=0)  # (n_epochs, n_images) TP-agreement
    for e in range(N_EPOCHS):
        hand = stats.kurtosis(scores[e], fisher=False) - stats.skew(scores[e]) ** 2 - 1
        assert tpa.loc[e, "bimodality"] == pytest.approx(hand, rel=1e-9)


def test_images_table_keeps_base_and_foreign_columns(built, tmp_path):
    path, _, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    images = pd.read_parquet(copy / "images.parquet")
    assert list(images.columns[: len(BASE_IMAGE_COLUMNS)]) == list(BASE_IMAGE_COLUMNS)
    assert set(REPORT_COLUMNS) <= set(images.columns)
    images["prediction_depth"] = 1.0  # written by someone else: must survive a rebuild
    images.to_parquet(copy / "images.parquet", index=False)
    build_report(audit.load(copy), n_bootstrap=0)
    again = pd.read_parquet(copy / "images.parquet")
    assert "prediction_depth" in again.columns
    assert len(again.columns) == len(set(again.columns))


def test_format_summary_lists_accuracy_split_and_consistency(built):
    _, summary, _ = built
    text = format_summary(summary)
    assert "base" in text and f"{100 * summary['models'][0]['accuracy']:.2f}%" in text
    for word in ("trivial", "impossible", "inconclusive", "binomial", "beta-binomial"):
        assert word in text
    assert f"{summary['error_consistency']['inconclusive']['mean']:.3f}" in text


def test_single_model(tmp_path):
    path = make_synthetic_audit(tmp_path / "one", n_images=60, n_models=1, n_epochs=3)
    summary = build_report(audit.load(path))
    assert summary["error_consistency"] == {}
    assert summary["tolerance_used"] == 0
    assert not (path / "report" / "error_consistency_all.csv").exists()
    text = format_summary(summary)
    assert "error consistency needs at least two models" in text
    assert "tolerance 1 needs more than 2 models" in text


def test_models_with_only_epoch_zero_and_running_audit(tmp_path):
    path = make_synthetic_audit(tmp_path / "e0", n_images=60, n_models=3, n_epochs=1, n_unfinished=1)
    summary = build_report(audit.load(path))
    assert summary["dynamics"] is None
    assert not (path / "report" / "swaps_per_epoch.csv").exists()
    assert "learned_epoch" not in pd.read_parquet(path / "images.parquet").columns
    text = format_summary(summary)
    assert "learning dynamics are skipped" in text
    assert "covers the 3 finished models only" in text and "running, 3/4 jobs done" in text


def test_no_finished_models(tmp_path):
    path = make_synthetic_audit(tmp_path / "none", n_images=20, n_models=2, n_epochs=2)
    shutil.rmtree(path / "jobs")
    (path / "models.parquet").unlink()
    summary = build_report(audit.load(path))
    assert summary["models"] == []
    assert "no finished models" in format_summary(summary)


@pytest.mark.parametrize("kwargs", [{"tolerance": -1}, {"tolerance": 1.5}, {"n_bootstrap": -5}])
def test_bad_options(built, kwargs):
    path, _, _ = built
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        build_report(audit.load(path), **kwargs)


def test_metrics_and_report_import_neither_torch_nor_pyplot():
    import subprocess
    import sys

    code = (
        "import sys, audit.report, audit.synthetic, audit.metrics.groups, audit.metrics.dynamics;"
        "bad = [m for m in ('torch', 'streamlit', 'matplotlib.pyplot') if m in sys.modules];"
        "sys.exit(', '.join(bad) or None)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_report_without_figures_has_the_same_summary_and_tables(tmp_path):
    """`build_report(figures=False)` writes the summary and every table, no figure, and removes an earlier
    build's figures; the numbers are those of the full build."""
    from audit.store import load
    from audit.synthetic import make_synthetic_audit

    path = make_synthetic_audit(tmp_path / "a", n_images=200, n_models=5, n_epochs=3, random_state=1)
    full = build_report(load(path))
    report = path / "report"
    tables = {f.name: f.read_bytes() for f in report.iterdir() if f.suffix in (".csv", ".npy")}
    assert full["files"]["figures"] and all((report / f).exists() for f in full["files"]["figures"])
    quick = build_report(load(path), figures=False)
    assert quick["files"]["figures"] == [] and not list(report.glob("*.png"))
    assert {k: v for k, v in quick.items() if k != "files"} == {k: v for k, v in full.items() if k != "files"}
    assert {f.name: f.read_bytes() for f in report.iterdir() if f.suffix in (".csv", ".npy")} == tables
