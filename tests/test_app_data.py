"""Tests of the report viewer's data functions (audit_app/_data.py and _frames.py), without Streamlit.

Numbers are checked against the store's own readers (AuditResult), the report
files, scikit-learn and hand counts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from audit.metrics import agreement, difficulty
from audit.metrics.difficulty import CATEGORIES
from audit.report import Report, build_report
from audit.store import (
    AuditDir,
    audit_problem,
    audit_stamp,
    decisions_by_epoch,
    final_decisions,
    list_audits,
    load,
    read_decisions,
)
from audit.synthetic import make_synthetic_audit
from audit_app import _data, _frames, _image_frames


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small synthetic audit with variants and pretrained models, its report built."""
    path = make_synthetic_audit(
        tmp_path_factory.mktemp("app_data") / "audit", n_images=400, n_models=7, n_epochs=5, n_pretrained=2,
        n_classes=5, random_state=3,
    )
    build_report(load(path), figures=False)
    return path


# --------------------------------------------------------------------------- no Streamlit below the pages
def test_the_library_and_the_app_data_import_no_streamlit():
    """`import audit` (every module), `import human_study` and the app's data layer load no Streamlit."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import importlib, pkgutil, sys\n"
        "import audit, human_study\n"
        "for pkg in (audit, human_study):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
        "import audit_app._data, audit_app._frames\n"
        "assert 'streamlit' not in sys.modules, sorted(m for m in sys.modules if m.startswith('streamlit'))[:3]\n"
        "print('no streamlit')\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "no streamlit" in proc.stdout


# --------------------------------------------------------------------------- arguments and picker
@pytest.mark.parametrize(
    ("argv", "audit", "runs"),
    [
        (["app.py"], None, "runs"),
        (["app.py", "--audit", "runs/a"], "runs/a", "runs"),
        (["app.py", "--audit=runs/b", "--runs", "elsewhere"], "runs/b", "elsewhere"),
        (["app.py", "--", "--audit", "x"], "x", "runs"),
        (["pytest", "-q", "--audit"], None, "runs"),  # a flag without its value is ignored, never exits
        (["pytest", "tests", "-k", "app"], None, "runs"),
    ],
)
def test_parse_app_args(argv, audit, runs):
    args = _data.parse_app_args(argv)
    assert (args.audit, args.runs) == (audit, runs)


def test_list_audits_finds_audits_newest_first(tmp_path, synthetic):
    import os
    import shutil

    runs = tmp_path / "runs"
    (runs / "not_an_audit").mkdir(parents=True)
    for name, mtime in (("old", 1_000_000), ("new", 2_000_000)):
        shutil.copytree(synthetic, runs / name)
        os.utime(runs / name / "manifest.json", (mtime, mtime))
    assert list_audits(runs) == [str(runs / "new"), str(runs / "old")]
    assert list_audits(tmp_path / "absent") == []


def test_audit_problem_messages(tmp_path, synthetic):
    assert audit_problem(synthetic) is None
    assert "does not exist" in audit_problem(tmp_path / "nope")
    assert "no `manifest.json`" in audit_problem(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    assert "is a file" in audit_problem(tmp_path / "file.txt")
    assert audit_problem(None) == "No audit is selected."


def test_audit_stamp_changes_when_a_job_finishes(tmp_path):
    path = make_synthetic_audit(tmp_path / "a", n_images=50, n_models=2, n_epochs=2)
    before = audit_stamp(path)
    store = AuditDir(path)
    import os

    later = os.stat(store.manifest_path).st_mtime_ns + 10**9
    os.utime(store.manifest_path, ns=(later, later))
    assert audit_stamp(path) != before


# --------------------------------------------------------------------------- reading decisions
def test_read_cube_and_final_match_the_store(synthetic):
    result = load(synthetic)
    ids = result.images["image_id"].to_numpy()
    variants = [m for m in result.model_names if len(result.epochs(m)) > 1]
    epochs, cubes = decisions_by_epoch(synthetic, variants, ("correct",), ids)
    cube = cubes["correct"]
    np.testing.assert_array_equal(cube, result.correct_by_epoch(variants))
    np.testing.assert_array_equal(epochs, result.epochs(variants[0]))
    final, epochs_of = final_decisions(synthetic, result.model_names, ("correct", "predicted"), ids)
    np.testing.assert_array_equal(final["correct"], result.correct())
    np.testing.assert_array_equal(final["predicted"], result.predicted())
    assert [len(epochs_of[m]) for m in result.model_names] == [len(result.epochs(m)) for m in result.model_names]


def test_read_model_sorts_shuffled_decision_rows(tmp_path):
    path = make_synthetic_audit(tmp_path / "a", n_images=60, n_models=2, n_epochs=3)
    result = load(path)
    expected = result.decision_array("base", "predicted")
    store = AuditDir(path)
    frame = pd.read_parquet(store.decision_path("base")).sample(frac=1.0, random_state=0)
    frame.to_parquet(store.decision_path("base"), index=False)
    _, arrays = read_decisions(path, "base", ("predicted",), result.images["image_id"].to_numpy())
    np.testing.assert_array_equal(arrays["predicted"], expected)


# --------------------------------------------------------------------------- live tables = report tables
def test_live_tables_match_the_report(tmp_path):
    """A running audit's tables (computed in memory) equal what build_report writes."""
    path = make_synthetic_audit(tmp_path / "a", n_images=300, n_models=6, n_epochs=4, n_pretrained=1)
    live = Report.load(path)
    assert live.source == "missing"
    build_report(load(path), n_bootstrap=0, figures=False)
    stored = Report.load(path)
    assert stored.source == "current"
    for key in ("histogram", "per_class", "swaps", "tp_by_epoch", "ec_all", "ec_inconclusive"):
        pd.testing.assert_frame_equal(
            live.tables[key].reset_index(drop=True), stored.tables[key].reset_index(drop=True),
            check_dtype=False, check_names=False, check_index_type=False,
        )
    for key in ("base", "all"):
        np.testing.assert_allclose(live.maps[key], stored.maps[key])
    cols = [c for c in _image_frames.SCORE_COLUMNS if c in stored.images.columns] + ["category"]
    pd.testing.assert_frame_equal(live.images[cols], stored.images[cols], check_dtype=False)
    assert live.summary["dynamics"]["models"] == stored.summary["dynamics"]["models"]
    pd.testing.assert_frame_equal(live.models[["name", "accuracy"]], stored.models[["name", "accuracy"]])


def test_stale_report_is_recomputed(tmp_path):
    path = make_synthetic_audit(tmp_path / "a", n_images=100, n_models=3, n_epochs=2)
    result = load(path)
    build_report(result, figures=False)
    AuditDir(path).remove_job(result.model_names[-1])
    data = Report.load(path)
    assert data.source == "stale"
    assert data.n_models == 2
    assert data.images["n_correct"].max() <= 2


# --------------------------------------------------------------------------- overview
def test_split_table_counts_by_hand(synthetic):
    data = Report.load(synthetic)
    correct = load(synthetic).correct()
    m = correct.shape[1]
    n_right = correct.sum(axis=1)
    for t in (0, 1, 2):
        table = _frames.split_table(data.at_tolerance(t))
        assert table.loc["trivial", "images"] == np.count_nonzero(n_right >= m - t)
        assert table.loc["impossible", "images"] == np.count_nonzero(n_right <= t)
        assert table["observed"].sum() == pytest.approx(1.0)
        assert table["binomial"].sum() == pytest.approx(1.0)
    assert difficulty.max_tolerance(7) == 3
    assert difficulty.max_tolerance(2) == 0
    assert difficulty.usable_tolerance(1, 7) == 1


def test_histogram_frames_colour_the_ends(synthetic):
    data = Report.load(synthetic)
    bars, nulls = _frames.histogram_frames(data, 1)
    m = data.n_models
    assert list(bars["category"][:2]) == ["impossible", "impossible"]
    assert list(bars["category"][-2:]) == ["trivial", "trivial"]
    assert bars["images"].sum() == data.n_images
    assert set(nulls["null"]) == {"binomial", "beta-binomial"}
    assert nulls.groupby("null")["images"].sum().to_numpy() == pytest.approx([data.n_images] * 2)
    assert len(bars) == m + 1


# --------------------------------------------------------------------------- consistency
def test_group_means_by_hand():
    kappa = pd.DataFrame(
        [[1, 0.8, 0.2, 0.1], [0.8, 1, 0.4, 0.3], [0.2, 0.4, 1, 0.6], [0.1, 0.3, 0.6, 1]],
        index=list("abcd"), columns=list("abcd"),
    )
    models = pd.DataFrame({"name": list("abcd"), "group": ["x", "x", "y", "y"], "accuracy": [0.5, 0.9, 0.7, 0.6]})
    table, overall = _frames.group_means(kappa, models)
    assert overall["within"] == pytest.approx((0.8 + 0.6) / 2)
    assert overall["between"] == pytest.approx((0.2 + 0.1 + 0.4 + 0.3) / 4)
    assert (overall["within_pairs"], overall["between_pairs"]) == (2, 4)
    row = table[(table.group_a == "x") & (table.group_b == "y")].iloc[0]
    assert row["mean_kappa"] == pytest.approx(0.25) and row["n_pairs"] == 4
    assert _frames.model_order(kappa, models, "accuracy") == ["b", "c", "d", "a"]
    assert _frames.model_order(kappa, models, "clustered") in (list("abcd"), list("badc"), list("cdab"),
                                                              list("dcba"), list("abdc"), list("bacd"),
                                                              list("cdba"), list("dcab"))
    long = _frames.matrix_long(kappa, list("abcd"), models)
    assert len(long) == 12 and not (long["model_a"] == long["model_b"]).any()


def test_inconclusive_kappa_at_another_tolerance_is_cohen_kappa(synthetic):
    from sklearn.metrics import cohen_kappa_score

    data = Report.load(synthetic)
    assert data.tolerance == 1
    correct = load(synthetic).correct()
    strict = data.at_tolerance(0)
    cats = _frames.categories_at(data, 0)
    assert (strict.images["category"].to_numpy() == cats).all()
    assert strict.summary["tolerance_used"] == 0 and data.summary["tolerance_used"] == 1  # data is unchanged
    kappa = strict.tables["ec_inconclusive"]
    sub = correct[cats == "inconclusive"]
    assert kappa.iloc[0, 1] == pytest.approx(cohen_kappa_score(sub[:, 0], sub[:, 1]))
    assert data.at_tolerance(1) is data


# --------------------------------------------------------------------------- dynamics
def test_rebin_and_map_long():
    share = np.arange(12, dtype=float).reshape(6, 2)
    np.testing.assert_allclose(_frames.rebin_map(share, 3), [[1, 2], [5, 6], [9, 10]])
    frame = _frames.map_long(share, [0, 1], n_images=600, n_rows=3)
    assert len(frame) == 6
    assert list(frame["first"].unique()) == [1, 201, 401]
    assert list(frame["last"].unique()) == [200, 400, 600]


def test_tp_agreement_frame_by_hand():
    # cube[image, model, epoch]: 3 images, 2 models, epochs 0 and 5
    cube = np.array([[[1, 1], [1, 0]], [[0, 1], [0, 1]], [[0, 0], [1, 1]]], dtype=bool)
    observed, null = agreement.tp_agreement_histograms(cube)

    class Stored:  # what the frame reads of a report: its maps and its epochs
        maps = {"tp_observed": observed, "tp_null": null}
        dynamics = {"epochs": [0, 5]}

    frame = _frames.tp_agreement_frame(Stored())
    first = frame[frame["epoch"] == 0]
    assert list(first["observed"]) == [1, 1, 1]  # models right: image 0 two, image 1 none, image 2 one
    assert first["null"].sum() == pytest.approx(3)
    # null at epoch 0: accuracies 1/3 and 2/3, so P(0 right) = 2/3 * 1/3 = 2/9 of 3 images
    assert first["null"].iloc[0] == pytest.approx(3 * 2 / 9)
    last = frame[frame["epoch"] == 5]
    assert list(last["observed"]) == [0, 2, 1]  # image 0 one, image 1 two, image 2 one


def test_learned_epoch_frame_labels_never_and_fractions(synthetic):
    data = Report.load(synthetic)
    frame = _frames.learned_epoch_frame(data, 1)
    assert frame["images"].sum() == data.n_images
    never = int(data.images["learned_epoch"].isna().sum())
    assert frame.loc[frame["learned"] == "never", "images"].sum() == never
    assert frame["order"].is_monotonic_increasing


# --------------------------------------------------------------------------- classes and images
def test_class_frame_ranks_by_mean_accuracy(synthetic):
    data = Report.load(synthetic)
    result = load(synthetic)
    correct, labels = result.correct(), result.labels
    by_hand = [correct[labels == c].mean() for c in range(result.n_classes)]
    frame = _frames.class_frame(data, 1)
    assert frame.iloc[0]["class"] == int(np.argmax(by_hand))
    assert frame["mean"].to_numpy() == pytest.approx(sorted(by_hand, reverse=True))
    easiest, hardest = _frames.easiest_hardest(frame, 2)
    assert hardest.iloc[0]["class_name"] == result.class_names[int(np.argmin(by_hand))]
    assert frame[list(CATEGORIES)].sum(axis=1).to_numpy() == pytest.approx(1.0)


def test_filter_sort_and_csv(synthetic):
    data = Report.load(synthetic)
    cats = _frames.categories_at(data, 1)
    frame = _image_frames.filter_images(data, tolerance=1, categories=["inconclusive"], classes=["class_2"],
                                   sort_by="tp_agreement", ascending=False)
    expected = (cats == "inconclusive") & (data.images["class_name"] == "class_2").to_numpy()
    assert len(frame) == expected.sum()
    assert frame["tp_agreement"].is_monotonic_decreasing
    assert set(frame["category"]) == {"inconclusive"}
    back = pd.read_csv(__import__("io").BytesIO(_frames.to_csv_bytes(frame)))
    assert list(back["image_id"]) == list(frame["image_id"])
    everything = _image_frames.filter_images(data, tolerance=1, sort_by="learned_epoch")
    assert len(everything) == data.n_images
    assert everything["learned_epoch"].isna().to_numpy()[-1]  # never learned sorts last
    with pytest.raises(ValueError, match="cannot sort by"):
        _image_frames.filter_images(data, tolerance=1, sort_by="nope")
    assert _image_frames.score_columns(data.images)[0] == "n_correct"


def test_image_decisions_and_thumbnails(synthetic):
    data = Report.load(synthetic)
    result = load(synthetic)
    final, _ = final_decisions(synthetic, data.model_names, ("predicted", "correct", "true_prob", "top_prob"),
                               data.image_ids)
    table = _image_frames.image_decisions(data, final, 17)
    assert list(table["model"]) == result.model_names
    np.testing.assert_array_equal(table["correct"].to_numpy(), result.correct()[17])
    assert list(table["predicted"]) == [result.class_names[p] for p in result.predicted()[17]]
    with pytest.raises(ValueError, match="not in this audit"):
        _image_frames.image_decisions(data, final, 10_000)
    thumbs = _image_frames.thumbnails(synthetic, [0, 1], 112)
    assert thumbs[0].shape[:2] == (112, 112)  # 16-pixel images enlarged 7x without blur
    scores = _image_frames.image_scores(data, 17, 1)
    assert scores.iloc[0]["value"] == "17"


# --------------------------------------------------------------------------- compare
def test_compare_groups_matches_the_store(synthetic):
    data = Report.load(synthetic)
    result = load(synthetic)
    models = data.dynamics["models"]
    a, b = _image_frames.default_groups(models)
    assert a == models[0::2] and b == models[1::2]
    out = _image_frames.compare_groups(synthetic, a, b, data.image_ids, result.labels)
    np.testing.assert_allclose(out["accessibility_a"], agreement.accessibility(result.correct_by_epoch(a)))
    from scipy.stats import pearsonr

    r = pearsonr(out["accessibility_a"], out["accessibility_b"]).statistic
    assert out["correlation"]["r"] == pytest.approx(r)
    matched = out["matched"]
    assert (matched[["both", "only_a", "only_b", "neither"]].sum(axis=1) == data.n_images).all()
    long = _image_frames.matched_long(matched)
    assert set(long["series"]) == {"both groups", "only group A", "only group B"}
    frame, binned = _image_frames.accessibility_points(data, out["accessibility_a"], out["accessibility_b"], 1)
    assert not binned and frame["images"].sum() == data.n_images
    many = np.linspace(0, 1, 6000)
    big = dataclasses.replace(data, images=pd.DataFrame({"n_correct": np.zeros(6000, int)}))
    binned_frame, binned = _image_frames.accessibility_points(big, many, many[::-1], 0)
    assert binned and binned_frame["images"].sum() == 6000


def test_deeper_measure_filters(digits_audit):
    data = Report.load(digits_audit)
    images = data.images
    options = _image_frames.deep_filter_options(images)
    assert {"impossible_cause", "is_label_issue"} <= set(options)  # depth_type needs --depth-types
    flagged = _image_frames.filter_images(data, tolerance=1, label_issues_only=True)
    assert len(flagged) == int(images["is_label_issue"].fillna(False).astype(bool).sum()) > 0
    assert flagged["is_label_issue"].astype(bool).all()
    cause = options["impossible_cause"][0]
    by_cause = _image_frames.filter_images(data, tolerance=1, causes=[cause])
    assert len(by_cause) == int((images["impossible_cause"].astype(str) == cause).sum())
    both = _image_frames.filter_images(data, tolerance=1, causes=[cause], label_issues_only=True)
    assert len(both) == int(((images["impossible_cause"].astype(str) == cause)
                             & images["is_label_issue"].fillna(False).astype(bool)).sum())
