"""Study statistics against the paper, scipy, statsmodels and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from human_study.analysis import (
    accuracy_by_block,
    analyze,
    binomial_p_value,
    clopper_pearson_interval,
    error_consistency,
    format_analysis,
    learning_design,
    learning_effect,
    observer_accuracy,
    pairwise_error_consistency,
    response_time_summary,
    wilson_interval,
)


def test_meding2022_footnote_4():
    # the worst observer: 71.81% of 149 trials = 107 correct gives p = 5e-8
    assert 107 / 149 == pytest.approx(0.7181, abs=1e-4)
    assert binomial_p_value(107, 149) == pytest.approx(5.0e-8, rel=0.01)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (107, 149), (75, 149), (1, 1)])
def test_p_value_and_intervals_match_scipy_and_statsmodels(k, n):
    assert binomial_p_value(k, n) == pytest.approx(
        binomtest(k, n, 0.5, alternative="greater").pvalue, rel=1e-12
    )
    for alpha in (0.05, 0.01):
        assert wilson_interval(k, n, alpha=alpha) == pytest.approx(
            proportion_confint(k, n, alpha=alpha, method="wilson"), abs=1e-10
        )
        assert clopper_pearson_interval(k, n, alpha=alpha) == pytest.approx(
            proportion_confint(k, n, alpha=alpha, method="beta"), abs=1e-10
        )


def test_bad_counts():
    for k, n in ((5, 4), (-1, 4), (1, 0), (1.5, 4)):
        with pytest.raises(ValueError):
            binomial_p_value(k, n)


def test_error_consistency_by_hand():
    # 10 trials: a right on 8, b right on 6, both right on 6, both wrong on 2 -> c_obs = 0.8
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    b = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    ec = error_consistency(a, b)
    assert ec.c_obs == pytest.approx(0.8)
    assert ec.c_exp == pytest.approx(0.8 * 0.6 + 0.2 * 0.4)  # 0.56
    assert ec.kappa == pytest.approx((0.8 - 0.56) / (1 - 0.56))
    assert error_consistency(a, a).kappa == 1.0
    assert error_consistency(np.ones(5, bool), np.ones(5, bool)).kappa == 1.0  # c_exp = 1 too
    assert error_consistency(np.ones(4, bool), np.zeros(4, bool)).kappa == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shape"):
        error_consistency(a, b[:5])


def test_error_consistency_is_cohens_kappa_on_correctness():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.random(149) < 0.8
        b = np.where(rng.random(149) < 0.6, a, rng.random(149) < 0.8)
        assert error_consistency(a, b).kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


COLUMNS = ["subj", "kind", "trial_id", "number", "correct", "rt_ms", "rt_source"]


def _responses(correct_by_subj: dict[str, np.ndarray], *, rt=None, catch=None) -> pd.DataFrame:
    rows = []
    for subj, correct in correct_by_subj.items():
        for i, c in enumerate(correct):
            rows.append(
                {
                    "subj": subj,
                    "kind": "main",
                    "trial_id": 100 + i,
                    "number": i + 1,
                    "correct": bool(c),
                    "rt_ms": np.nan if rt is None else rt[subj][i],
                    "rt_source": "client",
                }
            )
        for j, c in enumerate((catch or {}).get(subj, [])):
            rows.append(
                {
                    "subj": subj,
                    "kind": "catch",
                    "trial_id": 900 + j,
                    "number": len(correct) + j + 1,
                    "correct": bool(c),
                    "rt_ms": np.nan,
                    "rt_source": None,
                }
            )
        rows.append(
            {
                "subj": subj,
                "kind": "practice",
                "trial_id": 1,
                "number": 1,
                "correct": False,
                "rt_ms": 99999.0,
                "rt_source": "client",
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def test_observer_accuracy_mean_and_range():
    correct = {
        "subject-01": np.r_[np.ones(107), np.zeros(42)],
        "subject-02": np.r_[np.ones(130), np.zeros(19)],
        "subject-03": np.r_[np.ones(120), np.zeros(29)],
    }
    frame = _responses(correct, catch={"subject-01": [1, 1, 0, 1]})
    table = observer_accuracy(frame)
    assert table["n_trials"].tolist() == [149, 149, 149]  # practice and catch left out
    assert table["n_correct"].tolist() == [107, 130, 120]
    assert table.loc[0, "p_value"] == pytest.approx(5.0e-8, rel=0.01)
    assert table.loc[0, "catch_accuracy"] == 0.75 and table.loc[0, "n_catch"] == 4
    assert math.isnan(table.loc[1, "catch_accuracy"])
    result = analyze(frame)
    acc = np.array([107, 130, 120]) / 149
    assert result.accuracy["mean"] == pytest.approx(acc.mean())
    assert result.accuracy["sd"] == pytest.approx(acc.std(ddof=1))
    assert (result.accuracy["min"], result.accuracy["max"]) == pytest.approx((acc.min(), acc.max()))
    text = format_analysis(result)
    assert "subject-01" in text and "71.8%" in text and "5.0e-08" in text


def test_pairwise_consistency_uses_matched_trials_only():
    a = _responses({"A": np.array([1, 1, 0, 0, 1, 1])})
    b = _responses({"B": np.array([1, 0, 0, 1])})  # trials 100..103 only
    pairs = pairwise_error_consistency(pd.concat([a, b]))
    assert len(pairs) == 1 and pairs.loc[0, "n_trials"] == 4
    expected = error_consistency(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 1], bool))
    assert pairs.loc[0, "kappa"] == pytest.approx(expected.kappa)


def test_learning_effect_matches_unpenalised_sklearn_and_finds_a_real_slope():
    rng = np.random.default_rng(0)
    n = 149
    correct = {}
    for s, offset in (("a", -0.3), ("b", 0.2), ("c", 0.0)):
        p = 1 / (1 + np.exp(-(offset + 0.01 * np.arange(n))))
        correct[s] = rng.random(n) < p
    frame = _responses(correct)
    le = learning_effect(frame)
    x, y, _ = learning_design(frame)
    ref = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(x, y)
    assert le.slope == pytest.approx(ref.coef_[0][1], rel=1e-4)
    assert le.slope > 0 and le.p_value < 0.01 and le.ci_low < le.slope < le.ci_high
    assert le.last_number == n and le.odds_ratio_first_to_last == pytest.approx(math.exp((n - 1) * le.slope))
    assert le.n_responses == 3 * n and le.n_observers == 3


def test_learning_effect_degenerate_cases():
    assert "every response is correct" in learning_effect(_responses({"a": np.ones(20)})).note
    separated = learning_effect(_responses({"a": np.r_[np.ones(10), np.zeros(10)]}))
    assert math.isnan(separated.slope) and "separation" in separated.note
    assert learning_effect(_responses({})).n_responses == 0


def test_blocks_and_response_times_by_hand():
    correct = {"a": np.array([1, 1, 0, 1, 0, 0])}
    rt = {"a": [400.0, 600.0, 800.0, 1000.0, 1200.0, 1400.0]}
    frame = _responses(correct, rt=rt)
    blocks = accuracy_by_block(frame, block=4)
    assert blocks["n"].tolist() == [4, 2] and blocks["accuracy"].tolist() == [0.75, 0.0]
    assert blocks["first"].tolist() == [1, 5] and blocks["last"].tolist() == [4, 6]  # never past the last trial
    rts = response_time_summary(frame).set_index("subj")
    assert rts.loc["a", "median"] == 900.0 and rts.loc["a", "n"] == 6  # practice RT left out
    assert rts.loc["a", "median_correct"] == 600.0  # 400, 600, 1000
    assert rts.loc["a", "median_wrong"] == 1200.0  # 800, 1200, 1400
    assert rts.loc["a", "rt_source"] == "client" and rts.loc["all", "n"] == 6


def test_empty_study():
    frame = _responses({})
    result = analyze(frame)
    assert result.observers.empty and result.accuracy["n"] == 0
    assert format_analysis(result) == "No responses yet."
    with pytest.raises(ValueError, match="lacks columns"):
        analyze(pd.DataFrame({"x": [1]}))


def test_pairwise_consistency_of_many_observers_equals_each_pair():
    """The matrix form equals `error_consistency` pair by pair: partial overlaps, identical observers,
    one all right, and a pair with no trial in common."""
    rng = np.random.default_rng(3)
    frames = []
    for k in range(7):
        n = 40 if k < 5 else 10
        frame = _responses({f"subject-{k:02d}": rng.random(n) < 0.75})
        if k == 6:
            frame["trial_id"] += 500  # no trial shared with anyone
        frames.append(frame)
    frames.append(_responses({"subject-07": frames[0].loc[frames[0]["kind"] == "main", "correct"].to_numpy()}))
    frames.append(_responses({"subject-08": np.ones(40, bool)}))
    responses = pd.concat(frames, ignore_index=True)
    pairs = pairwise_error_consistency(responses)
    main = responses[responses["kind"] == "main"]
    by = {s: g.set_index("trial_id")["correct"] for s, g in main.groupby("subj")}
    assert len(pairs) == 9 * 8 // 2
    for row in pairs.itertuples():
        common = by[row.subj_a].index.intersection(by[row.subj_b].index)
        want = error_consistency(by[row.subj_a].loc[common].to_numpy(bool), by[row.subj_b].loc[common].to_numpy(bool))
        assert row.n_trials == want.n_trials
        for got, expected in ((row.c_obs, want.c_obs), (row.c_exp, want.c_exp), (row.kappa, want.kappa)):
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)
    same = pairs[(pairs["subj_a"] == "subject-00") & (pairs["subj_b"] == "subject-07")]
    assert same["kappa"].item() == 1.0


def test_one_observer_has_no_sd():
    result = analyze(_responses({"subject-01": np.r_[np.ones(30), np.zeros(10)]}))
    text = format_analysis(result)
    assert "SD n/a (one observer)" in text and "sd n/a (one observer)" in text and "-%" not in text
