"""The ensemble confusion matrix: the models' final decisions pooled over models.

Row i, column j counts the decisions (one per model and image) that took an image of
class i for class j. Over the impossible images it shows which classes those images are
taken for (a look-alike class, or a likely label error). Pure numpy.
"""

from __future__ import annotations

import numpy as np

from audit.metrics._validate import NO_ANSWER


def ensemble_confusion(predicted: np.ndarray, labels: np.ndarray, n_classes: int,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Confusion counts of the final decisions pooled over models.

    Parameters
    ----------
    predicted : ndarray of int, shape (n_images, n_models)
        Each model's final predicted class per image; NO_ANSWER (no answer) is counted in no cell.
    labels : ndarray of int, shape (n_images,)
    n_classes : int
    mask : ndarray of bool, shape (n_images,), optional
        The images to count (e.g. the impossible ones); all when None.

    Returns
    -------
    counts : ndarray of int64, shape (n_classes, n_classes)
        counts[true, predicted]; the sum is n_models times the images counted, less the decisions
        without an answer.
    """
    pred = np.asarray(predicted)
    lab = np.asarray(labels)
    if pred.ndim != 2 or len(pred) != len(lab):
        raise ValueError(f"predicted must be (n_images, n_models) with {len(lab)} rows, got shape {pred.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != lab.shape:
            raise ValueError(f"mask must have shape {lab.shape}, got {mask.shape}")
        pred, lab = pred[mask], lab[mask]
    pred = pred.astype(np.int64)
    lab = lab.astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    if pred.size and (pred.min() < NO_ANSWER or pred.max() >= n_classes):
        raise ValueError(f"predicted must lie in 0..{n_classes - 1} (or {NO_ANSWER}, no answer)")
    cells = (lab[:, None] * n_classes + pred).ravel()
    answered = (pred >= 0).ravel()  # a decision with no answer (NO_ANSWER) falls in no cell
    return np.bincount(cells[answered], minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def row_shares(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (NaN for a class with no decisions)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)


def top_confusions(counts: np.ndarray, k: int = 10) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal cells as (true class, predicted class, count), largest first; zeros left out."""
    off = np.asarray(counts).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None, kind="stable")[::-1][:k]
    rows, cols = np.unravel_index(flat, off.shape)
    return [(int(i), int(j), int(off[i, j])) for i, j in zip(rows, cols, strict=True) if off[i, j] > 0]
