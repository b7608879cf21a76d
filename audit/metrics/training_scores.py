"""Per-image difficulty scores from the training dynamics: cartography, EL2N, AUM, forgetting, first learned.

Each score comes from the decisions recorded at every epoch, averaged over the models, so that it
can stand beside DDD's split. The papers score the *training* images of one run; the audit scores
held-out images (the validation split), which no model was trained on. Pure numpy: no I/O, no prints.
Inputs have the epoch as the last axis: (n_images, n_epochs) or (n_images, n_models, n_epochs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from audit.metrics import dynamics
from audit.metrics._validate import as_correct

#: Paul et al. 2021 score EL2N at epoch 20 of a 200-epoch CIFAR-10 run: a tenth of the training.
EL2N_TRAINING_SHARE = 0.1
#: images per block when reducing the cubes (bounds the temporary memory of the float reductions)
_BLOCK = 4096


class Cartography(NamedTuple):
    """Dataset cartography of Swayamdipta et al. 2020 §2, each of shape (n_images,).

    confidence : mean true-class probability over the epochs, in [0, 1]; higher = easier.
    variability : its standard deviation over the epochs, in [0, 0.5]; high = "ambiguous".
    correctness : the share of epochs classified correctly, in [0, 1]; higher = easier.
    """

    confidence: np.ndarray
    variability: np.ndarray
    correctness: np.ndarray


def _as_cube(values, *, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty array of shape (n_images, n_epochs) or "
                         f"(n_images, n_models, n_epochs), got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr if arr.ndim == 3 else arr[:, None, :]


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def cartography(true_prob, correct) -> Cartography:
    """Confidence, variability and correctness over epochs (Swayamdipta et al. 2020 §2, Eq. 1-2).

    confidence = (1/E) Σ_e p_e(y | x); variability = sqrt((1/E) Σ_e (p_e(y | x) - confidence)^2)
    (the population standard deviation, as in the paper); correctness = (1/E) Σ_e 1[correct at e].
    With several models, each is computed per model and averaged over the models. The paper maps
    training images over the training epochs; here the images are held out.

    Parameters
    ----------
    true_prob : array-like of float, shape (n_images, n_epochs) or (n_images, n_models, n_epochs)
    correct : array-like of bool, the same shape

    Returns
    -------
    Cartography of three ndarrays of shape (n_images,)
    """
    prob = _as_cube(true_prob, name="true_prob")
    ok = as_correct(correct, name="correct", ndim=(2, 3))
    ok = ok if ok.ndim == 3 else ok[:, None, :]
    _same_shape(prob, ok, "true_prob and correct")
    n = prob.shape[0]
    conf, var, corr = np.empty(n), np.empty(n), np.empty(n)
    for lo in range(0, n, _BLOCK):
        p = prob[lo:lo + _BLOCK].astype(np.float64)
        mean = p.mean(axis=2)
        conf[lo:lo + _BLOCK] = mean.mean(axis=1)
        var[lo:lo + _BLOCK] = np.sqrt(((p - mean[..., None]) ** 2).mean(axis=2)).mean(axis=1)
        corr[lo:lo + _BLOCK] = np.count_nonzero(ok[lo:lo + _BLOCK], axis=2).mean(axis=1) / ok.shape[2]
    return Cartography(conf, var, corr)


def el2n(true_prob, prob_sq_sum) -> np.ndarray:
    """EL2N, the L2 norm of the error vector ||p - onehot(y)||_2 (Paul et al. 2021 §2, Eq. 2).

    From the true-class probability p_y and Σ_k p_k^2 alone: ||p - y||^2 = Σ_k p_k^2 - 2 p_y + 1.
    Averaged over the models, as the paper averages over independent initialisations. Pass the
    values at one early epoch (`el2n_epoch` picks the paper's); the paper scores training images,
    the audit held-out ones.

    Parameters
    ----------
    true_prob, prob_sq_sum : array-like of float, shape (n_images,) or (n_images, n_models)

    Returns
    -------
    el2n : ndarray of float, shape (n_images,)
        In [0, sqrt(2)]; 0 = confident and right; higher = harder (or mislabelled).
    """
    p = np.asarray(true_prob, dtype=np.float64)
    sq = np.asarray(prob_sq_sum, dtype=np.float64)
    if p.ndim not in (1, 2) or p.size == 0:
        raise ValueError(f"true_prob must have shape (n_images,) or (n_images, n_models), got {p.shape}")
    _same_shape(p, sq, "true_prob and prob_sq_sum")
    norm = np.sqrt(np.clip(sq - 2.0 * p + 1.0, 0.0, None))  # float rounding can dip below 0
    return norm if norm.ndim == 1 else norm.mean(axis=1)


def el2n_epoch(epochs, *, share: float = EL2N_TRAINING_SHARE) -> int:
    """The recorded epoch at which EL2N is scored: the paper's epoch 20 of 200, scaled to this run.

    Paul et al. 2021 (§4, Fig. 1) score EL2N early in training, at epoch 20 of 200 on CIFAR-10.
    Returns the recorded epoch nearest to `share` of the last one, and at least the first epoch
    after epoch 0 (before training, every network is a random guess).

    Parameters
    ----------
    epochs : array-like of int, the recorded epochs, ascending
    """
    ep = np.asarray(epochs)
    trained = ep[ep >= 1]
    if len(trained) == 0:
        raise ValueError(f"EL2N needs a trained epoch (>= 1); the recorded epochs are {ep.tolist()}")
    target = share * float(ep.max())
    return int(trained[np.argmin(np.abs(trained - target))])


def aum(margin) -> np.ndarray:
    """Area under the margin (Pleiss et al. 2020 §3, Eq. 1-2): the mean margin over the epochs.

    The margin at an epoch is the true-class logit minus the largest other logit; AUM is its mean
    over the epochs, here averaged over the models too. The paper scores training images (where a
    negative AUM flags a mislabelled one); the audit scores held-out images.

    Parameters
    ----------
    margin : array-like of float, shape (n_images, n_epochs) or (n_images, n_models, n_epochs)

    Returns
    -------
    aum : ndarray of float, shape (n_images,)
        Unbounded logit units; higher = easier; < 0 = another class wins on average.
    """
    m = _as_cube(margin, name="margin")
    n = m.shape[0]
    out = np.empty(n)
    for lo in range(0, n, _BLOCK):
        out[lo:lo + _BLOCK] = m[lo:lo + _BLOCK].astype(np.float64).mean(axis=(1, 2))
    return out


def first_learned_epoch(correct, *, epochs=None) -> np.ndarray:
    """The first epoch at which each image is classified correctly, averaged over the models.

    Toneva et al. 2019 §3 count a "learning event" when an image turns correct; this is the first
    one (the hacohen2020 learned epoch, `dynamics.learned_epoch`, is the start of the *final* run of
    correct epochs instead). A model that never gets the image right counts as one epoch past the
    last. The paper follows training images; the audit, held-out ones.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_epochs) or (n_images, n_models, n_epochs)
    epochs : array-like of int, shape (n_epochs,), optional; default 0..n_epochs-1

    Returns
    -------
    first : ndarray of float, shape (n_images,)
        An epoch number; lower = learned earlier; last epoch + 1 = never learned by any model.
    """
    ok = as_correct(correct, name="correct", ndim=(2, 3))
    ok = ok if ok.ndim == 3 else ok[:, None, :]
    ep = np.arange(ok.shape[2]) if epochs is None else np.asarray(epochs)
    if ep.shape != (ok.shape[2],):
        raise ValueError(f"epochs must have shape ({ok.shape[2]},) to match correct, got {ep.shape}")
    never = float(ep[-1]) + 1.0
    values = np.append(ep.astype(float), never)
    first = np.where(ok.any(axis=2), ok.argmax(axis=2), ok.shape[2])  # index of the first correct epoch
    return values[first].mean(axis=1)


def forgetting(correct) -> np.ndarray:
    """Forgetting events per model (Toneva et al. 2019 §3): correct at one epoch, wrong at the next.

    `dynamics.forgetting_events`, averaged over the models. The paper counts them on training
    images over mini-batch presentations; the audit counts them on held-out images between epochs.

    Returns
    -------
    events : ndarray of float, shape (n_images,); 0 = never forgotten; higher = less stable.
    """
    events = dynamics.forgetting_events(correct)
    return events.astype(float) if events.ndim == 1 else events.mean(axis=1)


#: The per-image scores of `training_scores`, in column order, and which way is harder.
SCORE_COLUMNS = ("cartography_confidence", "cartography_variability", "cartography_correctness", "el2n", "aum", "forgetting_events_mean",
                 "first_learned_epoch")
HARDER_WHEN = {"cartography_confidence": "lower", "cartography_variability": "higher",
               "cartography_correctness": "lower", "el2n": "higher",
               "aum": "lower", "forgetting_events_mean": "higher", "first_learned_epoch": "higher"}


def training_scores(cubes: dict, epochs, *, el2n_at: int | None = None) -> pd.DataFrame:
    """Every training-dynamics score of each image, over the trained epochs (epoch 0 left out).

    Parameters
    ----------
    cubes : dict of ndarray, each of shape (n_images, n_models, n_epochs)
        "correct" and "true_prob" are needed; "margin" (for AUM) and "prob_sq_sum" (for EL2N) are
        used when present, and their scores are left out otherwise.
    epochs : array-like of int, shape (n_epochs,), ascending (0 = before training)
    el2n_at : int, optional
        The epoch for EL2N; default `el2n_epoch(epochs)`, the paper's choice scaled to the run.

    Returns
    -------
    scores : DataFrame with one row per image and the columns of SCORE_COLUMNS it could compute
    """
    for key in ("correct", "true_prob"):
        if key not in cubes:
            raise ValueError(f"cubes lack {key!r}; they have {sorted(cubes)}")
    ep = np.asarray(epochs)
    n_epochs = cubes["correct"].shape[-1]
    if ep.shape != (n_epochs,):
        raise ValueError(f"epochs has {ep.shape[0] if ep.ndim else 0} entries but the cubes have {n_epochs} epochs")
    keep = np.flatnonzero(ep >= 1)
    if len(keep) == 0:
        raise ValueError(f"training scores need a trained epoch (>= 1); the recorded epochs are {ep.tolist()}")
    sel = slice(keep[0], None) if (np.diff(keep) == 1).all() and keep[-1] == n_epochs - 1 else keep
    trained = {k: v[..., sel] for k, v in cubes.items()}
    out = dict(zip(("cartography_confidence", "cartography_variability", "cartography_correctness"),
                   cartography(trained["true_prob"], trained["correct"]), strict=True))
    if "prob_sq_sum" in cubes:
        at = el2n_epoch(ep) if el2n_at is None else int(el2n_at)
        where = np.flatnonzero(ep == at)
        if len(where) == 0:
            raise ValueError(f"el2n_at={at} is not a recorded epoch ({ep.min()}..{ep.max()})")
        out["el2n"] = el2n(cubes["true_prob"][..., where[0]], cubes["prob_sq_sum"][..., where[0]])
    if "margin" in cubes:
        out["aum"] = aum(trained["margin"])
    out["forgetting_events_mean"] = forgetting(trained["correct"])
    out["first_learned_epoch"] = first_learned_epoch(trained["correct"], epochs=ep[keep])
    return pd.DataFrame({c: out[c] for c in SCORE_COLUMNS if c in out})


def spearman_matrix(scores: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rank correlation of every pair of per-image scores (ties get their mean rank).

    Parameters
    ----------
    scores : DataFrame, one row per image, one numeric column per score (no NaN)

    Returns
    -------
    rho : DataFrame of shape (n_scores, n_scores), in [-1, 1]; NaN for a constant score
    """
    if scores.shape[1] == 0 or len(scores) < 2:
        raise ValueError(f"scores must have at least one column and two rows, got shape {scores.shape}")
    values = scores.to_numpy(dtype=float)
    if np.isnan(values).any():
        bad = [c for c in scores.columns if scores[c].isna().any()]
        raise ValueError(f"scores contain NaN in {bad}")
    from scipy.stats import rankdata

    ranks = rankdata(values, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks, rowvar=False)
    rho = np.atleast_2d(rho)
    return pd.DataFrame(rho, index=scores.columns, columns=scores.columns)
