"""Makers who saw different images: κ on shared images, group means, accuracy per category."""

from __future__ import annotations

import numpy as np
import pytest

from audit.metrics.consistency import error_consistency
from audit.metrics.makers import (
    accuracy_by_category,
    group_consistency,
    masked_error_consistency,
    wilson_interval,
)


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in ((0, 10), (7, 10), (107, 149), (10, 10)):
        low, high = wilson_interval(k, n)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (float(low), float(high)) == pytest.approx(ref, abs=1e-12)
    low, high = wilson_interval(0, 0)
    assert np.isnan(low) and np.isnan(high)


def test_masked_kappa_uses_the_images_both_decided():
    rng = np.random.default_rng(0)
    correct = rng.random((300, 3)) < [0.8, 0.6, 0.7]
    decided = np.ones_like(correct)
    decided[:100, 2] = False  # maker 2 saw images 100..299
    decided[250:, 1] = False  # maker 1 saw images 0..249
    kappa, n = masked_error_consistency(correct, decided)
    assert n[0, 1] == 250 and n[1, 2] == 150 and n[0, 2] == 200 and n[2, 2] == 200
    assert kappa[0, 1] == pytest.approx(error_consistency(correct[:250, 0], correct[:250, 1]).kappa, abs=1e-12)
    assert kappa[1, 2] == pytest.approx(error_consistency(correct[100:250, 1], correct[100:250, 2]).kappa, abs=1e-12)
    assert kappa[0, 2] == pytest.approx(error_consistency(correct[100:, 0], correct[100:, 2]).kappa, abs=1e-12)
    np.testing.assert_allclose(kappa, kappa.T)
    # values where a maker did not decide are ignored
    flipped = correct.copy()
    flipped[:100, 2] = ~flipped[:100, 2]
    np.testing.assert_allclose(masked_error_consistency(flipped, decided)[0], kappa)


def test_pairs_without_shared_images_are_nan():
    correct = np.array([[1, 1], [0, 1], [1, 0], [1, 1]], bool)
    decided = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], bool)
    kappa, n = masked_error_consistency(correct, decided)
    assert n[0, 1] == 0 and np.isnan(kappa[0, 1])


def test_group_means_within_and_between():
    kappa = np.array([[1, 0.5, 0.1, 0.3], [0.5, 1, 0.2, np.nan], [0.1, 0.2, 1, 0.9], [0.3, np.nan, 0.9, 1]])
    means = group_consistency(kappa, ["model", "model", "human", "human"])
    assert means["model-model"] == pytest.approx(0.5)
    assert means["human-human"] == pytest.approx(0.9)
    assert means["human-model"] == pytest.approx(np.mean([0.1, 0.2, 0.3]))


def test_accuracy_by_category_counts_own_decisions():
    correct = np.array([[1, 0], [1, 1], [0, 1], [1, 1]], bool)
    decided = np.array([[1, 1], [1, 0], [1, 1], [0, 1]], bool)
    cats = np.array(["trivial", "trivial", "impossible", "impossible"])
    table = accuracy_by_category(correct, decided, cats, ["trivial", "impossible"])
    np.testing.assert_array_equal(table["trivial"]["n"], [2, 1])
    np.testing.assert_array_equal(table["trivial"]["k"], [2, 0])
    np.testing.assert_array_equal(table["impossible"]["k"], [0, 2])
    assert table["trivial"]["accuracy"].tolist() == [1.0, 0.0]
    assert np.all(table["impossible"]["low"] <= table["impossible"]["accuracy"])
