"""The DDD split (trivial / impossible / inconclusive), its nulls, and per-class accuracy.

Implements meding2022 §3.1–3.2, Fig. 2 and 17 (split and binomial null) and A.6
(per-class accuracy). Pure numpy/scipy over correctness arrays: no I/O, no prints.
The split is always decided by counts with a tolerance t, never by the distinct
values of n_correct that happen to occur.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

from audit.metrics._validate import as_correct, as_finite, as_labels

#: The three categories of the DDD split, in the order every table and figure shows them.
CATEGORIES = ("trivial", "inconclusive", "impossible")

__all__ = ["CATEGORIES", "Split", "check_tolerance", "max_tolerance", "usable_tolerance", "split_masks",
           "split_from_counts"]


def check_tolerance(tolerance, n_models: int) -> int:
    """Check the trivial/impossible tolerance t against M models (needs M - t > t)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | np.integer):
        raise ValueError(f"tolerance must be an int, got {tolerance!r}")
    tolerance = int(tolerance)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if n_models - tolerance <= tolerance:
        raise ValueError(
            f"tolerance={tolerance} with {n_models} model(s) makes trivial (n_correct >= {n_models - tolerance}) "
            f"and impossible (n_correct <= {tolerance}) overlap; expected n_models > 2 * tolerance, "
            f"i.e. tolerance <= {max_tolerance(n_models)}"
        )
    return tolerance


def max_tolerance(n_models: int) -> int:
    """The largest tolerance M models allow, (M - 1) // 2, so that trivial and impossible stay apart."""
    return max((int(n_models) - 1) // 2, 0)


def usable_tolerance(tolerance: int, n_models: int) -> int:
    """The tolerance the split can use with M models: `tolerance`, or (M - 1) // 2 when M <= 2 t.

    With too few models for the wanted t, trivial (n_correct >= M - t) and impossible
    (n_correct <= t) would overlap; the report then uses the largest t that keeps them apart and
    says so. Raises ValueError for a tolerance that is not an int >= 0.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | np.integer) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0, got {tolerance!r}")
    if n_models < 1:
        raise ValueError(f"n_models must be at least 1, got {n_models!r}")
    return min(int(tolerance), max_tolerance(n_models))


def split_masks(n_correct, n_models: int, *, tolerance: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The trivial and impossible masks of the DDD split (meding2022 §3.1-3.2), from counts.

    Returns
    -------
    trivial, impossible : ndarray of bool, shape (n_images,)
        n_correct >= M - t and n_correct <= t. Raises ValueError when they would overlap (M <= 2 t).
    """
    counts = _check_counts(n_correct, n_models)
    t = check_tolerance(tolerance, n_models)
    return counts >= n_models - t, counts <= t


@dataclass(frozen=True, eq=False)
class Split:
    """The DDD split of a set of images, as one immutable value (meding2022 §3.1-3.2).

    Made with `Split.from_correct(correct, tolerance)` or `Split.from_counts(n_correct, n_models, tolerance)`.
    The one tolerance policy of the tool: a tolerance that is not an int >= 0 raises ValueError; one too
    large for the models (M <= 2 t, where trivial and impossible would overlap) is lowered to (M - 1) // 2,
    and `clipped` and `note` say so. A caller that must not lower it (a study's design) checks `clipped`.

    Attributes
    ----------
    n_correct : ndarray of int64, shape (n_images,), read-only
    n_models : int
    tolerance : int
        The tolerance asked for.
    tolerance_used : int
        The tolerance the split uses: trivial when n_correct >= M - t, impossible when n_correct <= t.
    """

    n_correct: np.ndarray
    n_models: int
    tolerance: int
    tolerance_used: int

    @classmethod
    def from_counts(cls, n_correct, n_models: int, tolerance: int = 1) -> Split:
        """The split of images that `n_correct` of `n_models` models classify correctly."""
        counts = _check_counts(n_correct, n_models).copy()
        counts.flags.writeable = False
        return cls(counts, int(n_models), int(tolerance), usable_tolerance(tolerance, n_models))

    @classmethod
    def from_correct(cls, correct, tolerance: int = 1) -> Split:
        """The split of a correctness matrix of shape (n_images, n_models)."""
        correct = as_correct(correct)
        return cls.from_counts(correct.sum(axis=1, dtype=np.int64), correct.shape[1], tolerance)

    def at(self, tolerance: int) -> Split:
        """The same images and models split at another tolerance."""
        return Split(self.n_correct, self.n_models, int(tolerance), usable_tolerance(tolerance, self.n_models))

    @property
    def clipped(self) -> bool:
        """Whether the tolerance asked for was lowered to fit the models."""
        return self.tolerance_used < self.tolerance

    @property
    def note(self) -> str | None:
        """The report's note when the tolerance was lowered, else None."""
        if not self.clipped:
            return None
        return (f"tolerance {self.tolerance} needs more than {2 * self.tolerance} models; with {self.n_models} "
                f"the split uses tolerance {self.tolerance_used}")

    @cached_property
    def categories(self) -> np.ndarray:
        """Each image's category, "trivial", "inconclusive" or "impossible" (read-only)."""
        out = split_from_counts(self.n_correct, self.n_models, tolerance=self.tolerance_used)
        out.flags.writeable = False
        return out

    def mask(self, category: str) -> np.ndarray:
        """The images of one category, as a boolean mask."""
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
        return self.categories == category

    @property
    def counts(self) -> dict[str, int]:
        """{category: number of images}."""
        return {c: int(np.count_nonzero(self.categories == c)) for c in CATEGORIES}

    @property
    def shares(self) -> dict[str, float]:
        """{category: share of images}, summing to 1."""
        return category_shares(self.categories)

    def __len__(self) -> int:
        return int(self.n_correct.shape[0])


def n_correct(correct) -> np.ndarray:
    """Number of models that classify each image correctly.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models)

    Returns
    -------
    n_correct : ndarray of int64, shape (n_images,)
        Range 0..n_models; higher = easier (meding2022 Fig. 2, x-axis).
    """
    correct = as_correct(correct)
    return correct.sum(axis=1, dtype=np.int64)


def difficulty_split(correct, *, tolerance: int = 1) -> np.ndarray:
    """Label each image trivial, impossible or inconclusive (meding2022 §3.1–3.2).

    With M models and tolerance t, an image is ``"trivial"`` when
    n_correct >= M - t, ``"impossible"`` when n_correct <= t, and
    ``"inconclusive"`` otherwise. t = 1 is the paper's SOTA analysis ("all but
    one"), t = 0 the strict definition. The thresholds come from M and t only,
    so the split does not shift when some count (e.g. M - 1) never occurs.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models)
    tolerance : int, default 1
        Must satisfy M > 2 t; otherwise the two ends overlap and a ValueError
        is raised (e.g. 2 models with t = 1, or 1 model with t >= 1).

    Returns
    -------
    categories : ndarray of str, shape (n_images,)
        Values are exactly "trivial", "impossible" or "inconclusive".
    """
    correct = as_correct(correct)
    return split_from_counts(correct.sum(axis=1), correct.shape[1], tolerance=tolerance)


def split_from_counts(n_correct, n_models: int, *, tolerance: int = 1) -> np.ndarray:
    """Same as `difficulty_split`, from n_correct counts out of `n_models`.

    Parameters
    ----------
    n_correct : array-like of int, shape (n_images,), values in 0..n_models
    n_models : int
    tolerance : int, default 1

    Returns
    -------
    categories : ndarray of str, shape (n_images,)
    """
    trivial, impossible = split_masks(n_correct, n_models, tolerance=tolerance)
    out = np.full(trivial.shape, "inconclusive", dtype="<U12")
    out[trivial] = "trivial"
    out[impossible] = "impossible"
    return out


def category_shares(categories) -> dict:
    """Share of images in each category.

    Parameters
    ----------
    categories : array-like of str, shape (n_images,)
        Output of `difficulty_split`.

    Returns
    -------
    shares : dict
        {"trivial": float, "impossible": float, "inconclusive": float}, each in
        [0, 1], summing to 1.
    """
    cats = np.asarray(categories)
    if cats.ndim != 1 or cats.size == 0:
        raise ValueError(f"categories must be a non-empty array of shape (n_images,), got shape {cats.shape}")
    unknown = set(np.unique(cats).tolist()) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"categories must be one of {CATEGORIES}, found {sorted(unknown)}")
    return {c: float(np.mean(cats == c)) for c in CATEGORIES}


def histogram(correct) -> np.ndarray:
    """Observed histogram of n_correct (meding2022 Fig. 2, blue bars).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models)

    Returns
    -------
    counts : ndarray of int64, shape (n_models + 1,)
        counts[k] = number of images that exactly k models classify correctly.
    """
    correct = as_correct(correct)
    return np.bincount(correct.sum(axis=1), minlength=correct.shape[1] + 1).astype(np.int64)


def binomial_null(correct) -> np.ndarray:
    """Expected n_correct histogram for independent models (meding2022 Fig. 2 and 17, green).

    n_correct ~ Binomial(M, p) with p the mean accuracy over all models and
    images, i.e. every image equally difficult and every model independent.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models)

    Returns
    -------
    expected : ndarray of float, shape (n_models + 1,)
        Expected number of images at each count 0..M; sums to n_images.
    """
    correct = as_correct(correct)
    n_images, n_models = correct.shape
    p = float(correct.mean())
    return n_images * stats.binom.pmf(np.arange(n_models + 1), n_models, p)


class BetaBinomialFit(NamedTuple):
    """Result of `fit_beta_binomial`.

    alpha, beta : the Beta(α, β) prior on per-image accuracy.
    mean : α / (α + β), the fitted mean accuracy.
    overdispersion : ρ = 1 / (α + β + 1) in [0, 1]; 0 = binomial (all images
        equally difficult), 1 = every image trivial or impossible.
    expected : ndarray, shape (n_models + 1,), expected image counts at 0..M.
    log_likelihood : float, at the fitted parameters.
    """

    alpha: float
    beta: float
    mean: float
    overdispersion: float
    expected: np.ndarray
    log_likelihood: float


_LOG_BOUNDS = (-12.0, 16.0)


def fit_beta_binomial(n_correct, n_models: int) -> BetaBinomialFit:
    """Maximum-likelihood beta-binomial fit to the n_correct histogram.

    A null with one parameter more than the binomial: each image has its own
    accuracy q ~ Beta(α, β) and n_correct | q ~ Binomial(M, q), with models
    independent given q. It captures graded image difficulty; mass beyond it at
    0 and M indicates DDD (meding2022 §3.1 discusses the two extremes between
    which the observed histogram lies).

    Parameters
    ----------
    n_correct : array-like of int, shape (n_images,)
        Values in 0..n_models.
    n_models : int
        M, the number of models (>= 1).

    Returns
    -------
    fit : BetaBinomialFit
        When the data are no more spread than a binomial, α + β runs to the
        upper bound (e^16) and the fit equals the binomial null; when every
        image has n_correct in {0, M}, α and β run to the lower bound (e^-12).
        Both ends are reported as found, not raised.
    """
    counts = _check_counts(n_correct, n_models)
    hist = np.bincount(counts, minlength=n_models + 1).astype(float)
    n_images = hist.sum()
    k = np.arange(n_models + 1)
    mean = float((k * hist).sum() / (n_images * n_models))

    def nll(theta):
        a, b = np.exp(theta)
        return -float((hist * stats.betabinom.logpmf(k, n_models, a, b)).sum())

    # method-of-moments start, clipped into the bounds
    var = float((hist * (k - mean * n_models) ** 2).sum() / n_images)
    p = min(max(mean, 1e-6), 1 - 1e-6)
    binom_var = n_models * p * (1 - p)
    rho = (var / binom_var - 1) / (n_models - 1) if n_models > 1 and binom_var > 0 else 0.5
    rho = min(max(rho, 1e-6), 1 - 1e-6)
    s = 1 / rho - 1
    start = np.clip(np.log([p * s, (1 - p) * s]), *_LOG_BOUNDS)
    res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[_LOG_BOUNDS, _LOG_BOUNDS])
    a, b = (float(v) for v in np.exp(res.x))
    expected = n_images * stats.betabinom.pmf(k, n_models, a, b)
    return BetaBinomialFit(
        alpha=a,
        beta=b,
        mean=a / (a + b),
        overdispersion=1 / (a + b + 1),
        expected=expected,
        log_likelihood=-float(res.fun),
    )


def histogram_shares(counts, *, tolerance: int = 1) -> dict:
    """Category shares implied by a histogram over n_correct = 0..M.

    Works for the observed histogram and for the expected histograms of the
    binomial and beta-binomial nulls, so the three can be compared.

    Parameters
    ----------
    counts : array-like of float, shape (n_models + 1,)
    tolerance : int, default 1

    Returns
    -------
    shares : dict
        {"trivial", "impossible", "inconclusive"}: shares in [0, 1], sum 1.
    """
    counts = as_finite(counts, name="counts")
    if len(counts) < 2:
        raise ValueError(
            f"counts must cover n_correct = 0..n_models with n_models >= 1, got length {len(counts)}"
        )
    if (counts < 0).any():
        raise ValueError("counts must be >= 0")
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts sum to 0; expected at least one image")
    n_models = len(counts) - 1
    at_trivial, at_impossible = split_masks(np.arange(n_models + 1), n_models, tolerance=tolerance)
    trivial = counts[at_trivial].sum() / total
    impossible = counts[at_impossible].sum() / total
    return {
        "trivial": float(trivial),
        "impossible": float(impossible),
        "inconclusive": float(max(0.0, 1 - trivial - impossible)),
    }


def per_class_accuracy(correct, labels, n_classes: int) -> np.ndarray:
    """Accuracy of each model on each class (meding2022 A.6, Fig. 15).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models)
    labels : array-like of int, shape (n_images,), values in 0..n_classes-1
    n_classes : int

    Returns
    -------
    accuracy : ndarray of float, shape (n_classes, n_models)
        In [0, 1], higher = easier class. NaN for a class with no images.
    """
    correct = as_correct(correct)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int, got {n_classes!r}")
    labels = as_labels(labels, n_images=correct.shape[0], n_classes=int(n_classes))
    sizes = np.bincount(labels, minlength=n_classes).astype(float)
    hits = np.stack(
        [np.bincount(labels, weights=correct[:, m], minlength=n_classes) for m in range(correct.shape[1])],
        axis=1,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / sizes[:, None]


def easiest_hardest_classes(class_accuracy, *, k: int = 10) -> dict:
    """The k easiest and k hardest classes (meding2022 A.6, Table 1).

    Parameters
    ----------
    class_accuracy : array-like of float, shape (n_classes,) or (n_classes, n_models)
        From `per_class_accuracy`; with several models the mean over models
        ranks the classes. Classes with NaN accuracy (no images) are skipped.
    k : int, default 10

    Returns
    -------
    classes : dict
        {"easiest": ndarray of class indices, highest accuracy first,
         "hardest": ndarray of class indices, lowest accuracy first}.
        Ties keep class-index order.
    """
    acc = np.asarray(class_accuracy, dtype=float)
    if acc.ndim not in (1, 2) or acc.size == 0:
        raise ValueError(
            f"class_accuracy must have shape (n_classes,) or (n_classes, n_models), got {acc.shape}"
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    score = acc.mean(axis=1) if acc.ndim == 2 else acc
    valid = np.flatnonzero(~np.isnan(score))
    if valid.size == 0:
        raise ValueError("class_accuracy has no class with a defined (non-NaN) accuracy")
    hardest = valid[np.argsort(score[valid], kind="stable")]
    easiest = valid[np.argsort(-score[valid], kind="stable")]
    return {"easiest": easiest[:k], "hardest": hardest[:k]}


def near_chance(correct, labels, *, margin: float = 0.05, alpha: float = 0.01) -> dict:
    """Which models classify no better than chance, whose split, dynamics and κ say little.

    Chance is the accuracy of always answering the most common class. A model
    is near chance when its accuracy is below chance + `margin`, or when a
    one-sided exact binomial test cannot reject "accuracy <= chance" at level
    `alpha` (so a handful of images never clears the bar by luck).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models)
    labels : array-like of int, shape (n_images,)
    margin : float, default 0.05
    alpha : float, default 0.01

    Returns
    -------
    result : dict
        {"chance": float, "near_chance": ndarray of bool, shape (n_models,)}.
    """
    correct = as_correct(correct)
    labels = as_labels(labels, n_images=correct.shape[0])
    if not 0 <= margin < 1 or not 0 < alpha < 1:
        raise ValueError(f"margin must lie in [0, 1) and alpha in (0, 1), got {margin!r} and {alpha!r}")
    n_images = correct.shape[0]
    chance = float(np.bincount(labels).max() / n_images)
    hits = correct.sum(axis=0)
    p_values = stats.binom.sf(hits - 1, n_images, chance)  # P(X >= hits) under chance
    flags = (hits / n_images < chance + margin) | (p_values > alpha)
    return {"chance": chance, "near_chance": np.asarray(flags, dtype=bool)}


def _check_counts(n_correct, n_models) -> np.ndarray:
    if isinstance(n_models, bool) or not isinstance(n_models, int | np.integer) or n_models < 1:
        raise ValueError(f"n_models must be a positive int, got {n_models!r}")
    counts = np.asarray(n_correct)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(
            f"n_correct must be a non-empty array of shape (n_images,), got shape {counts.shape}"
        )
    if counts.dtype.kind == "f":
        if np.isnan(counts).any():
            raise ValueError("n_correct contains NaN; expected integer counts")
        if (counts != np.round(counts)).any():
            raise ValueError("n_correct must hold integer counts, found fractions")
    elif counts.dtype.kind not in "iu":
        raise ValueError(f"n_correct must hold integer counts, got dtype {counts.dtype}")
    counts = counts.astype(np.int64)
    if counts.min() < 0 or counts.max() > n_models:
        raise ValueError(
            f"n_correct must lie in 0..{n_models}, found range {int(counts.min())}..{int(counts.max())}"
        )
    return counts
