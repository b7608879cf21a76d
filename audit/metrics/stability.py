"""Stability of the DDD split: how the shares move with the number of models, and how many are enough.

Resamples the audit's models (seeded subsets of every size 2..M, and bootstrap draws of M), and
extrapolates beyond M with the beta-binomial model of per-image difficulty (meding2022 §3.1 uses it
as a null). Pure numpy/scipy on the final-epoch correctness: no I/O, no prints.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from audit.metrics import difficulty
from audit.metrics._validate import as_correct
from audit.metrics.consistency import _kappa_from_counts

SHARES = ("trivial", "impossible", "inconclusive")
#: above this many models, the curve uses about this many sizes between 2 and M (spaced evenly in log)
MAX_SIZES = 40


class SplitStability(NamedTuple):
    """Result of `split_stability`.

    curve : DataFrame, one row per number of models (observed sizes 2..M, then extrapolated ones):
        n_models, observed (bool), tolerance, <share>_mean / _low / _high for trivial, impossible and
        inconclusive (mean and 95% band over the draws; NaN where extrapolated), kappa_mean / _low /
        _high (mean κ on the inconclusive images of a draw), and <share>_fit for trivial and impossible
        (the beta-binomial model; defined at every size).
    per_image : DataFrame, one row per image: trivial_share and impossible_share, the share of the
        bootstrap draws of M models (with replacement) in which the image is trivial or impossible.
    summary : dict, the numbers of the recommendation (see `split_stability`).
    """

    curve: pd.DataFrame
    per_image: pd.DataFrame
    summary: dict


def min_models(tolerance: int = 1) -> int:
    """The fewest models whose split the stability measure examines (3, and more than 2 t so that trivial,
    n_correct >= M - t, and impossible, n_correct <= t, cannot overlap): below it the split says little."""
    return max(3, 2 * int(tolerance) + 1)


def curve_sizes(n_models: int, *, tolerance: int = 0, max_sizes: int = MAX_SIZES) -> np.ndarray:
    """Subset sizes of the curve: every size from 2 (2 t + 1 for tolerance t, so one rule holds
    throughout) to M, or about `max_sizes` of them log-spaced (M included)."""
    first = max(2, 2 * int(tolerance) + 1)
    if n_models < first:
        raise ValueError(f"the stability of the split at tolerance {tolerance} needs at least {first} models, "
                         f"got {n_models}")
    if n_models - first < max_sizes:
        return np.arange(first, n_models + 1)
    return np.unique(np.round(np.geomspace(first, n_models, max_sizes)).astype(int))


def _subsets(n_models: int, size: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Indicator matrix (n_models, n_subsets): every subset when there are at most n_draws, else random ones."""
    if math.comb(n_models, size) <= n_draws:
        rows = _combinations(n_models, size)
    else:
        rows = np.argsort(rng.random((n_draws, n_models)), axis=1)[:, :size]
    w = np.zeros((n_models, len(rows)), dtype=np.float32)
    w[rows, np.arange(len(rows))[:, None]] = 1.0
    return w


def _combinations(n: int, k: int) -> np.ndarray:
    """Every k-subset of range(n) as a row, in lexicographic order.

    Prefixes that cannot be completed are never built, so no step holds more than C(n, k) rows.
    """
    rows: list[tuple] = [()]
    for i in range(k):
        rows = [r + (j,) for r in rows for j in range(r[-1] + 1 if r else 0, n - k + i + 1)]
    return np.array(rows, dtype=np.int64).reshape(len(rows), k)


def _band(values: np.ndarray) -> tuple[float, float, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    low, high = np.quantile(v, [0.025, 0.975])
    return float(v.mean()), float(low), float(high)


def _mean_kappa_inconclusive(cf: np.ndarray, gram: np.ndarray, col_sums: np.ndarray, models: np.ndarray,
                             inconclusive: np.ndarray) -> float:
    """Mean pairwise κ of `models` on the inconclusive images, from the full Gram matrix minus the rest.

    both-right counts on the inconclusive images = those on all images minus those on the others, so
    only the smaller of the two image sets is multiplied out.
    """
    n_inc = int(np.count_nonzero(inconclusive))
    if n_inc == 0:
        return np.nan
    rest = ~inconclusive
    if n_inc <= cf.shape[0] - n_inc:
        part = cf[np.ix_(np.flatnonzero(inconclusive), models)]
        both, s = part.T.astype(np.float64) @ part, part.sum(axis=0, dtype=np.float64)
    else:
        part = cf[np.ix_(np.flatnonzero(rest), models)]
        both = gram[np.ix_(models, models)] - part.T.astype(np.float64) @ part
        s = col_sums[models] - part.sum(axis=0, dtype=np.float64)
    kappa = _kappa_from_counts(both, s[:, None], s[None, :], n_inc)
    iu = np.triu_indices(len(models), 1)
    return float(kappa[iu].mean())


class InflatedBetaBinomial(NamedTuple):
    """Per-image accuracy q: 1 with weight w_one, 0 with weight w_zero, else Beta(α, β).

    meding2022 §3.1 places the observed histogram between graded difficulty (a beta-binomial) and
    a dichotomy (every image at 0 or M); this model holds both: the point masses are the images
    that any number of models would all get right or all get wrong.
    """

    w_one: float
    w_zero: float
    alpha: float
    beta: float

    def shares(self, size: int, tolerance: int) -> tuple[float, float]:
        """P(trivial) and P(impossible) with `size` models, in closed form.

        n_correct | beta part ~ BetaBinomial(size, α, β); with tolerance 0, P(trivial | m) =
        w_one + (1 - w_one - w_zero) E[q^m], and E[q^m] = B(α + m, β) / B(α, β).
        """
        from scipy.stats import betabinom

        rest = 1.0 - self.w_one - self.w_zero
        return (self.w_one + rest * float(betabinom.sf(size - tolerance - 1, size, self.alpha, self.beta)),
                self.w_zero + rest * float(betabinom.cdf(tolerance, size, self.alpha, self.beta)))


def fit_inflated_beta_binomial(n_correct, n_models: int) -> InflatedBetaBinomial:
    """Maximum-likelihood `InflatedBetaBinomial` of the n_correct histogram (Nelder-Mead on logit/log scales)."""
    from scipy.optimize import minimize
    from scipy.special import softmax
    from scipy.stats import betabinom

    counts = np.asarray(n_correct)
    hist = np.bincount(counts, minlength=n_models + 1).astype(float)
    k = np.arange(n_models + 1)
    base = difficulty.fit_beta_binomial(counts, n_models)

    def unpack(theta):
        w = softmax([theta[0], theta[1], 0.0])
        return w[0], w[1], float(np.exp(np.clip(theta[2], -30, 30))), float(np.exp(np.clip(theta[3], -30, 30)))

    def nll(theta):
        w1, w0, a, b = unpack(theta)
        pmf = (1 - w1 - w0) * betabinom.pmf(k, n_models, a, b)
        pmf[-1] += w1
        pmf[0] += w0
        return -float((hist * np.log(np.clip(pmf, 1e-300, None))).sum())

    start = np.array([np.log(max(hist[-1], 1) / hist.sum()) - np.log(0.5), np.log(max(hist[0], 1) / hist.sum())
                      - np.log(0.5), np.log(max(base.alpha, 1e-3)), np.log(max(base.beta, 1e-3))])
    theta = minimize(nll, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6}).x
    w1, w0, a, b = unpack(np.clip(theta, -30, 30))
    return InflatedBetaBinomial(float(w1), float(w0), a, b)


def split_stability(correct, *, tolerance: int = 1, n_draws: int = 200, n_kappa_draws: int = 30,
                    more_models: int | None = None, max_images: int | None = None, kappa_max_models: int = 100,
                    random_state: int = 0, progress=None) -> SplitStability:
    """How the DDD split moves with the number of models (resampled), and beyond M (extrapolated).

    The tolerance is the one the split uses with M models (`difficulty.usable_tolerance`). For every
    size m in `curve_sizes(M)` (2 t + 1 to M), up to `n_draws` seeded subsets of m models (all of
    them when there are fewer) give the trivial / impossible / inconclusive shares, and the first `n_kappa_draws` of them
    the mean error consistency κ on their inconclusive images. Bands are the 2.5 and 97.5
    percentiles over the draws. Each image's shares come from `n_draws` bootstrap draws of M models
    with replacement.

    Extrapolation (stated in the summary): the zero-and-one-inflated beta-binomial fit of the
    n_correct histogram (`fit_inflated_beta_binomial`) gives each share at any m in closed form,
    and the size from which the fitted trivial share moves by less than one point per doubling of
    the models. Subsets of m drawn from M vary less than fresh sets of m models would as m nears M
    (at m = M there is one), so the 95% half-width of the trivial share is corrected by
    sqrt((M - m) / (M - 1)) (the finite-population factor), fitted as a * m^-b over the sizes
    below M, and read off at M (±x) and at M + K (±y).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models), n_models >= 2
    tolerance : int, default 1, t of the split (trivial: n_correct >= m - t; impossible: <= t)
    n_draws : int, default 200, subsets per size and bootstrap draws
    n_kappa_draws : int, default 30, subsets per size whose mean κ is computed (0 skips κ)
    more_models : int, optional, K of the recommendation; default M (twice the models)
    max_images : int, optional, the curve (not the per-image shares) uses a seeded subset of this many
        images when there are more; for a zoo of many models, where each size costs n_images x M x n_draws
    kappa_max_models : int, default 100, κ is computed for subsets of at most this many models (its
        cost grows as m^2 per draw); NaN above
    random_state : int, default 0
    progress : callable(done, total), optional, called after each size

    Returns
    -------
    SplitStability; its summary holds n_models, tolerance, n_draws, trivial_share, trivial_halfwidth
    (points at M; None with fewer than 3 sizes below M), more_models, trivial_halfwidth_more (points at
    M + K, the same as at M when the band does not narrow), halfwidth_exponent (b), fit (the inflated
    beta-binomial's w_one, w_zero, alpha, beta and max_error over the observed sizes), trivial_fit_more
    (the fitted share at M + K), stable_from (models from which the fitted trivial share moves less
    than a point per doubling), curve_images, extrapolation (which models) and recommendation.

    Run it with BLAS on one thread where cores are few (`threadpoolctl.threadpool_limits(1)`, as the
    report does): the products are thin (n_models columns) and memory-bound, and a second BLAS thread
    made them eight times slower in CPU time on 2 cores (benchmarks/bench_scores.py).
    """
    ok = as_correct(correct, min_models=2)
    for name, value, low in (("n_draws", n_draws, 2), ("n_kappa_draws", n_kappa_draws, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    more = ok.shape[1] if more_models is None else int(more_models)
    if more < 1:
        raise ValueError(f"more_models must be at least 1, got {more_models!r}")
    n_images, n_models = ok.shape
    rng = np.random.default_rng(random_state)
    cf = ok.astype(np.float32)  # counts up to M are exact in float32
    curve_cf = cf
    if max_images is not None and n_images > max_images:
        pick = np.random.default_rng([random_state, 1]).choice(n_images, size=int(max_images), replace=False)
        curve_cf = cf[np.sort(pick)]
    gram = curve_cf.T.astype(np.float64) @ curve_cf
    col_sums = curve_cf.sum(axis=0, dtype=np.float64)
    counts_full = np.count_nonzero(ok, axis=1)
    fit = fit_inflated_beta_binomial(counts_full, n_models)

    rows = []
    tolerance = difficulty.usable_tolerance(tolerance, n_models)
    sizes = curve_sizes(n_models, tolerance=tolerance)
    for done, m in enumerate(sizes, 1):
        t = tolerance
        w = _subsets(n_models, int(m), n_draws, rng)
        k = curve_cf @ w  # (n_images, n_subsets): models right per image and subset
        trivial, impossible = k >= m - t, k <= t
        shares = {"trivial": trivial.mean(axis=0), "impossible": impossible.mean(axis=0)}
        shares["inconclusive"] = 1.0 - shares["trivial"] - shares["impossible"]
        row = {"n_models": int(m), "observed": True, "tolerance": t}
        for name in SHARES:
            row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = _band(shares[name])
        n_kappa = min(n_kappa_draws, w.shape[1]) if m <= kappa_max_models else 0
        kappas = np.array([_mean_kappa_inconclusive(curve_cf, gram, col_sums, np.flatnonzero(w[:, d]),
                                                    ~(trivial[:, d] | impossible[:, d]))
                           for d in range(n_kappa)])
        row["kappa_mean"], row["kappa_low"], row["kappa_high"] = _band(kappas) if len(kappas) else (np.nan,) * 3
        rows.append(row)
        if progress is not None:
            progress(done, len(sizes))

    # bootstrap of M models with replacement: each image's shares, on every image
    t_full = tolerance
    draws = rng.integers(0, n_models, size=(n_draws, n_models))
    w = np.zeros((n_models, n_draws), dtype=np.float32)
    np.add.at(w, (draws, np.arange(n_draws)[:, None]), 1.0)
    k = cf @ w
    boot_trivial, boot_impossible = k >= n_models - t_full, k <= t_full
    per_image = pd.DataFrame({"trivial_share": boot_trivial.mean(axis=1), "impossible_share": boot_impossible.mean(axis=1)})

    curve = pd.DataFrame(rows)
    band = _halfwidth_fit(curve, n_models)
    grid = np.round(np.geomspace(n_models + 1, max(4 * n_models, n_models + more), 12)).astype(int)
    extra = sorted({n_models + more, *grid.tolist()} - {n_models})
    curve = pd.concat([curve, pd.DataFrame({"n_models": extra, "observed": False,
                                            "tolerance": tolerance})],
                      ignore_index=True)
    fitted = np.array([fit.shares(int(m), int(t)) for m, t in zip(curve["n_models"], curve["tolerance"], strict=True)])
    curve["trivial_fit"], curve["impossible_fit"] = fitted[:, 0], fitted[:, 1]
    observed = curve["observed"].to_numpy(bool)
    max_error = float(np.max(np.abs(curve.loc[observed, "trivial_fit"] - curve.loc[observed, "trivial_mean"])))
    halfwidth = narrower = exponent = None
    if band is not None:
        scale, exponent = band
        halfwidth = scale * n_models ** -exponent
        narrower = scale * (n_models + more) ** -max(exponent, 0.0)
    trivial_share = float(np.mean(counts_full >= n_models - t_full))
    fit_more = float(curve.loc[curve["n_models"] == n_models + more, "trivial_fit"].iloc[0])
    summary = {
        "n_models": n_models, "tolerance": t_full, "n_draws": n_draws, "sizes": [int(s) for s in sizes],
        "trivial_share": trivial_share, "trivial_halfwidth": halfwidth, "more_models": more,
        "trivial_halfwidth_more": narrower, "halfwidth_exponent": exponent,
        "fit": {**fit._asdict(), "max_error": max_error},
        "trivial_fit_more": fit_more, "stable_from": _stable_from(fit, tolerance), "curve_images": len(curve_cf),
        "extrapolation": "zero-and-one-inflated beta-binomial fit of the n_correct histogram (shares); power law in m of the "
                         "finite-population-corrected 95% half-width over subsets (band)",
        "mean_kappa_inconclusive": _num(curve.loc[curve["n_models"] == n_models, "kappa_mean"].iloc[0]),
    }
    summary["recommendation"] = recommendation(summary)
    return SplitStability(curve=curve, per_image=per_image, summary=summary)


def _halfwidth_fit(curve: pd.DataFrame, n_models: int) -> tuple[float, float] | None:
    """(a, b) of the half-width in points, a * m^-b, fitted in log-log over the sizes below M after the
    finite-population correction; None with fewer than three usable sizes."""
    part = curve[curve["observed"] & (curve["n_models"] < n_models)]
    m = part["n_models"].to_numpy(float)
    half = 100 * (part["trivial_high"] - part["trivial_low"]).to_numpy(float) / 2
    corrected = half / np.sqrt((n_models - m) / (n_models - 1))
    good = corrected > 0
    if good.sum() < 3:
        return None
    slope, intercept = np.polyfit(np.log(m[good]), np.log(corrected[good]), 1)
    return float(np.exp(intercept)), float(-slope)


def _stable_from(fit: InflatedBetaBinomial, tolerance: int, *, points: float = 1.0, limit: int = 100_000) -> int | None:
    """The fewest models from which the fitted trivial share falls by less than `points` per doubling."""
    m = max(2, 2 * tolerance + 1)
    while m <= limit:
        if 100 * (fit.shares(m, tolerance)[0] - fit.shares(2 * m, tolerance)[0]) < points:
            return m
        m = int(np.ceil(m * 1.25)) if m > 8 else m + 1
    return None


def recommendation(summary: dict) -> str:
    """The one-line answer to "how many models do I need?" from a `split_stability` summary."""
    m, x, k = summary["n_models"], summary["trivial_halfwidth"], summary["more_models"]
    share = f"the trivial share ({100 * summary['trivial_share']:.1f}%)"
    if x is None:
        return f"with {m:,} models, too few subset sizes to say how well {share} is known"
    line = f"with {m:,} models, {share} is known to ±{_points(x)} points"
    y = summary["trivial_halfwidth_more"]
    if summary["halfwidth_exponent"] <= 0:
        line += f"; {k:,} more models would not narrow the band (it does not shrink over the resampled sizes)"
    else:
        line += f"; {k:,} more models would narrow it to ±{_points(y)} points"
    line += f"; the fitted model expects {100 * summary['trivial_fit_more']:.1f}% with {m + k:,} models"
    stable = summary.get("stable_from")
    if stable is not None:
        line += f" and moves less than a point per doubling from {stable:,} models on"
    else:
        line += ", still falling by a point or more per doubling"
    return line


def _points(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _num(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value
