"""Comparing two groups of models by the order in which they learn (hacohen2020 §4.1, Fig. 8).

The correlation of the groups' Accessibility scores, and the accuracy-matched
comparison of which images both groups, only one, or neither get right.
Pure numpy/scipy: no I/O, no prints.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from audit.metrics._validate import as_correct, as_finite


def accessibility_correlation(accessibility_a, accessibility_b) -> dict:
    """Pearson correlation of two groups' Accessibility scores (hacohen2020 §4.1, Fig. 8b–d).

    Parameters
    ----------
    accessibility_a, accessibility_b : array-like of float, shape (n_images,)
        From `audit.metrics.agreement.accessibility` of each group, same images.

    Returns
    -------
    result : dict
        "r": Pearson r in [-1, 1], higher = the groups learn the images in more
        similar order (hacohen2020 report 0.99 for two ResNet-50 groups);
        "p_value": two-sided p for r = 0; "n_images": int.
        r and p_value are NaN when either score is constant.
    """
    a = as_finite(accessibility_a, name="accessibility_a")
    b = as_finite(accessibility_b, name="accessibility_b")
    if a.shape != b.shape:
        raise ValueError(f"accessibility_a has {a.shape[0]} images but accessibility_b has {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 images to correlate, got {a.shape[0]}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"r": float("nan"), "p_value": float("nan"), "n_images": int(a.shape[0])}
    res = stats.pearsonr(a, b)
    return {"r": float(res.statistic), "p_value": float(res.pvalue), "n_images": int(a.shape[0])}


def accuracy_matched_comparison(correct_a, correct_b, *, accuracy_window: float = 0.01) -> dict:
    """Compare two groups at epochs of matching accuracy (hacohen2020 §4.1, footnote 5, Fig. 8a).

    Each group is summarised by one decision per image and epoch (usually its
    majority-vote ensemble, `audit.metrics.agreement.majority_vote_correct`).
    For every epoch i of group a, the epoch j of group b with the closest
    accuracy is its match when |acc_a[i] - acc_b[j]| <= accuracy_window. Epochs of a
    whose accuracy exceeds b's best by more than the window are compared with
    b's final epoch and flagged `beyond` (Fig. 8a, right of the dashed line).
    Other epochs of a have no match and are left out.

    Parameters
    ----------
    correct_a : array-like of bool, shape (n_images, n_epochs_a)
    correct_b : array-like of bool, shape (n_images, n_epochs_b)
    accuracy_window : float, default 0.01
        Accuracy difference allowed between matched epochs (±1 % in the paper).

    Returns
    -------
    comparison : dict of ndarray, each of shape (n_pairs,)
        "epoch_a", "epoch_b": epoch indices; "accuracy_a", "accuracy_b";
        "both", "only_a", "only_b", "neither": image counts (they sum to
        n_images); "beyond": bool. A high "both" with low "only_a" and
        "only_b" = the groups learn the same images.
    """
    a = as_correct(correct_a, name="correct_a")
    b = as_correct(correct_b, name="correct_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"correct_a has {a.shape[0]} images but correct_b has {b.shape[0]}")
    if not (isinstance(accuracy_window, int | float) and np.isfinite(accuracy_window) and 0 <= accuracy_window <= 1):
        raise ValueError(f"accuracy_window must be a number in [0, 1], got {accuracy_window!r}")
    acc_a, acc_b = a.mean(axis=0), b.mean(axis=0)
    rows = []
    for i, acc in enumerate(acc_a):
        j = int(np.argmin(np.abs(acc_b - acc)))
        if abs(acc_b[j] - acc) <= accuracy_window + 1e-12:
            rows.append((i, j, False))
        elif acc > acc_b.max() + accuracy_window:
            rows.append((i, b.shape[1] - 1, True))
    ia = np.array([r[0] for r in rows], dtype=np.int64)
    ib = np.array([r[1] for r in rows], dtype=np.int64)
    xa, xb = a[:, ia], b[:, ib]
    return {
        "epoch_a": ia,
        "epoch_b": ib,
        "accuracy_a": acc_a[ia],
        "accuracy_b": acc_b[ib],
        "both": np.count_nonzero(xa & xb, axis=0),
        "only_a": np.count_nonzero(xa & ~xb, axis=0),
        "only_b": np.count_nonzero(~xa & xb, axis=0),
        "neither": np.count_nonzero(~xa & ~xb, axis=0),
        "beyond": np.array([r[2] for r in rows], dtype=bool),
    }
