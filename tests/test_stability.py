"""Stability of the split (audit.metrics.stability) on synthetic decisions with a known per-image difficulty."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import betabinom, binom

from audit.metrics import stability as st
from audit.metrics.consistency import error_consistency_matrix, mean_error_consistency


def _mixture(n_images: int, n_models: int, seed: int):
    """Per-image accuracy q: 1 (40%), 0 (12%), else uniform on [0.2, 0.8]; models independent given q."""
    rng = np.random.default_rng(seed)
    u = rng.random(n_images)
    q = np.where(u < 0.4, 1.0, np.where(u < 0.52, 0.0, rng.uniform(0.2, 0.8, n_images)))
    return q, rng.random((n_images, n_models)) < q[:, None]


def _true_trivial_share(q: np.ndarray, m: int, t: int) -> float:
    """Expected trivial share with m fresh models: mean over images of P(Binomial(m, q) >= m - t)."""
    return float(binom.sf(m - t - 1, m, q).mean())


def test_curve_recovers_the_true_shares_within_its_band():
    q, correct = _mixture(20000, 24, seed=0)
    res = st.split_stability(correct, tolerance=1, n_draws=100, n_kappa_draws=5)
    observed = res.curve[res.curve["observed"]]
    assert observed["n_models"].tolist() == list(range(3, 25))  # 2 t + 1 .. M
    # the subsets of m models from 24 stand for fresh sets of m models while m is well below M
    for _, row in observed[observed["n_models"] <= 12].iterrows():
        truth = _true_trivial_share(q, int(row["n_models"]), 1)
        assert row["trivial_low"] - 0.003 <= truth <= row["trivial_high"] + 0.003, (row["n_models"], truth)
    # at M, the bootstrap band of M models and the zero-and-one-inflated fit recover the point masses
    fit = res.summary["fit"]
    assert abs(fit["w_one"] - 0.4) < 0.01 and abs(fit["w_zero"] - 0.12) < 0.01
    assert res.summary["fit"]["max_error"] < 0.01
    # extrapolated to 4 M: the model's share against the truth for 96 fresh models
    far = res.curve[res.curve["n_models"] == 96].iloc[0]
    assert abs(far["trivial_fit"] - _true_trivial_share(q, 96, 1)) < 0.01
    assert res.summary["trivial_halfwidth"] > 0


def test_pure_beta_difficulty_extrapolates_in_closed_form():
    rng = np.random.default_rng(3)
    a, b = 0.6, 0.3
    q = rng.beta(a, b, 40000)
    correct = rng.random((40000, 20)) < q[:, None]
    res = st.split_stability(correct, tolerance=0, n_draws=50, n_kappa_draws=0)
    # with tolerance 0, P(trivial | m) = E[q^m] = B(a + m, b) / B(a, b)
    for m in (10, 40, 80):
        expected = math.exp(math.lgamma(a + m) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(a + b + m))
        got = st.fit_inflated_beta_binomial(correct.sum(axis=1), 20).shares(m, 0)[0]
        assert abs(got - expected) < 0.01, (m, got, expected)
        if m > 20:  # beyond M the curve holds the extrapolation
            assert res.curve.loc[res.curve["n_models"] == m, "trivial_fit"].iloc[0] == pytest.approx(got)
        assert abs(got - float(betabinom.pmf(m, m, a, b))) < 0.01


def test_kappa_on_inconclusive_matches_the_direct_matrix():
    _, correct = _mixture(3000, 8, seed=5)
    res = st.split_stability(correct, tolerance=1, n_draws=2, n_kappa_draws=1)
    row = res.curve[res.curve["n_models"] == 8].iloc[0]  # the one subset of all 8 models
    n = correct.sum(axis=1)
    inconclusive = (n > 1) & (n < 7)
    direct = mean_error_consistency(error_consistency_matrix(correct[inconclusive]))
    assert row["kappa_mean"] == pytest.approx(direct, abs=1e-9)
    assert res.summary["mean_kappa_inconclusive"] == pytest.approx(direct, abs=1e-9)


def test_per_image_shares_and_the_recommendation():
    q, correct = _mixture(5000, 10, seed=7)
    res = st.split_stability(correct, tolerance=0, n_draws=200, more_models=20)
    shares = res.per_image
    always = correct.all(axis=1)
    assert (shares.loc[always, "trivial_share"] == 1).all()  # right for every model: trivial in every draw
    assert (shares.loc[~correct.any(axis=1), "impossible_share"] == 1).all()
    one_miss = correct.sum(axis=1) == 9
    # a bootstrap draw avoids the one model that errs with probability (9/10)^10
    assert shares.loc[one_miss, "trivial_share"].mean() == pytest.approx(0.9 ** 10, abs=0.03)
    text = res.summary["recommendation"]
    assert text.startswith("with 10 models, the trivial share") and "20 more models" in text


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match="at least 2"):
        st.split_stability(np.ones((5, 1), bool))
    with pytest.raises(ValueError, match="n_draws"):
        st.split_stability(np.ones((5, 4), bool), n_draws=1)
    assert st.curve_sizes(1000, tolerance=1).tolist()[:2] == [3, 4] and st.curve_sizes(1000)[-1] == 1000


def test_deeper_page_shows_the_scores_and_the_stability(tmp_path):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from audit.report import build_report
    from audit.store import load
    from audit.synthetic import make_synthetic_audit

    path = make_synthetic_audit(tmp_path / "audit", n_images=300, n_models=6, n_epochs=3)
    summary = build_report(load(path), figures=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(path)
    at.run()
    at.switch_page("deeper.py").run()
    assert not at.exception, [e.message for e in at.exception]
    specs = [el.proto.spec for el in at.get("vega_lite_chart")]
    assert any("Spearman" in s for s in specs) and any("Cartography map" in s for s in specs)
    assert any("The split of subsets of" in s for s in specs)
    text = " ".join(str(m.value) for m in at.markdown)
    assert summary["stability"]["recommendation"][1:] in text
    assert "EL2N and AUM need the margins" in text  # synthetic decisions carry no margins


def test_a_zoo_curve_uses_a_subset_of_images_and_skips_kappa_for_large_subsets():
    _, correct = _mixture(3000, 130, seed=9)
    res = st.split_stability(correct, n_draws=4, n_kappa_draws=2, max_images=1000, kappa_max_models=20)
    assert res.summary["curve_images"] == 1000 and len(res.per_image) == 3000  # per-image shares on every image
    curve = res.curve[res.curve["observed"]]
    # with 3 models at tolerance 1 nothing is inconclusive, so κ starts at 4
    assert curve.loc[curve["n_models"].between(4, 20), "kappa_mean"].notna().all()
    assert curve.loc[curve["n_models"] > 20, "kappa_mean"].isna().all()
    assert len(curve) <= st.MAX_SIZES + 1 and curve["n_models"].iloc[-1] == 130
    assert res.summary["recommendation"].startswith("with 130 models")
