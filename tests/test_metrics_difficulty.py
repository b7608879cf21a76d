"""Tests for the DDD split, its nulls and per-class accuracy (audit.metrics.difficulty)."""

import numpy as np
import pytest
from scipy import stats

from audit.metrics import difficulty as d


def _correct_from_counts(counts, n_models):
    """An (n_images, n_models) array whose rows have the given numbers of True."""
    counts = np.asarray(counts)
    return np.arange(n_models)[None, :] < counts[:, None]


def test_n_correct_by_hand():
    correct = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=bool)
    assert d.n_correct(correct).tolist() == [2, 0, 3]


def test_split_by_count_with_tolerance_one():
    # M = 5, t = 1: trivial >= 4, impossible <= 1
    correct = _correct_from_counts([0, 1, 2, 3, 4, 5], 5)
    assert d.difficulty_split(correct, tolerance=1).tolist() == [
        "impossible",
        "impossible",
        "inconclusive",
        "inconclusive",
        "trivial",
        "trivial",
    ]


def test_split_strict_tolerance_zero():
    correct = _correct_from_counts([0, 1, 4, 5], 5)
    assert d.difficulty_split(correct, tolerance=0).tolist() == [
        "impossible",
        "inconclusive",
        "inconclusive",
        "trivial",
    ]


def test_split_stays_right_when_no_image_has_m_minus_one_correct():
    # No image has 4 of 5 (nor 1 of 5) correct. Deriving "all but one" from the
    # distinct values present would wrongly call the 2s and 3s trivial/impossible.
    counts = [0, 0, 2, 3, 5, 5, 5]
    correct = _correct_from_counts(counts, 5)
    split = d.difficulty_split(correct, tolerance=1)
    assert split.tolist() == [
        "impossible",
        "impossible",
        "inconclusive",
        "inconclusive",
        "trivial",
        "trivial",
        "trivial",
    ]
    assert d.split_from_counts(np.array(counts), 5, tolerance=1).tolist() == split.tolist()
    assert d.category_shares(split) == pytest.approx(
        {"trivial": 3 / 7, "impossible": 2 / 7, "inconclusive": 2 / 7}
    )


def test_split_values_are_exactly_the_three_names():
    rng = np.random.default_rng(0)
    split = d.difficulty_split(rng.random((200, 7)) < 0.6)
    assert set(split.tolist()) <= {"trivial", "impossible", "inconclusive"}


@pytest.mark.parametrize("n_models,tolerance", [(2, 1), (1, 1), (4, 2)])
def test_split_raises_when_ends_overlap(n_models, tolerance):
    with pytest.raises(ValueError, match="overlap"):
        d.difficulty_split(np.ones((3, n_models), dtype=bool), tolerance=tolerance)


def test_split_single_model_strict_is_allowed():
    assert d.difficulty_split(np.array([[True], [False]]), tolerance=0).tolist() == ["trivial", "impossible"]


@pytest.mark.parametrize("tolerance", [-1, 1.5, "1", True])
def test_split_rejects_bad_tolerance(tolerance):
    with pytest.raises(ValueError, match="tolerance"):
        d.difficulty_split(np.ones((3, 5), dtype=bool), tolerance=tolerance)


def test_histogram_and_binomial_null_by_hand():
    # M = 2, mean accuracy 0.5, 4 images -> Binomial(2, .5) * 4 = [1, 2, 1]
    correct = np.array([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=bool)
    assert d.histogram(correct).tolist() == [1, 2, 1]
    assert d.binomial_null(correct) == pytest.approx([1.0, 2.0, 1.0])


def test_binomial_null_matches_scipy():
    rng = np.random.default_rng(1)
    correct = rng.random((500, 9)) < 0.7
    expected = 500 * stats.binom.pmf(np.arange(10), 9, correct.mean())
    np.testing.assert_allclose(d.binomial_null(correct), expected, rtol=1e-12)
    assert d.binomial_null(correct).sum() == pytest.approx(500)


def test_histogram_shares_equal_category_shares():
    rng = np.random.default_rng(2)
    correct = rng.random((300, 6)) < rng.random((300, 1))
    observed = d.category_shares(d.difficulty_split(correct, tolerance=1))
    assert d.histogram_shares(d.histogram(correct), tolerance=1) == pytest.approx(observed)


def test_histogram_shares_by_hand():
    # counts over 0..4 with t = 1: impossible = c0 + c1, trivial = c3 + c4
    assert d.histogram_shares([1, 1, 2, 3, 3], tolerance=1) == pytest.approx(
        {"impossible": 0.2, "inconclusive": 0.2, "trivial": 0.6}
    )


def test_beta_binomial_recovers_parameters():
    rng = np.random.default_rng(3)
    n_models, alpha, beta = 20, 0.4, 0.25
    counts = stats.betabinom.rvs(n_models, alpha, beta, size=20000, random_state=rng)
    fit = d.fit_beta_binomial(counts, n_models)
    assert fit.alpha == pytest.approx(alpha, rel=0.1)
    assert fit.beta == pytest.approx(beta, rel=0.1)
    assert fit.mean == pytest.approx(alpha / (alpha + beta), abs=0.01)
    assert fit.expected.sum() == pytest.approx(20000)
    assert fit.expected.shape == (n_models + 1,)


def test_beta_binomial_on_binomial_data_is_the_binomial_null():
    rng = np.random.default_rng(4)
    correct = rng.random((5000, 10)) < 0.7
    fit = d.fit_beta_binomial(d.n_correct(correct), 10)
    assert fit.overdispersion < 0.01
    np.testing.assert_allclose(fit.expected, d.binomial_null(correct), rtol=0.05, atol=2)


def test_beta_binomial_fits_better_than_binomial_on_ddd_data():
    counts = np.r_[np.zeros(300, int), np.full(600, 10), np.arange(11).repeat(10)]
    fit = d.fit_beta_binomial(counts, 10)
    p = counts.mean() / 10
    binom_ll = stats.binom.logpmf(counts, 10, p).sum()
    assert fit.log_likelihood > binom_ll
    assert fit.overdispersion > 0.5


def test_per_class_accuracy_by_hand():
    correct = np.array([[1, 0], [0, 0], [1, 1], [1, 1]], dtype=bool)
    labels = np.array([0, 0, 2, 2])
    acc = d.per_class_accuracy(correct, labels, 3)
    assert acc.shape == (3, 2)
    np.testing.assert_array_equal(acc[[0, 2]], [[0.5, 0.0], [1.0, 1.0]])
    assert np.isnan(acc[1]).all()  # class 1 has no images


def test_easiest_hardest_classes():
    acc = np.array([[0.5, 0.7], [0.9, 1.0], [np.nan, np.nan], [0.1, 0.0]])
    ranked = d.easiest_hardest_classes(acc, k=2)
    assert ranked["easiest"].tolist() == [1, 0]
    assert ranked["hardest"].tolist() == [3, 0]


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((0, 3), dtype=bool), "empty"),
        (np.ones(5, dtype=bool), r"shape \(n_images, n_models\)"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([[0, 2]]), "only 0 and 1"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_bad_correct_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        d.n_correct(bad)


def test_bad_labels_and_counts():
    correct = np.ones((3, 2), dtype=bool)
    with pytest.raises(ValueError, match="3 images but labels has 2"):
        d.per_class_accuracy(correct, [0, 1], 2)
    with pytest.raises(ValueError, match="< n_classes=2"):
        d.per_class_accuracy(correct, [0, 1, 2], 2)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        d.fit_beta_binomial(np.array([0, 4]), 3)
    with pytest.raises(ValueError, match="categories"):
        d.category_shares(np.array(["trivial", "easy"]))


@pytest.mark.parametrize(
    "counts, n_models",
    [
        (np.r_[np.zeros(300, int), np.full(600, 10), np.arange(11).repeat(10)], 10),
        (stats.betabinom.rvs(12, 1.5, 0.7, size=3000, random_state=np.random.default_rng(8)), 12),
        (np.arange(6).repeat([5, 20, 40, 40, 20, 5]), 5),
    ],
)
def test_overdispersion_is_the_intraclass_correlation_of_the_fit(counts, n_models):
    fit = d.fit_beta_binomial(counts, n_models)
    a, b = fit.alpha, fit.beta
    assert fit.overdispersion == pytest.approx(1 / (a + b + 1), rel=1e-12)
    # independently, from scipy's variance: Var = M p (1 - p) (1 + (M - 1) rho)
    var = stats.betabinom.var(n_models, a, b)
    binom_var = n_models * fit.mean * (1 - fit.mean)
    assert fit.overdispersion == pytest.approx((var / binom_var - 1) / (n_models - 1), rel=1e-9)
    assert 0 <= fit.overdispersion <= 1


def test_beta_binomial_recovers_overdispersion():
    # alpha + beta = 5: rho = 1/6; 20000 images give a standard error of about 0.0015
    n_models, alpha, beta = 20, 2.0, 3.0
    counts = stats.betabinom.rvs(n_models, alpha, beta, size=20000, random_state=np.random.default_rng(6))
    fit = d.fit_beta_binomial(counts, n_models)
    assert fit.overdispersion == pytest.approx(1 / 6, abs=0.006)
    assert fit.alpha + fit.beta == pytest.approx(alpha + beta, rel=0.05)
