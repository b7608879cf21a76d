"""Decision makers who saw different images: humans beside models (meding2022 §4).

A human observer usually sees part of the images. Here a maker's decisions come with a `decided`
mask: a missing decision is missing, not wrong. Error consistency between two makers uses the
images both decided (Geirhos et al. 2020, as in meding2022 §2), and accuracy counts a maker's own
decisions. Pure numpy and scipy.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from audit.metrics._validate import as_correct


def _as_decided(decided, shape) -> np.ndarray:
    decided = np.asarray(decided, dtype=bool)
    if decided.shape != shape:
        raise ValueError(f"decided must have the shape of correct {shape}, got {decided.shape}")
    return decided


def wilson_interval(k, n, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion k/n (NaN where n = 0).

    Parameters
    ----------
    k, n : array-like of int
        Successes and trials.
    confidence : float, default 0.95

    Returns
    -------
    low, high : ndarray of float
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= k <= n")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def masked_error_consistency(correct, decided) -> tuple[np.ndarray, np.ndarray]:
    """Error consistency κ of every pair of makers on the images both decided.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_makers)
        Where a maker did not decide, the value is ignored.
    decided : array-like of bool, shape (n_images, n_makers)

    Returns
    -------
    kappa : ndarray of float, shape (n_makers, n_makers)
        NaN for a pair with no shared image, or whose expected agreement is 1 while the observed
        one is not; 1 where the observed agreement is 1. The diagonal is 1 for a maker with decisions.
    n_shared : ndarray of int, shape (n_makers, n_makers)
    """
    c = as_correct(correct).astype(float)
    d = _as_decided(decided, c.shape).astype(float)
    right = c * d
    wrong = (1 - c) * d
    n = d.T @ d
    both_right = right.T @ right
    both_wrong = wrong.T @ wrong
    right_a = right.T @ d  # [a, b]: a right, on the images both decided
    with np.errstate(invalid="ignore", divide="ignore"):
        p_a = right_a / n
        p_b = p_a.T
        c_obs = (both_right + both_wrong) / n
        c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
        kappa = (c_obs - c_exp) / (1 - c_exp)
    kappa = np.where(np.isclose(c_obs, 1.0), 1.0, kappa)
    kappa = np.where(n > 0, kappa, np.nan)
    return kappa, n.astype(np.int64)


def group_consistency(kappa, groups) -> dict:
    """Mean κ within each group and between each pair of groups (off-diagonal pairs, NaN skipped).

    Parameters
    ----------
    kappa : ndarray of float, shape (n_makers, n_makers)
    groups : sequence of str, length n_makers, e.g. "model" or "human"

    Returns
    -------
    means : dict
        {"model-model": float, "human-human": float, "human-model": float, ...}: the key names the two
        groups in sorted order; NaN where a group has fewer than two members or no pair shares images.
    """
    kappa = np.asarray(kappa, dtype=float)
    groups = np.asarray(groups)
    if kappa.shape != (len(groups), len(groups)):
        raise ValueError(f"kappa has shape {kappa.shape} but there are {len(groups)} groups")
    names = sorted(set(groups.tolist()))
    out = {}
    off = ~np.eye(len(groups), dtype=bool)
    for i, a in enumerate(names):
        for b in names[i:]:
            mask = np.outer(groups == a, groups == b) & off
            values = kappa[mask]
            values = values[~np.isnan(values)]
            out[f"{a}-{b}"] = float(values.mean()) if values.size else float("nan")
    return out


def accuracy_by_category(correct, decided, categories, order) -> dict:
    """Each maker's accuracy on each category of images, over its own decisions, with Wilson intervals.

    Returns
    -------
    table : dict
        {category: {"k": ndarray (n_makers,), "n": ndarray, "accuracy": ndarray, "low": ndarray,
        "high": ndarray}} for each category in `order`; accuracy NaN where n = 0.
    """
    c = as_correct(correct)
    d = _as_decided(decided, c.shape)
    categories = np.asarray(categories)
    if categories.shape != (c.shape[0],):
        raise ValueError(f"categories must have shape ({c.shape[0]},), got {categories.shape}")
    out = {}
    for cat in order:
        rows = categories == cat
        n = d[rows].sum(axis=0)
        k = (c & d)[rows].sum(axis=0)
        low, high = wilson_interval(k, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = k / n
        out[cat] = {"k": k, "n": n, "accuracy": np.where(n > 0, acc, np.nan), "low": low, "high": high}
    return out
