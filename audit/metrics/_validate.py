"""Input checks shared by the public metric functions.

Each check raises ValueError naming what was expected and what was found.
No arithmetic beyond what the checks need, no I/O.
"""

from __future__ import annotations

import numpy as np

#: A predicted class that is no answer among the classes (model-vs-human's `na`, no answer in time): a wrong
#: decision that matches no label and no other answer. Confusion counts and majority votes leave it out.
NO_ANSWER = -1


def as_correct(
    correct, *, name: str = "correct", ndim: tuple[int, ...] = (2,), min_models: int = 1
) -> np.ndarray:
    """Return `correct` as a bool array after checking shape and values.

    Accepts bool arrays or numeric arrays holding only 0 and 1. Axis 0 is
    images and axis 1 (when present) is models.
    """
    arr = np.asarray(correct)
    if arr.ndim not in ndim:
        shapes = " or ".join(_shape_name(n) for n in ndim)
        raise ValueError(f"{name} must have shape {shapes}, got an array of shape {arr.shape}")
    if arr.size == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one image")
    if arr.ndim >= 2 and arr.shape[1] < min_models:
        raise ValueError(
            f"{name} has {arr.shape[1]} model(s) (shape {arr.shape}); expected at least {min_models}"
        )
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be bool or 0/1 numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(
            f"{name} contains NaN at {int(np.isnan(arr).sum())} position(s); expected only 0 and 1"
        )
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        raise ValueError(f"{name} must hold only 0 and 1, found {arr[bad].flat[0]!r}")
    return arr.astype(bool)


def as_finite(values, *, name: str, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    """Return `values` as a float array after checking shape, emptiness and NaN."""
    arr = np.asarray(values)
    if arr.ndim not in ndim:
        shapes = " or ".join(_shape_name(n, "n_values") for n in ndim)
        raise ValueError(f"{name} must have shape {shapes}, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    return arr


def as_labels(
    labels, *, name: str = "labels", n_images: int | None = None, n_classes: int | None = None
) -> np.ndarray:
    """Return integer class labels after checking length and range."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n_images,), got an array of shape {arr.shape}")
    if n_images is not None and len(arr) != n_images:
        raise ValueError(f"correct has {n_images} images but {name} has {len(arr)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer class indices, found non-integer or NaN values")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{name} must be >= 0, found {int(arr.min())}")
    if n_classes is not None and arr.max() >= n_classes:
        raise ValueError(f"{name} must be < n_classes={n_classes}, found {int(arr.max())}")
    return arr.astype(np.int64, copy=False)


def _shape_name(ndim: int, first: str = "n_images") -> str:
    names = {1: f"({first},)", 2: f"({first}, n_models)", 3: f"({first}, n_models, n_epochs)"}
    return names.get(ndim, f"{ndim}-d")
