"""Tests for error consistency (audit.metrics.consistency), by hand and against scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from audit.metrics import consistency as c


def test_pair_by_hand():
    a = np.array([1, 1, 1, 0], dtype=bool)
    b = np.array([1, 1, 0, 0], dtype=bool)
    # c_obs = 3/4; p1 = .75, p2 = .5 -> c_exp = .375 + .125 = .5; kappa = .25 / .5
    res = c.error_consistency(a, b)
    assert res.c_obs == pytest.approx(0.75)
    assert res.c_exp == pytest.approx(0.5)
    assert res.kappa == pytest.approx(0.5)


def test_pair_independent_and_opposite():
    a = np.array([1, 1, 0, 0], dtype=bool)
    assert c.error_consistency(a, np.array([1, 0, 1, 0], dtype=bool)).kappa == pytest.approx(0.0)
    assert c.error_consistency(a, ~a).kappa == pytest.approx(-1.0)


def test_kappa_is_one_when_c_obs_is_one_even_if_c_exp_is_one():
    ones = np.ones(10, dtype=bool)
    res = c.error_consistency(ones, ones)
    assert (res.c_obs, res.c_exp, res.kappa) == (1.0, 1.0, 1.0)
    assert c.error_consistency(~ones, ~ones).kappa == 1.0
    matrix = c.error_consistency_matrix(np.stack([ones, ones, ~ones], axis=1))
    assert matrix[0, 1] == 1.0
    assert matrix[0, 2] == 0.0  # all right vs all wrong: c_obs = 0 = c_exp


def _sklearn_kappa(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cohen_kappa_score(x, y)


def test_matrix_agrees_with_sklearn_to_1e12():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(30):
        n, m = int(rng.integers(2, 400)), int(rng.integers(2, 7))
        correct = rng.random((n, m)) < rng.random(m)
        correct[:, -1] = correct[:, 0]  # include a c_obs = 1 pair
        kappa = c.error_consistency_matrix(correct)
        for i in range(m):
            for j in range(m):
                ref = _sklearn_kappa(correct[:, i], correct[:, j])
                if np.isfinite(ref):
                    assert abs(kappa[i, j] - ref) <= 1e-12
                    checked += 1
    assert checked > 300


def test_matrix_entries_equal_pair_function():
    rng = np.random.default_rng(1)
    correct = rng.random((50, 4)) < 0.6
    kappa = c.error_consistency_matrix(correct)
    assert np.allclose(kappa, kappa.T)
    assert np.all(np.diag(kappa) == 1)
    assert kappa[1, 3] == pytest.approx(c.error_consistency(correct[:, 1], correct[:, 3]).kappa, abs=1e-14)
    pair = c.error_consistency(correct[:, 1], correct[:, 3])
    assert pair.kappa == pytest.approx((pair.c_obs - pair.c_exp) / (1 - pair.c_exp), abs=1e-14)


def test_mean_error_consistency_by_hand():
    kappa = np.array([[1, 0.2, 0.4], [0.2, 1, 0.6], [0.4, 0.6, 1]])
    assert c.mean_error_consistency(kappa) == pytest.approx(0.4)


def test_bootstrap_is_reproducible_and_brackets_estimate():
    rng = np.random.default_rng(2)
    latent = rng.random(400)
    correct = latent[:, None] + 0.3 * rng.random((400, 3)) > 0.6
    a = c.error_consistency_bootstrap(correct, n_bootstrap=200, random_state=7)
    b = c.error_consistency_bootstrap(correct, n_bootstrap=200, random_state=7)
    np.testing.assert_array_equal(a["low"], b["low"])
    np.testing.assert_allclose(a["kappa"], c.error_consistency_matrix(correct))
    assert np.all(a["low"] <= a["kappa"] + 1e-12) and np.all(a["kappa"] <= a["high"] + 1e-12)
    mean = c.mean_error_consistency(a["kappa"])
    assert a["mean_low"] <= mean <= a["mean_high"]


def test_bootstrap_of_identical_models_is_one():
    col = np.random.default_rng(3).random(100) < 0.5
    ci = c.error_consistency_bootstrap(np.stack([col, col], axis=1), n_bootstrap=20, random_state=0)
    assert ci["low"][0, 1] == 1.0 and ci["high"][0, 1] == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        c.error_consistency_matrix(np.ones((5, 1), dtype=bool))
    with pytest.raises(ValueError, match="a has 3 images but b has 2"):
        c.error_consistency([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="NaN"):
        c.error_consistency_matrix(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="empty"):
        c.error_consistency_matrix(np.zeros((0, 3), dtype=bool))
    with pytest.raises(ValueError, match="square"):
        c.mean_error_consistency(np.ones((2, 3)))
    with pytest.raises(ValueError, match="confidence"):
        c.error_consistency_bootstrap(np.ones((4, 2), dtype=bool), confidence=1.5)


def test_bootstrap_equals_naive_resampling_with_the_same_draws():
    rng = np.random.default_rng(4)
    correct = rng.random((120, 3)) < np.array([0.3, 0.6, 0.8])
    ci = c.error_consistency_bootstrap(correct, n_bootstrap=40, random_state=11)
    draws = np.random.default_rng(11)
    naive = []
    for _ in range(40):
        sample = correct[draws.integers(0, 120, 120)]
        naive.append(c.mean_error_consistency(c.error_consistency_matrix(sample)))
    np.testing.assert_allclose(ci["replicates"], naive, atol=1e-12)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.95])
def test_bootstrap_bounds_are_numpy_quantiles_at_half_the_tail_on_each_side(confidence):
    # the same draws, resampled naively: the bounds are the (1 - c)/2 and 1 - (1 - c)/2 quantiles
    rng = np.random.default_rng(5)
    latent = rng.random(150)
    correct = latent[:, None] + 0.5 * rng.random((150, 3)) > np.array([0.5, 0.7, 0.9])
    n_boot = 60
    ci = c.error_consistency_bootstrap(correct, n_bootstrap=n_boot, confidence=confidence, random_state=13)
    draws = np.random.default_rng(13)
    reps = np.stack([c.error_consistency_matrix(correct[draws.integers(0, 150, 150)]) for _ in range(n_boot)])
    tail = (1 - confidence) / 2
    np.testing.assert_allclose(ci["low"], np.quantile(reps, tail, axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ci["high"], np.quantile(reps, 1 - tail, axis=0), rtol=0, atol=1e-12)
    iu = np.triu_indices(3, 1)
    means = reps[:, iu[0], iu[1]].mean(axis=1)
    assert ci["mean_low"] == pytest.approx(np.quantile(means, tail), abs=1e-12)
    assert ci["mean_high"] == pytest.approx(np.quantile(means, 1 - tail), abs=1e-12)
    # the interval is not degenerate here, so a wrong level would move the bounds
    assert np.all(ci["high"][iu] - ci["low"][iu] > 0.01)


def test_bootstrap_interval_covers_the_true_kappa_at_the_nominal_rate():
    # two models with a known joint distribution of (right, right), (right, wrong), (wrong, right), (wrong, wrong)
    p = np.array([0.55, 0.1, 0.15, 0.2])
    p1, p2 = p[0] + p[1], p[0] + p[2]
    c_exp = p1 * p2 + (1 - p1) * (1 - p2)
    true_kappa = (p[0] + p[3] - c_exp) / (1 - c_exp)
    rows = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    rng = np.random.default_rng(0)
    n_sim, confidence = 200, 0.8
    hits = 0
    for _ in range(n_sim):
        correct = rows[rng.choice(4, size=300, p=p)]
        ci = c.error_consistency_bootstrap(correct, n_bootstrap=150, confidence=confidence, random_state=rng)
        hits += ci["low"][0, 1] <= true_kappa <= ci["high"][0, 1]
    # 80% nominal (a 60% interval, from the level 1 - c on each side, covers about 0.6); sd of the rate ~0.03
    assert 0.7 <= hits / n_sim <= 0.9
