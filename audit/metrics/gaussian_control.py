"""The Gaussian control's check (meding2022 A.4-A.5): class accuracy should follow the KL divergence
between neighbouring classes.

Class i (1-based) is noise of standard deviation sigma_i = i; eq. (1) gives
KL(Class_i, Class_{i+1}) = log(sigma_{i+1} / sigma_i) + sigma_i^2 / (2 sigma_{i+1}^2) - 1/2,
which falls as sigma rises, so the classes of small sigma are the easy ones.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def gaussian_kl(sigma_a: np.ndarray, sigma_b: np.ndarray) -> np.ndarray:
    """KL(N(0, sigma_a^2) || N(0, sigma_b^2)) per pixel, meding2022 A.5 eq. (1)."""
    sigma_a, sigma_b = np.asarray(sigma_a, dtype=float), np.asarray(sigma_b, dtype=float)
    return np.log(sigma_b / sigma_a) + sigma_a**2 / (2 * sigma_b**2) - 0.5


def nearest_neighbour_kl(n_classes: int) -> np.ndarray:
    """For each class, eq. (1)'s KL divergence for the nearer of the neighbouring pairs it belongs to.

    Eq. (1) gives KL(Class_i, Class_{i+1}) for each neighbouring pair; a class takes the smaller of its
    (one or two) pairs, so the last class shares the value of the pair (n - 1, n).
    """
    if n_classes < 2:
        raise ValueError(f"the Gaussian control needs at least 2 classes, got {n_classes}")
    sigma = np.arange(1, n_classes + 1, dtype=float)
    pairs = gaussian_kl(sigma[:-1], sigma[1:])
    return np.minimum(np.r_[pairs, np.inf], np.r_[np.inf, pairs])


def kl_accuracy_correlation(class_accuracy: np.ndarray) -> float:
    """Spearman's rho between per-class accuracy (class i at index i - 1) and `nearest_neighbour_kl`."""
    class_accuracy = np.asarray(class_accuracy, dtype=float)
    if class_accuracy.ndim != 1 or len(class_accuracy) < 2:
        raise ValueError(f"give one accuracy per class (at least 2), got shape {class_accuracy.shape}")
    return float(spearmanr(class_accuracy, nearest_neighbour_kl(len(class_accuracy)))[0])
