"""Training-dynamics scores (audit.metrics.training_scores) on hand-worked logits and against numpy,
the margin and sum of squared probabilities the trainer records, and audits written without them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from audit.metrics import training_scores as ts
from audit.running.train import Normalizer, TensorData, evaluate
from audit.store import SCORE_FIELDS, AuditDir, decisions_frame, has_fields, read_decisions

# one image, three classes, logits (log 2, 0, 0): p = (1/2, 1/4, 1/4)
LOGITS = np.array([[math.log(2), 0.0, 0.0]])


def test_el2n_on_hand_worked_probabilities():
    p = np.array([0.5, 0.25, 0.25])
    sq = float((p ** 2).sum())  # 0.375
    # true class 0: error vector (-1/2, 1/4, 1/4) -> sqrt(1/4 + 1/16 + 1/16) = sqrt(0.375)
    # true class 1: error vector (1/2, -3/4, 1/4) -> sqrt(1/4 + 9/16 + 1/16) = sqrt(0.875)
    got = ts.el2n(np.array([0.5, 0.25]), np.array([sq, sq]))
    np.testing.assert_allclose(got, [math.sqrt(0.375), math.sqrt(0.875)], rtol=1e-12)
    # averaged over models, as Paul et al. average over initialisations
    two_models = ts.el2n(np.array([[0.5, 0.25]]), np.array([[sq, sq]]))
    np.testing.assert_allclose(two_models, [(math.sqrt(0.375) + math.sqrt(0.875)) / 2])
    assert ts.el2n(np.array([1.0]), np.array([1.0]))[0] == 0.0  # confident and right


def test_aum_on_hand_worked_margins():
    # margins over three epochs: -1, 1, 3 -> mean 1; a second model 0, 0, 0 -> mean over both 0.5
    margin = np.array([[[-1.0, 1.0, 3.0], [0.0, 0.0, 0.0]]])
    np.testing.assert_allclose(ts.aum(margin), [0.5])
    np.testing.assert_allclose(ts.aum(margin[:, 0, :]), [1.0])


def test_evaluate_records_margin_and_squared_probabilities():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits, dtype=torch.float32)

        def forward(self, x):
            return self.logits[: x.shape[0]]

    logits = np.vstack([LOGITS, LOGITS, [[0.0, 3.0, 1.0]]])
    labels = np.array([0, 1, 2])
    data = TensorData.from_numpy(np.zeros((3, 2, 2, 1), dtype=np.uint8), labels, torch.device("cpu"))
    pred, true_p, top_p, margin, sq = evaluate(Fixed(logits), data, Normalizer.fit(data), channels_last=False)
    # image 0: true logit log 2, largest other 0; image 1: true 0, largest other log 2; image 2: 1 - 3
    np.testing.assert_allclose(margin, [math.log(2), -math.log(2), -2.0], rtol=1e-6)
    np.testing.assert_allclose(sq[:2], [0.375, 0.375], rtol=1e-6)
    np.testing.assert_allclose(true_p[:2], [0.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(ts.el2n(true_p[:2], sq[:2]), [math.sqrt(0.375), math.sqrt(0.875)], rtol=1e-5)
    assert pred.tolist() == [0, 0, 1] and np.allclose(top_p[:2], 0.5)


def test_cartography_against_numpy():
    rng = np.random.default_rng(0)
    prob = rng.random((5000, 3, 7)).astype(np.float32)  # more images than one block
    correct = prob > 0.5
    got = ts.cartography(prob, correct)
    p64 = prob.astype(np.float64)
    np.testing.assert_allclose(got.confidence, p64.mean(axis=2).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(got.variability, np.std(p64, axis=2, ddof=0).mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(got.correctness, correct.mean(axis=2).mean(axis=1), rtol=1e-12)
    one = ts.cartography(prob[:, 0], correct[:, 0])  # (n_images, n_epochs): one model
    np.testing.assert_allclose(one.variability, np.std(p64[:, 0], axis=1))


def test_first_learned_and_forgetting_by_hand():
    # image 0: right from epoch 2 on; image 1: right at 1, forgotten at 2, right at 3; image 2: never
    correct = np.array([[0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(ts.first_learned_epoch(correct), [2, 1, 4])  # never = last + 1
    np.testing.assert_array_equal(ts.forgetting(correct), [0, 1, 0])


def test_training_scores_leave_out_epoch_0_and_the_scores_without_their_columns():
    rng = np.random.default_rng(1)
    n, m, e = 40, 3, 11
    correct = rng.random((n, m, e)) > 0.4
    prob = rng.random((n, m, e))
    margin = rng.normal(size=(n, m, e))
    sq = prob ** 2 + 0.1
    epochs = np.arange(e)
    full = ts.training_scores({"correct": correct, "true_prob": prob, "margin": margin, "prob_sq_sum": sq}, epochs)
    assert list(full.columns) == list(ts.SCORE_COLUMNS)
    np.testing.assert_allclose(full["aum"], margin[..., 1:].mean(axis=(1, 2)))
    np.testing.assert_allclose(full["cartography_confidence"], prob[..., 1:].mean(axis=(1, 2)))
    # the paper's epoch 20 of 200 is a tenth of training: epoch 1 of 10 here
    assert ts.el2n_epoch(epochs) == 1 and ts.el2n_epoch(np.arange(201)) == 20
    np.testing.assert_allclose(full["el2n"], ts.el2n(prob[..., 1], sq[..., 1]))
    old = ts.training_scores({"correct": correct, "true_prob": prob}, epochs)
    assert "aum" not in old.columns and "el2n" not in old.columns and "cartography_confidence" in old.columns
    with pytest.raises(ValueError, match="trained epoch"):
        ts.training_scores({"correct": correct[..., :1], "true_prob": prob[..., :1]}, [0])


def test_spearman_matrix_against_pandas():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.random(300), "b": rng.integers(0, 5, 300).astype(float)})
    frame["c"] = -frame["a"] + 0.1 * rng.random(300)
    got = ts.spearman_matrix(frame)
    np.testing.assert_allclose(got.to_numpy(), frame.corr(method="spearman").to_numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        ts.spearman_matrix(frame.assign(a=np.nan))


def _write_audit(path, with_scores: bool):
    audit = AuditDir(path)
    labels = np.array([0, 1, 0, 1])
    pred = np.array([[0, 0, 0, 0], [0, 1, 0, 0]])
    extra = {"margin": np.ones((2, 4)), "prob_sq_sum": np.full((2, 4), 0.5)} if with_scores else {}
    frame = decisions_frame([0, 1], np.arange(4), pred, np.full((2, 4), 0.6), np.full((2, 4), 0.7), labels, **extra)
    audit.write_job("m0", {"kind": "variant", "group": "base"}, frame)
    return audit


def test_decision_files_keep_the_scores_and_old_files_still_load(tmp_path):
    _write_audit(tmp_path / "new", True)
    epochs, arrays = read_decisions(tmp_path / "new", "m0", SCORE_FIELDS, np.arange(4))
    assert epochs.tolist() == [0, 1] and np.allclose(arrays["margin"], 1.0) and np.allclose(arrays["prob_sq_sum"], 0.5)
    assert has_fields(tmp_path / "new", "m0", SCORE_FIELDS)
    _write_audit(tmp_path / "old", False)
    assert not has_fields(tmp_path / "old", "m0", SCORE_FIELDS)
    epochs, arrays = read_decisions(tmp_path / "old", "m0", ("correct", "true_prob"), np.arange(4))
    assert arrays["correct"][1].tolist() == [True, True, True, False]


@pytest.mark.slow
def test_report_of_a_trained_audit_has_the_scores_and_an_old_audit_still_reports(digits_audit, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from audit.report import build_report, format_summary
    from audit.store import SCORE_TABLES, load

    result = load(digits_audit)
    summary = result.summary()
    scores = summary["training_scores"]
    assert {"EL2N", "AUM", "confidence"} <= set(scores["scores"]) and scores["el2n_epoch"] == 1
    images = pd.read_parquet(digits_audit / "images.parquet")
    assert {"el2n", "aum", "cartography_variability", "trivial_resample_share"} <= set(images.columns)
    # confidence is the mean true-class probability over the trained epochs, over the models with several epochs
    models = scores["models"]
    prob = result.correct_by_epoch(models, "true_prob")[..., 1:]
    np.testing.assert_allclose(images["cartography_confidence"], prob.astype(float).mean(axis=(1, 2)), rtol=1e-9)
    rho = pd.read_csv(result.report_path(SCORE_TABLES["score_correlation"]), index_col=0)
    assert rho.loc["n_correct", "n_correct"] == pytest.approx(1.0) and "AUM" in rho.columns
    assert "with " in summary["stability"]["recommendation"]
    text = format_summary(summary)
    assert "Training-dynamics scores" in text and "Stability of the split" in text

    # with --record-train the training split is scored the same way; here its files are the validation ones
    both = tmp_path / "both"
    shutil.copytree(digits_audit, both)
    shutil.copytree(both / "decisions", both / "decisions_train")
    summary = build_report(load(both), figures=False)
    train = pd.read_csv(load(both).report_path(SCORE_TABLES["training_split"]))
    images = pd.read_parquet(both / "images.parquet")
    assert summary["training_scores"]["training_split_images"] == len(images)
    np.testing.assert_allclose(train["aum"], images["aum"], rtol=1e-6)
    np.testing.assert_allclose(train["cartography_variability"], images["cartography_variability"], rtol=1e-6)

    # an audit written before the margins were recorded: the same files without the two columns
    old = tmp_path / "old"
    shutil.copytree(digits_audit, old)
    for file in (old / "decisions").glob("*.parquet"):
        table = pq.read_table(file)
        pq.write_table(table.drop_columns([c for c in SCORE_FIELDS if c in table.column_names]), file)
    images = pd.read_parquet(old / "images.parquet")
    images.drop(columns=["el2n", "aum"]).to_parquet(old / "images.parquet", index=False)
    summary = build_report(load(old), figures=False)
    assert "EL2N" not in summary["training_scores"]["scores"] and "confidence" in summary["training_scores"]["scores"]
    assert any("EL2N and AUM are absent" in n for n in summary["notes"])
    assert "el2n" not in pd.read_parquet(old / "images.parquet").columns
