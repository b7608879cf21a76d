"""Tests for TP-agreement, consensus, Accessibility and bimodality (audit.metrics.agreement)."""

import numpy as np
import pytest
from scipy import stats

from audit.metrics import agreement as ag


def test_tp_agreement_by_hand():
    correct = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    assert ag.tp_agreement(correct).tolist() == [0.5, 1.0, 0.0]
    by_epoch = np.stack([correct, ~correct], axis=2)
    assert ag.tp_agreement(by_epoch).tolist() == [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]


def test_consensus_by_hand():
    predicted = np.array([[3, 3, 1], [2, 2, 2], [0, 1, 2], [5, 4, 5]])
    np.testing.assert_allclose(ag.consensus(predicted), [2 / 3, 1.0, 1 / 3, 2 / 3])
    by_epoch = np.stack([predicted, np.zeros_like(predicted)], axis=2)
    np.testing.assert_allclose(ag.consensus(by_epoch)[:, 1], 1.0)


def test_consensus_matches_bincount_on_random_labels():
    rng = np.random.default_rng(0)
    predicted = rng.integers(0, 5, (200, 9))
    expected = np.array([np.bincount(row).max() / 9 for row in predicted])
    np.testing.assert_allclose(ag.consensus(predicted), expected)


def test_majority_vote_by_hand():
    predicted = np.array([[1, 1, 2], [2, 2, 1], [1, 2, 3], [1, 1, 2, 2][:3], [0, 0, 0]])
    labels = np.array([1, 1, 1, 1, 1])
    # 1: two votes for 1 -> right; 2: two for 2 -> wrong; 3: three-way tie -> wrong;
    # 4: [1, 1, 2] -> right; 5: all say 0 -> wrong
    assert ag.majority_vote_correct(predicted, labels).tolist() == [True, False, False, True, False]
    tie = np.array([[1, 1, 2, 2]])
    assert ag.majority_vote_correct(tie, np.array([1])).tolist() == [False]
    # plurality without a majority still counts
    assert ag.majority_vote_correct(np.array([[1, 1, 2, 3, 4]]), np.array([1])).tolist() == [True]


def test_majority_vote_over_epochs_matches_each_epoch():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n_models = int(rng.integers(1, 8))
        predicted = rng.integers(0, 4, (200, n_models, 3))
        labels = rng.integers(0, 4, 200)
        np.testing.assert_array_equal(
            ag.majority_vote_correct(predicted, labels),
            np.stack([ag.majority_vote_correct(predicted[:, :, e], labels) for e in range(3)], axis=1),
        )


def test_accessibility_is_mean_tp_agreement_over_epochs():
    rng = np.random.default_rng(1)
    correct = rng.random((50, 4, 6)) < 0.5
    np.testing.assert_allclose(ag.accessibility(correct), ag.tp_agreement(correct).mean(axis=1))
    hand = np.array([[[1, 0], [1, 1]]], dtype=bool)  # TPa = 1 then .5 -> .75
    assert ag.accessibility(hand).tolist() == [0.75]


def test_bimodality_matches_scipy():
    rng = np.random.default_rng(2)
    values = rng.beta(0.3, 0.4, size=(1000, 5))
    expected = stats.kurtosis(values, axis=0, fisher=False) - stats.skew(values, axis=0) ** 2 - 1
    np.testing.assert_allclose(ag.bimodality_score(values), expected, rtol=1e-10)
    one = values[:, 0]
    assert ag.bimodality_score(one) == pytest.approx(
        stats.kurtosis(one, fisher=False) - stats.skew(one) ** 2 - 1
    )


def test_bimodality_extremes():
    two_point = np.array([0.0] * 30 + [1.0] * 70)
    assert ag.bimodality_score(two_point) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(ag.bimodality_score(np.full(10, 0.3)))
    gaussian = np.random.default_rng(3).normal(size=200_000)
    assert ag.bimodality_score(gaussian) == pytest.approx(2.0, abs=0.05)


def test_bimodality_null_binomial_closed_form():
    # equal accuracies: Binomial(N, p) has score 2 - 2/N for every p
    for n_models, p in [(5, 0.3), (27, 0.76), (2, 0.5)]:
        assert ag.bimodality_null(np.full(n_models, p)) == pytest.approx(2 - 2 / n_models)


def test_bimodality_null_matches_moments_of_null_pmf():
    acc = np.array([0.2, 0.5, 0.7, 0.9, 0.95])
    pmf = ag.tp_agreement_null(acc)
    x = np.arange(len(acc) + 1) / len(acc)
    mean = (pmf * x).sum()
    m2, m3, m4 = ((pmf * (x - mean) ** k).sum() for k in (2, 3, 4))
    assert ag.bimodality_null(acc) == pytest.approx(m4 / m2**2 - m3**2 / m2**3 - 1, rel=1e-10)
    per_epoch = ag.bimodality_null(np.stack([acc, np.full(5, 0.5)], axis=1))
    assert per_epoch[1] == pytest.approx(2 - 2 / 5)
    assert np.isnan(ag.bimodality_null(np.array([0.0, 1.0])))


def test_tp_agreement_null_is_binomial_for_equal_accuracies():
    np.testing.assert_allclose(ag.tp_agreement_null(np.full(6, 0.3)), stats.binom.pmf(np.arange(7), 6, 0.3))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ag.bimodality_null([0.5, 1.2])
    with pytest.raises(ValueError, match="NaN"):
        ag.bimodality_score(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="integer"):
        ag.consensus(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="3 images but labels has 2"):
        ag.majority_vote_correct(np.zeros((3, 2), dtype=int), [0, 1])
    with pytest.raises(ValueError, match="n_epochs"):
        ag.accessibility(np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="empty"):
        ag.tp_agreement(np.zeros((0, 2), dtype=bool))


def test_no_answer_is_no_vote_and_agrees_with_nothing():
    """A decision without an answer (model-vs-human's `na`, stored as NO_ANSWER) is wrong, matches no other
    decision, and is no vote for the majority."""
    from audit.metrics._validate import NO_ANSWER
    from audit.metrics.agreement import consensus, majority_vote, majority_vote_correct

    na = NO_ANSWER
    pred = np.array([[na, na, na], [2, na, na], [2, 1, na], [1, 1, na], [na, na, 0]])
    labels = np.array([0, 2, 2, 1, 1])
    np.testing.assert_allclose(consensus(pred), [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1 / 3])
    label, votes = majority_vote(pred, 3)
    np.testing.assert_array_equal(label, [na, 2, 1, 1, 0])
    np.testing.assert_array_equal(votes, [0, 1, 1, 2, 1])
    # row 2: 2 and 1 tie with one vote each -> wrong; row 1: the only answer is right -> right
    np.testing.assert_array_equal(majority_vote_correct(pred, labels), [False, True, False, True, False])
    np.testing.assert_array_equal(majority_vote_correct(pred[:, :, None], labels)[:, 0],
                                  [False, True, False, True, False])
