"""The ensemble confusion matrix (audit.metrics.confusion) on a hand-made case."""

from __future__ import annotations

import numpy as np
import pytest

from audit.metrics.confusion import ensemble_confusion, row_shares, top_confusions

# 4 images of 3 classes, 2 models; image 3 is impossible (both models wrong)
LABELS = np.array([0, 1, 2, 2])
PREDICTED = np.array([[0, 0], [1, 2], [2, 2], [1, 0]])


def test_counts_pool_the_models_decisions():
    counts = ensemble_confusion(PREDICTED, LABELS, 3)
    want = np.array([[2, 0, 0],
                     [0, 1, 1],
                     [1, 1, 2]])
    assert np.array_equal(counts, want)
    assert counts.sum() == PREDICTED.size


def test_impossible_images_only():
    counts = ensemble_confusion(PREDICTED, LABELS, 3, mask=np.array([False, False, False, True]))
    assert np.array_equal(counts, [[0, 0, 0], [0, 0, 0], [1, 1, 0]])
    assert sorted(top_confusions(counts)) == [(2, 0, 1), (2, 1, 1)]


def test_shares_and_top_confusions():
    counts = ensemble_confusion(PREDICTED, LABELS, 3)
    shares = row_shares(counts)
    assert np.allclose(shares[2], [0.25, 0.25, 0.5])
    assert np.allclose(shares.sum(axis=1), 1)
    assert np.isnan(row_shares(np.zeros((2, 2)))).all()  # no decisions: no shares
    top = top_confusions(counts, k=2)
    assert len(top) == 2 and all(i != j and c == 1 for i, j, c in top)


def test_bad_input():
    with pytest.raises(ValueError, match="0..2"):
        ensemble_confusion(np.array([[3]]), np.array([0]), 3)
    with pytest.raises(ValueError, match="n_images"):
        ensemble_confusion(np.array([0, 1]), np.array([0, 1]), 3)


def test_decisions_without_an_answer_fall_in_no_cell():
    from audit.metrics._validate import NO_ANSWER

    pred = np.array([[0, NO_ANSWER], [NO_ANSWER, 1]])
    counts = ensemble_confusion(pred, np.array([0, 1]), 2)
    np.testing.assert_array_equal(counts, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="no answer"):
        ensemble_confusion(np.array([[-2, 0]]), np.array([0]), 2)
