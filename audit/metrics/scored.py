"""New models scored on an audit's split: accuracy per category, error consistency with the audit's models, and
the rank on all images beside the rank on the inconclusive ones (meding2022 §3.3, §4).

The split stays the audit's: the categories come in as an argument and the scored models never change them.
Pure numpy, scipy and pandas: no I/O, no prints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from audit.metrics._validate import as_correct
from audit.metrics.consistency import _kappa_from_counts
from audit.metrics.difficulty import CATEGORIES
from audit.metrics.makers import wilson_interval

#: The subsets on which a scored model's mean error consistency with the audit's models is given.
KAPPA_SUBSETS = ("all", "inconclusive")


def scored_table(scored_correct, audit_correct, categories, *, names: Sequence[str] | None = None,
                 audit_names: Sequence[str] | None = None, n_bootstrap: int = 200, confidence: float = 0.95,
                 random_state: int | None = 0) -> pd.DataFrame:
    """One row per scored model: how it fares on the audit's split, beside the audit's own models.

    meding2022 §3.3 predicts that models which look alike on all images differ on the inconclusive
    ones: their error consistency falls towards 0 and their order by accuracy can change. So each
    scored model gets its accuracy on all images and on each category (Wilson intervals), its mean
    error consistency κ with the audit's models on all images and on the inconclusive ones (percentile
    bootstrap over images), and its rank by accuracy among the audit's models and the scored ones
    on all images and on the inconclusive images (1 = most accurate; ties share the best rank).

    Parameters
    ----------
    scored_correct : array-like of bool, shape (n_images, n_scored)
    audit_correct : array-like of bool, shape (n_images, n_models)
        The audit's own models, which make the split.
    categories : array-like of str, shape (n_images,)
        The audit's split: "trivial", "inconclusive" or "impossible" per image.
    names, audit_names : sequence of str, optional
        Names of the scored and of the audit's models (default "scored_0", ... and "model_0", ...).
    n_bootstrap : int, default 200
        Bootstrap replicates (images drawn with replacement) for the κ intervals; 0 leaves them NaN.
    confidence : float in (0, 1), default 0.95
    random_state : int, Generator or None

    Returns
    -------
    table : DataFrame, one row per scored model
        model; n_images, accuracy, accuracy_low, accuracy_high; for each category C: C_n,
        C_accuracy, C_low, C_high (NaN where C has no image); kappa_all, kappa_all_low,
        kappa_all_high, kappa_inconclusive, ... (mean κ over the audit's models, in [-1, 1];
        higher = errs on the same images; NaN without an audit model or an inconclusive image);
        rank_all, rank_inconclusive (of n_ranked makers; NaN without inconclusive images),
        rank_change = rank_all - rank_inconclusive (> 0: the model climbs on the inconclusive images).
    """
    scored = as_correct(scored_correct, name="scored_correct")
    audit = as_correct(audit_correct, name="audit_correct")
    n_images, n_scored = scored.shape
    if audit.shape[0] != n_images:
        raise ValueError(f"scored_correct has {n_images} images but audit_correct has {audit.shape[0]}")
    categories = np.asarray(categories).astype(str)
    if categories.shape != (n_images,):
        raise ValueError(f"categories must have shape ({n_images},), got {categories.shape}")
    unknown = sorted(set(np.unique(categories)) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"categories must be one of {CATEGORIES}, found {unknown[0]!r}")
    names = _names(names, n_scored, "scored", "names")
    audit_names = _names(audit_names, audit.shape[1], "model", "audit_names")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(random_state)

    table = pd.DataFrame({"model": names, "n_images": n_images})
    _accuracy_columns(table, "", scored, confidence)
    for c in CATEGORIES:
        _accuracy_columns(table, f"{c}_", scored[categories == c], confidence)
    for subset in KAPPA_SUBSETS:
        mask = np.ones(n_images, bool) if subset == "all" else categories == subset
        mean, low, high = _mean_kappa(scored[mask], audit[mask], n_bootstrap, confidence, rng)
        table[f"kappa_{subset}"], table[f"kappa_{subset}_low"], table[f"kappa_{subset}_high"] = mean, low, high
    ranks = accuracy_ranks(np.concatenate([audit, scored], axis=1), categories)
    table["rank_all"] = ranks["rank_all"].to_numpy()[audit.shape[1]:]
    table["rank_inconclusive"] = ranks["rank_inconclusive"].to_numpy()[audit.shape[1]:]
    table["rank_change"] = table["rank_all"] - table["rank_inconclusive"]
    table["n_ranked"] = audit.shape[1] + n_scored
    return table


def accuracy_ranks(correct, categories) -> pd.DataFrame:
    """Each maker's accuracy and rank on all images and on the inconclusive ones (meding2022 §3.3).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_makers)
    categories : array-like of str, shape (n_images,)

    Returns
    -------
    ranks : DataFrame, one row per maker, in the order of `correct`'s columns
        accuracy_all, accuracy_inconclusive (NaN without inconclusive images), rank_all,
        rank_inconclusive: 1 = most accurate; ties share the best rank ("min" ranking).
    """
    correct = as_correct(correct)
    categories = np.asarray(categories).astype(str)
    if categories.shape != (correct.shape[0],):
        raise ValueError(f"categories must have shape ({correct.shape[0]},), got {categories.shape}")
    inconclusive = correct[categories == "inconclusive"]
    frame = pd.DataFrame({"accuracy_all": correct.mean(axis=0),
                          "accuracy_inconclusive": inconclusive.mean(axis=0) if len(inconclusive)
                          else np.full(correct.shape[1], np.nan)})
    for subset in KAPPA_SUBSETS:
        frame[f"rank_{subset}"] = frame[f"accuracy_{subset}"].rank(method="min", ascending=False)
    return frame


def _names(names, n: int, prefix: str, what: str) -> list[str]:
    if names is None:
        return [f"{prefix}_{i}" for i in range(n)]
    names = [str(x) for x in names]
    if len(names) != n:
        raise ValueError(f"{what} has {len(names)} entries but there are {n} models")
    return names


def _accuracy_columns(table: pd.DataFrame, prefix: str, correct: np.ndarray, confidence: float) -> None:
    """k/n with its Wilson interval, per model (NaN where n = 0)."""
    n = correct.shape[0]
    k = correct.sum(axis=0)
    low, high = wilson_interval(k, np.full(k.shape, n), confidence=confidence)
    if prefix:
        table[f"{prefix}n"] = n
    table[f"{prefix}accuracy"] = k / n if n else np.nan
    table[f"{prefix}low" if prefix else "accuracy_low"] = low
    table[f"{prefix}high" if prefix else "accuracy_high"] = high


def _mean_kappa(scored: np.ndarray, audit: np.ndarray, n_bootstrap: int, confidence: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean κ of each scored model with the audit's models, and its percentile bootstrap bounds.

    Each replicate draws the images with replacement, the same draw for every model. Images with
    the same correctness pattern are pooled, so a replicate costs one product over the patterns.
    """
    n_scored = scored.shape[1]
    nan = np.full(n_scored, np.nan)
    n, n_audit = audit.shape
    if n == 0 or n_audit == 0:
        return nan, nan.copy(), nan.copy()
    both = np.concatenate([scored, audit], axis=1)
    patterns, pattern = np.unique(both, axis=0, return_inverse=True)
    pattern = pattern.ravel()
    s, a = patterns[:, :n_scored].astype(float), patterns[:, n_scored:].astype(float)

    def mean_kappa(weights: np.ndarray) -> np.ndarray:
        """weights (n_rep, n_patterns) -> mean κ (n_rep, n_scored)."""
        ws = weights[:, :, None] * s[None]  # (n_rep, n_patterns, n_scored)
        both_right = np.einsum("rps,pm->rsm", ws, a)
        s1 = ws.sum(axis=1)[:, :, None]
        s2 = (weights @ a)[:, None, :]
        return _kappa_from_counts(both_right, s1, s2, n).mean(axis=2)

    point = mean_kappa(np.bincount(pattern, minlength=len(patterns))[None].astype(float))[0]
    if n_bootstrap == 0:
        return point, nan, nan.copy()
    reps = []
    for start in range(0, n_bootstrap, 50):  # 50 replicates at a time keeps memory small
        draws = rng.integers(0, n, (min(50, n_bootstrap - start), n))
        weights = np.stack([np.bincount(pattern[d], minlength=len(patterns)) for d in draws]).astype(float)
        reps.append(mean_kappa(weights))
    reps = np.concatenate(reps)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha], axis=0)
    return point, low, high
