"""Tests for comparing two groups of models (audit.metrics.groups)."""

import numpy as np
import pytest

from audit.metrics import groups as g


def test_accessibility_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a + 0.3 * rng.random(200)
    res = g.accessibility_correlation(a, b)
    assert res["r"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert 0 <= res["p_value"] < 1e-10
    assert res["n_images"] == 200


def test_accessibility_correlation_constant_is_nan():
    res = g.accessibility_correlation(np.ones(5), np.arange(5.0))
    assert np.isnan(res["r"]) and np.isnan(res["p_value"])


def test_accuracy_matched_comparison_by_hand():
    # 4 images. Group a: epochs with accuracy .25, .5, 1.0; group b: .25, .5 (b's best).
    a = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 1]], dtype=bool)
    b = np.array([[1, 1], [0, 0], [0, 1], [0, 0]], dtype=bool)
    res = g.accuracy_matched_comparison(a, b, accuracy_window=0.01)
    assert res["epoch_a"].tolist() == [0, 1, 2]
    assert res["epoch_b"].tolist() == [0, 1, 1]
    assert res["beyond"].tolist() == [False, False, True]
    assert res["both"].tolist() == [1, 1, 2]
    assert res["only_a"].tolist() == [0, 1, 2]
    assert res["only_b"].tolist() == [0, 1, 0]
    total = res["both"] + res["only_a"] + res["only_b"] + res["neither"]
    assert total.tolist() == [4, 4, 4]


def test_accuracy_matched_comparison_drops_unmatched_epochs():
    a = np.array([[1, 0], [0, 0], [0, 0], [0, 0]], dtype=bool)  # .25 then 0
    b = np.array([[1], [1], [0], [0]], dtype=bool)  # .5
    res = g.accuracy_matched_comparison(a, b)
    assert res["epoch_a"].tolist() == []


def test_bad_inputs():
    with pytest.raises(ValueError, match="3 images but accessibility_b has 2"):
        g.accessibility_correlation(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="correct_a has 2 images but correct_b has 3"):
        g.accuracy_matched_comparison(np.ones((2, 2), dtype=bool), np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="accuracy_window"):
        g.accuracy_matched_comparison(np.ones((2, 2), dtype=bool), np.ones((2, 2), dtype=bool), accuracy_window=-1)
