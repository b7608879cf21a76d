"""What keeps a model zoo (hundreds of models) fast and readable: the bootstrap of mean κ over a subset of
models, the clustered order of a κ matrix, the cache of final decisions, large CSVs through pyarrow, and
the Consistency page drawn as an image. Speed itself is measured in benchmarks/bench_import.py."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from audit.metrics import consistency
from audit.report import build_report
from audit.store import DECISION_FIELDS, final_decisions, load, write_csv
from audit.synthetic import make_synthetic_audit


def _blocks(n_images=600, sizes=(5, 7, 6), seed=0):
    """Correctness of models in blocks that share their errors: within a block, models copy a block pattern
    and flip 5% of it."""
    rng = np.random.default_rng(seed)
    cols = []
    for size in sizes:
        base = rng.random(n_images) < 0.6
        for _ in range(size):
            cols.append(base ^ (rng.random(n_images) < 0.05))
    order = rng.permutation(len(cols))  # the blocks interleaved
    return np.stack(cols, axis=1)[:, order], np.repeat(np.arange(len(sizes)), sizes)[order]


def test_cluster_order_puts_each_block_together():
    correct, block = _blocks()
    order = consistency.cluster_order(consistency.error_consistency_matrix(correct))
    assert sorted(order.tolist()) == list(range(correct.shape[1]))
    runs = np.flatnonzero(np.diff(block[order])) + 1
    assert len(runs) == 2  # three blocks, each contiguous: two boundaries
    assert consistency.cluster_order(np.eye(2)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="square"):
        consistency.cluster_order(np.zeros((3, 2)))


def test_bootstrap_over_a_subset_of_models_brackets_the_full_mean():
    correct, _ = _blocks(n_images=800, sizes=(20, 20, 20))
    full = consistency.error_consistency_bootstrap(correct, n_bootstrap=200, random_state=0)
    sub = consistency.error_consistency_bootstrap(correct, n_bootstrap=200, random_state=0, per_pair=False,
                                                  max_models=15)
    mean = consistency.mean_error_consistency(sub["kappa"])
    assert sub["models_resampled"] == 15 and full["models_resampled"] == 60
    assert "low" not in sub and full["low"].shape == (60, 60)
    assert sub["mean_low"] < mean < sub["mean_high"]
    # the shifted interval is about as wide as the one over every pair
    width_full, width_sub = full["mean_high"] - full["mean_low"], sub["mean_high"] - sub["mean_low"]
    assert 0.5 < width_sub / width_full < 2.0
    assert abs((sub["mean_low"] + sub["mean_high"]) / 2 - (full["mean_low"] + full["mean_high"]) / 2) < width_full
    with pytest.raises(ValueError, match="max_models needs per_pair=False"):
        consistency.error_consistency_bootstrap(correct, n_bootstrap=5, max_models=10)


def test_large_csv_is_written_by_pyarrow_and_reads_back_the_same(tmp_path):
    names = [f"m{i:03d}" for i in range(500)]
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.random((500, 500)), index=pd.Index(names, name="model"), columns=names)
    frame.iloc[3, 4] = np.nan
    write_csv(tmp_path / "big.csv", frame, index=True)
    back = pd.read_csv(tmp_path / "big.csv", index_col=0)
    assert back.index.name == "model" and list(back.columns) == names
    np.testing.assert_array_equal(back.to_numpy(), frame.to_numpy())
    assert not list(tmp_path.glob(".*.tmp"))


def test_final_decisions_are_cached_and_follow_the_files(tmp_path):
    audit = make_synthetic_audit(tmp_path / "a", n_images=200, n_models=4, n_epochs=3, random_state=2)
    result = load(audit)
    first, epochs = final_decisions(audit, result.model_names, DECISION_FIELDS, result.image_ids)
    cached = sorted(p.name.split("-")[1] for p in (audit / "cache").glob("final-*.npy"))
    assert cached == sorted(DECISION_FIELDS)
    again, epochs2 = final_decisions(audit, result.model_names, ("correct", "predicted"), result.image_ids)
    np.testing.assert_array_equal(again["correct"], first["correct"])
    assert {m: e.tolist() for m, e in epochs2.items()} == {m: e.tolist() for m, e in epochs.items()}
    np.testing.assert_array_equal(first["correct"], result.correct())
    # a decision file rewritten (a model rerun): the cache no longer matches and the files are read again
    name = result.model_names[0]
    path = audit / "decisions" / f"{name}.parquet"
    table = pd.read_parquet(path)
    last = table["epoch"] == table["epoch"].max()
    table.loc[last, "correct"] = ~table.loc[last, "correct"]
    table.to_parquet(path, index=False)
    os.utime(path, ns=(1, 1))
    fresh, _ = final_decisions(audit, result.model_names, ("correct",), result.image_ids)
    np.testing.assert_array_equal(fresh["correct"][:, 0], ~first["correct"][:, 0])
    assert len(list((audit / "cache").glob("final-correct-*.npy"))) == 1  # the stale matrix is gone


def test_report_keeps_the_final_decisions_for_the_app(tmp_path):
    audit = make_synthetic_audit(tmp_path / "a", n_images=150, n_models=5, n_epochs=2, random_state=3)
    build_report(load(audit), figures=False)
    kept = {p.name.split("-")[1] for p in (audit / "cache").glob("final-*.npy")}
    assert {"correct", "predicted", "true_prob"} <= kept


@pytest.mark.slow
def test_consistency_page_of_a_zoo_is_an_image_in_clustered_order(tmp_path):
    from tests.test_app_pages import open_page

    audit = make_synthetic_audit(tmp_path / "zoo", n_images=300, n_models=130, n_epochs=1, n_classes=5,
                                 random_state=4)
    build_report(load(audit))
    at = open_page(audit, "consistency")
    assert at.selectbox(key="consistency_order").value == "clustered"
    images = at.get("image")
    assert len(images) == 2 and not at.get("vega_lite_chart")
    assert all("130 models in clustered order" in str(el.proto) for el in images)
    near = [df.value for df in at.dataframe if "side" in df.value.columns]
    assert near and set(near[0]["side"]) == {"most alike", "least alike"}
    model = at.selectbox(key="consistency_model").value
    kappa = load(audit)
    tables = pd.read_csv(kappa.report_path("error_consistency_all.csv"), index_col=0)
    best = tables.loc[model].drop(model).max()
    assert near[0]["kappa"].iloc[0] == pytest.approx(best)
    # the Overview shows how the 130 accuracies spread, not 130 bars
    from tests.test_app_pages import chart_with

    overview = open_page(audit, "overview")
    spread = chart_with(overview, "Accuracy of the 130 models")
    assert '"bin"' in spread["spec"] and len(spread["data"][0]) == 130


def test_humans_beside_a_zoo_keep_their_intervals(tmp_path):
    """70 models and 3 humans: the group bootstrap resamples a subset of makers, says so, and its
    intervals bracket the group means."""
    from audit.curation.importers import read_long_table, write_imported_audit
    from audit.report import build_report

    rng = np.random.default_rng(5)
    n_images = 120
    labels = rng.integers(0, 3, n_images)
    ease = rng.normal(0, 1.5, n_images)
    rows = []
    for maker, kind, seen in ([(f"m{j:02d}", "model", range(n_images)) for j in range(70)]
                              + [(f"subject-0{h}", "human", range(h * 20, h * 20 + 80)) for h in range(3)]):
        for i in seen:
            right = rng.random() < 1 / (1 + np.exp(-ease[i]))
            rows.append({"maker": maker, "kind": kind, "image": f"i{i:03d}", "label": int(labels[i]),
                         "predicted": int(labels[i]) if right else int((labels[i] + 1) % 3)})
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    result = load(write_imported_audit(read_long_table(tmp_path / "t.csv"), tmp_path / "audit"))
    summary = build_report(result, n_bootstrap=50, figures=False)
    ec = summary["humans"]["error_consistency"]["all"]
    for pair in ("model-model", "human-model", "human-human"):
        low, high = ec[pair]["ci95"]
        assert low is not None and low <= ec[pair]["mean"] <= high, (pair, ec[pair])
    assert any("resample images over 60 of the 73 makers" in n for n in summary["notes"])


def test_summary_of_a_zoo_lists_the_spread_and_the_extremes_not_every_model():
    from audit.report.text import SUMMARY_MAX_MODELS, format_summary

    models = [{"name": f"net{i:03d}", "accuracy": 0.30 + i / 100, "near_chance": i == 20}
              for i in range(SUMMARY_MAX_MODELS + 10)]
    text = format_summary({"audit": {"n_images": 1000, "n_classes": 10, "complete": True}, "models": models})
    assert f"Accuracy of {len(models)} models: median" in text and "range 30.00% to 69.00%" in text
    for name in ("net039", "net035", "net000", "net004"):  # the best and worst five
        assert name in text
    assert "net010" not in text  # a model in the middle
    assert "also near chance:\n    net020" in text
    few = format_summary({"audit": {}, "models": models[:3]})
    assert "net001" in few and "best five" not in few
