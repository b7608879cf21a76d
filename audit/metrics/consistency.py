"""Error consistency (Geirhos et al. 2020, as used in meding2022 §2, Fig. 3 and 6).

One pair, the full n_models x n_models matrix from two matrix products, and
bootstrap confidence intervals over images. Pure numpy: no I/O, no prints.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from audit.metrics._validate import as_correct


class ErrorConsistency(NamedTuple):
    """c_obs, c_exp and kappa of one pair of decision makers (meding2022 §2)."""

    c_obs: float
    c_exp: float
    kappa: float


def error_consistency(a, b) -> ErrorConsistency:
    """Error consistency of two decision makers on the same images.

    c_obs is the share of images both get right or both get wrong,
    c_exp = p1 p2 + (1 - p1)(1 - p2) with p1, p2 their accuracies, and
    κ = (c_obs - c_exp) / (1 - c_exp) (meding2022 §2; Geirhos et al. 2020).

    Parameters
    ----------
    a, b : array-like of bool, shape (n_images,)
        Correctness of the two decision makers.

    Returns
    -------
    result : ErrorConsistency
        c_obs and c_exp in [0, 1]; kappa in [-1, 1]: 1 = identical errors,
        0 = no more overlap than independent decision makers of the same
        accuracies, < 0 = systematic disagreement. κ = 1 whenever c_obs = 1.
        κ is never undefined: c_exp = 1 only when both are all-correct or both
        all-wrong, and then c_obs = 1, so κ = 1 (where
        `sklearn.metrics.cohen_kappa_score` returns NaN).
    """
    a = as_correct(a, name="a", ndim=(1,))
    b = as_correct(b, name="b", ndim=(1,))
    if a.shape != b.shape:
        raise ValueError(f"a has {a.shape[0]} images but b has {b.shape[0]}")
    n = a.shape[0]
    both_right = float(np.count_nonzero(a & b))
    s1, s2 = float(np.count_nonzero(a)), float(np.count_nonzero(b))
    kappa = _kappa_from_counts(np.array(both_right), np.array(s1), np.array(s2), n)
    p1, p2 = s1 / n, s2 / n
    c_obs = (n - s1 - s2 + 2 * both_right) / n
    c_exp = p1 * p2 + (1 - p1) * (1 - p2)
    return ErrorConsistency(c_obs=float(c_obs), c_exp=float(c_exp), kappa=float(kappa))


def error_consistency_matrix(correct) -> np.ndarray:
    """Error consistency κ of every pair of models, vectorised.

    Uses one matrix product for the both-right counts a (the both-wrong counts
    follow as n - s_i - s_j + a) and the exact 2x2-table form
    κ = 2(ad - bc) / ((a+b)(b+d) + (a+c)(c+d)), which equals
    (c_obs - c_exp) / (1 - c_exp) (meding2022 §2). The counts are exact
    integers (float32 products below 2^24 images, float64 above) and the
    products stay exact in float64 up to about 6·10^7 images, so the only
    rounding is the final division.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models), n_models >= 2

    Returns
    -------
    kappa : ndarray of float, shape (n_models, n_models)
        Symmetric, in [-1, 1], diagonal 1; higher = more similar errors.
        κ = 1 for a pair with c_obs = 1 (this covers the pairs where c_exp = 1,
        for which the usual formula divides by zero).
    """
    correct = as_correct(correct, min_models=2)
    c = correct.astype(_count_dtype(correct.shape[0]))
    s = np.count_nonzero(correct, axis=0).astype(np.float64)
    both_right = (c.T @ c).astype(np.float64)
    return _kappa_from_counts(both_right, s[:, None], s[None, :], correct.shape[0])


def mean_error_consistency(kappa) -> float:
    """Mean κ over distinct pairs (the off-diagonal entries).

    Parameters
    ----------
    kappa : array-like of float, shape (n_models, n_models), n_models >= 2

    Returns
    -------
    mean : float in [-1, 1]; higher = models err on the same images.
    """
    k = np.asarray(kappa, dtype=float)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kappa must be square, shape (n_models, n_models), got {k.shape}")
    if k.shape[0] < 2:
        raise ValueError(f"kappa has {k.shape[0]} model(s); expected at least 2 to have a pair")
    iu = np.triu_indices(k.shape[0], 1)
    vals = k[iu]
    if np.isnan(vals).any():
        raise ValueError("kappa contains NaN off the diagonal")
    return float(vals.mean())


def error_consistency_bootstrap(
    correct,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
    per_pair: bool = True,
    max_models: int | None = None,
    kappa=None,
) -> dict:
    """Percentile bootstrap confidence intervals for every κ, resampling images.

    Each replicate draws n_images images with replacement (the same draw for
    every model, so pairs stay paired) and recomputes the κ matrix as in
    `error_consistency_matrix`. Images with the same correctness pattern are
    pooled first, so each replicate costs one product over the distinct
    patterns (far fewer than images when many are trivial or impossible).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models), n_models >= 2
    n_bootstrap : int, default 1000
    confidence : float in (0, 1), default 0.95
    random_state : int, Generator or None
    per_pair : bool, default True
        Give the bounds of every κ ("low", "high"). Without them only the
        mean's interval is computed, in memory that does not grow with the
        number of replicates times the pairs.
    max_models : int or None
        With more models than this (and ``per_pair=False``), the replicates
        are computed over a random `max_models` of them and shifted by the
        full mean minus their mean on all images: the image-resampling spread
        of the mean over every pair is estimated from the pairs of the subset
        (each replicate costs max_models**2 instead of n_models**2). A zoo of
        a thousand models keeps a bootstrap in seconds this way.
    kappa : array-like, shape (n_models, n_models), optional
        `error_consistency_matrix(correct)` when the caller has it already.

    Returns
    -------
    ci : dict
        "kappa": (n_models, n_models), the point estimate;
        "low", "high": (n_models, n_models), the percentile bounds (per_pair only);
        "mean_low", "mean_high": float, bounds for the mean off-diagonal κ;
        "replicates": (n_bootstrap,), the mean off-diagonal κ per replicate;
        "models_resampled": int, the number of models the replicates used.
    """
    correct = as_correct(correct, min_models=2)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive int, got {n_bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if max_models is not None and (per_pair or max_models < 2):
        raise ValueError("max_models needs per_pair=False and at least 2 models")
    rng = np.random.default_rng(random_state)
    kappa = error_consistency_matrix(correct) if kappa is None else np.asarray(kappa, dtype=float)
    if kappa.shape != (correct.shape[1], correct.shape[1]):
        raise ValueError(f"kappa has shape {kappa.shape}, expected {(correct.shape[1], correct.shape[1])}")
    iu_all = np.triu_indices(correct.shape[1], 1)
    mean_all = float(kappa[iu_all].mean())
    shift = 0.0
    if max_models is not None and correct.shape[1] > max_models:
        chosen = np.sort(rng.choice(correct.shape[1], max_models, replace=False))
        sub_kappa = kappa[np.ix_(chosen, chosen)]
        shift = mean_all - float(sub_kappa[np.triu_indices(max_models, 1)].mean())
        correct = correct[:, chosen]
    n, m = correct.shape
    # images with the same correctness pattern are interchangeable: resample
    # images, then count draws per distinct pattern (exact, and with DDD far
    # fewer patterns than images)
    _, first, pattern = np.unique(
        np.packbits(correct, axis=1), axis=0, return_index=True, return_inverse=True
    )
    pattern = pattern.ravel()
    dtype = _count_dtype(n)
    c = correct[first].astype(dtype)
    iu = np.triu_indices(m, 1)
    reps = np.empty((n_bootstrap, m, m)) if per_pair else None
    means = np.empty(n_bootstrap)
    wc = np.empty_like(c)
    for r in range(n_bootstrap):
        w = np.bincount(pattern[rng.integers(0, n, n)], minlength=len(first)).astype(dtype)
        np.multiply(c, w[:, None], out=wc)
        s = wc.sum(axis=0, dtype=np.float64)
        rep = _kappa_from_counts((c.T @ wc).astype(np.float64), s[:, None], s[None, :], n)
        means[r] = rep[iu].mean() + shift
        if per_pair:
            reps[r] = rep
    alpha = (1 - confidence) / 2
    out = {
        "kappa": kappa,
        "mean_low": float(np.quantile(means, alpha)),
        "mean_high": float(np.quantile(means, 1 - alpha)),
        "replicates": means,
        "models_resampled": m,
    }
    if per_pair:
        out["low"], out["high"] = np.quantile(reps, [alpha, 1 - alpha], axis=0)
    return out


def _count_dtype(n_images: int):
    """float32 holds every partial sum of at most n_images 0/1 terms exactly below 2**24."""
    return np.float32 if n_images < 2**24 else np.float64


def _kappa_from_counts(both_right, s1, s2, n) -> np.ndarray:
    """κ from the both-right count a and the per-model correct counts s1, s2 out of n."""
    a = both_right
    b = s1 - a  # first right, second wrong
    c = s2 - a  # first wrong, second right
    d = n - s1 - s2 + a
    num = 2.0 * (a * d - b * c)
    den = s1 * (n - s2) + s2 * (n - s1)
    agree_all = (b == 0) & (c == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(agree_all, 1.0, num / np.where(den == 0, 1.0, den))
    return kappa


def cluster_order(kappa) -> np.ndarray:
    """An order of the models that puts models that err alike next to each other.

    Average-linkage clustering on the distance 1 - κ, leaves in the order of the dendrogram (optimal leaf
    ordering up to 300 models). A 1,000 x 1,000 κ matrix becomes readable in this order: blocks are
    groups of models whose errors coincide (meding2022 §3.3 reads κ between groups of models).

    Parameters
    ----------
    kappa : array-like, shape (n_models, n_models), symmetric; NaN counts as κ = 0

    Returns
    -------
    order : ndarray of int, a permutation of range(n_models)
    """
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    k = np.asarray(kappa, dtype=float)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kappa must be square, shape (n_models, n_models), got {k.shape}")
    if k.shape[0] < 3:
        return np.arange(k.shape[0])
    dist = 1.0 - np.nan_to_num((k + k.T) / 2.0, nan=0.0)
    np.fill_diagonal(dist, 0.0)
    condensed = squareform(np.clip(dist, 0.0, None), checks=False)
    tree = linkage(condensed, method="average")
    if k.shape[0] <= 300:
        tree = optimal_leaf_ordering(tree, condensed)
    return leaves_list(tree)
