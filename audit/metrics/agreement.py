"""Per-image agreement across a collection of models (hacohen2020 §2; hacohen2019 §2).

TP-agreement, consensus (hacohen2020's "Agreement"), Accessibility, Pearson's
bimodality score and its null under independent models of matching accuracy.
Pure numpy: no I/O, no prints.
"""

from __future__ import annotations

import numpy as np

from audit.metrics._validate import NO_ANSWER, as_correct, as_finite, as_labels


def tp_agreement(correct) -> np.ndarray:
    """TP-agreement: the share of models that classify the image correctly (hacohen2020 §2).

    TPa^e(x, y) = (1/N) Σ_i 1[f_i^e(x) = y]; hacohen2019 calls it the
    consistency score.

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models) or (n_images, n_models, n_epochs)

    Returns
    -------
    tpa : ndarray of float, shape (n_images,) or (n_images, n_epochs)
        In [0, 1]; 1 = every model right, 0 = every model wrong.
    """
    correct = as_correct(correct, ndim=(2, 3))
    return np.count_nonzero(correct, axis=1) / correct.shape[1]


def consensus(predicted) -> np.ndarray:
    """Consensus: the largest share of models that give the image the same label.

    hacohen2020 §2 calls it Agreement, a^e(x) = max_k (1/N) Σ_i 1[f_i^e(x) = k];
    hacohen2019 §2 calls it the consensus score. Unlike TP-agreement it also
    counts agreement on a wrong label.

    Parameters
    ----------
    predicted : array-like of int, shape (n_images, n_models) or (n_images, n_models, n_epochs)
        Predicted class indices.

    Returns
    -------
    consensus : ndarray of float, shape (n_images,) or (n_images, n_epochs)
        In [1/n_models, 1]; 1 = all models give the same label. A decision without an answer
        (NO_ANSWER) agrees with no other.
    """
    pred = _distinct_no_answers(_as_predicted(predicted))
    if pred.ndim == 2:
        return _max_run(np.sort(pred, axis=1)) / pred.shape[1]
    out = np.empty((pred.shape[0], pred.shape[2]))
    for e in range(pred.shape[2]):  # one epoch at a time keeps memory at (n_images, n_models)
        out[:, e] = _max_run(np.sort(pred[:, :, e], axis=1)) / pred.shape[1]
    return out


def majority_vote(predicted, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The models' majority prediction for each image and its number of votes: the label that a
    majority-vote ensemble gives (hacohen2020 §4.1) and that a label review suggests.

    Parameters
    ----------
    predicted : array-like of int, shape (n_images, n_models)
    n_classes : int

    Returns
    -------
    label : ndarray of int64, shape (n_images,), the most frequent prediction (ties: the lowest class index);
        NO_ANSWER where no model answered
    votes : ndarray of int64, shape (n_images,), how many models predict it (0 where none answered)
    """
    from scipy import stats

    pred = np.asarray(predicted, dtype=np.int64)
    if pred.ndim != 2 or pred.shape[1] == 0:
        raise ValueError(f"predicted must have shape (n_images, n_models >= 1), got {pred.shape}")
    if pred.size and (pred.min() < NO_ANSWER or pred.max() >= n_classes):
        raise ValueError(f"predicted holds classes outside 0..{n_classes - 1}")
    # no answer is no vote: each becomes a distinct value above every class, so it never wins a tie
    pred = np.where(pred < 0, n_classes + np.arange(pred.shape[1])[None, :], pred)
    mode = stats.mode(pred, axis=1, keepdims=False)
    label, votes = np.asarray(mode.mode, dtype=np.int64), np.asarray(mode.count, dtype=np.int64)
    none = label >= n_classes
    return np.where(none, NO_ANSWER, label), np.where(none, 0, votes)


def majority_vote_correct(predicted, labels) -> np.ndarray:
    """Whether the majority-vote ensemble of the models is correct (hacohen2020 §4.1, Fig. 8a).

    The ensemble's decision is the label most models predict; it is correct
    when the true label gets strictly more votes than every other label. A tie
    for the most votes counts as wrong; a decision without an answer (NO_ANSWER) is no vote.

    Parameters
    ----------
    predicted : array-like of int, shape (n_images, n_models) or (n_images, n_models, n_epochs)
    labels : array-like of int, shape (n_images,)

    Returns
    -------
    correct : ndarray of bool, shape (n_images,) or (n_images, n_epochs)
    """
    pred = _as_predicted(predicted)
    labels = as_labels(labels, n_images=pred.shape[0])
    if pred.ndim == 2:
        return _majority_correct(pred, labels)
    # more than half of the votes for the true label wins and none loses; only the rest need the full count
    true_votes = np.count_nonzero(pred == labels[:, None, None], axis=1)
    out = 2 * true_votes > pred.shape[1]
    ii, ee = np.nonzero((true_votes > 0) & ~out)
    if ii.size:
        out[ii, ee] = _majority_correct(pred[ii, :, ee], labels[ii])
    return out


def _majority_correct(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    true_votes = np.count_nonzero(pred == labels[:, None], axis=1)
    s = np.sort(pred, axis=1)
    run = np.where(s < 0, 0, _runs(s))  # no answer is no vote
    best = run.max(axis=1)
    ends = np.ones_like(s, dtype=bool)
    ends[:, :-1] = s[:, 1:] != s[:, :-1]
    n_best = np.count_nonzero(ends & (s >= 0) & (run == best[:, None]), axis=1)
    return (true_votes == best) & (n_best == 1) & (true_votes > 0)


def _runs(s: np.ndarray) -> np.ndarray:
    """Length of the run of equal values ending at each position of a row-sorted array."""
    m = s.shape[1]
    idx = np.broadcast_to(np.arange(m), s.shape)
    new = np.ones_like(s, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    return idx - start + 1


def _max_run(s: np.ndarray) -> np.ndarray:
    return _runs(s).max(axis=1)


def accessibility(correct) -> np.ndarray:
    """Accessibility score: the TP-agreement averaged over epochs (hacohen2020 §2).

    E_{e in S_E}[TPa^e(x, y)], the mean over all recorded epochs (epoch 0
    included when recorded).

    Parameters
    ----------
    correct : array-like of bool, shape (n_images, n_models, n_epochs)

    Returns
    -------
    accessibility : ndarray of float, shape (n_images,)
        In [0, 1]; higher = learned earlier and by more models.
    """
    correct = as_correct(correct, ndim=(3,))
    flat = correct.reshape(correct.shape[0], -1)
    return np.count_nonzero(flat, axis=1) / flat.shape[1]


def bimodality_score(values, *, axis: int = 0) -> np.ndarray | float:
    """Pearson's bimodality score: kurtosis - skewness² - 1 (hacohen2020 §2; Pearson 1894).

    Kurtosis is Pearson's (not excess) kurtosis m4 / m2², skewness m3 / m2^1.5,
    both from population moments (scipy.stats.kurtosis(fisher=False) and
    scipy.stats.skew with bias=True).

    Parameters
    ----------
    values : array-like of float, shape (n_images,) or (n_images, n_epochs)
        Typically the TP-agreement of every image (at each epoch).
    axis : int, default 0
        The image axis.

    Returns
    -------
    score : float or ndarray of shape (n_epochs,)
        >= 0 always; lower = more bimodal: 0 for a two-point distribution
        (every image at 0 or 1), 2 for a Gaussian, 2 - 2/N for a binomial over
        N models. NaN where the values are constant (zero variance), for which
        skewness and kurtosis are undefined.
    """
    x = as_finite(values, name="values", ndim=(1, 2))
    x = np.moveaxis(x, axis, 0)
    mean = x.mean(axis=0)
    d = x - mean
    m2 = (d**2).mean(axis=0)
    m3 = (d**3).mean(axis=0)
    m4 = (d**4).mean(axis=0)
    tiny = m2 <= (np.finfo(float).eps * np.abs(mean)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(tiny, np.nan, m4 / m2**2 - m3**2 / m2**3 - 1)
    return float(score) if np.ndim(score) == 0 else score


def bimodality_null(accuracies) -> np.ndarray | float:
    """Bimodality score expected for independent models of matching accuracy (hacohen2020 §2, §3.1).

    Under the null each model i is right on each image independently with
    probability p_i (its accuracy), so N·TPa follows a Poisson-binomial
    distribution. Its exact score from cumulants κ2 = Σ p_i q_i,
    κ3 = Σ p_i q_i (1 - 2 p_i), κ4 = Σ p_i q_i (1 - 6 p_i q_i) is
    2 + κ4 / κ2² - κ3² / κ2³ (2 - 2/N when all p_i are equal).

    Parameters
    ----------
    accuracies : array-like of float, shape (n_models,) or (n_models, n_epochs)
        Values in [0, 1].

    Returns
    -------
    score : float or ndarray of shape (n_epochs,)
        Compare with `bimodality_score` of the observed TP-agreement: lower
        observed than null = models agree more than independent ones. NaN when
        every p_i is 0 or 1 (no variance under the null).
    """
    p = _as_accuracies(accuracies)
    pq = p * (1 - p)
    k2 = pq.sum(axis=0)
    k3 = (pq * (1 - 2 * p)).sum(axis=0)
    k4 = (pq * (1 - 6 * pq)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(k2 > 0, 2 + k4 / k2**2 - k3**2 / k2**3, np.nan)
    return float(score) if np.ndim(score) == 0 else score


def tp_agreement_null(accuracies) -> np.ndarray:
    """Distribution of TP-agreement under independent models (hacohen2020 Fig. 3, orange).

    Parameters
    ----------
    accuracies : array-like of float, shape (n_models,)
        Each model's accuracy p_i in [0, 1].

    Returns
    -------
    pmf : ndarray of float, shape (n_models + 1,)
        pmf[k] = P(TPa = k / n_models) for a Poisson-binomial with the given
        p_i; sums to 1.
    """
    p = _as_accuracies(accuracies, ndim=(1,))
    pmf = np.zeros(len(p) + 1)
    pmf[0] = 1.0
    for i, pi in enumerate(p):
        pmf[1 : i + 2] = pmf[1 : i + 2] * (1 - pi) + pmf[: i + 1] * pi
        pmf[0] *= 1 - pi
    return pmf


def tp_agreement_histograms(correct_by_epoch) -> tuple[np.ndarray, np.ndarray]:
    """Images per TP-agreement value and epoch, observed and under independent models (hacohen2020 Fig. 3b).

    Parameters
    ----------
    correct_by_epoch : array-like of bool, shape (n_images, n_models, n_epochs)

    Returns
    -------
    observed, null : ndarray of shape (n_models + 1, n_epochs)
        observed[k, e] counts the images that k models classify correctly at
        epoch e; null[k, e] = n_images * `tp_agreement_null`(accuracies at e)[k].
    """
    c = np.asarray(correct_by_epoch, dtype=bool)
    if c.ndim != 3:
        raise ValueError(f"correct_by_epoch must have shape (n_images, n_models, n_epochs), got shape {c.shape}")
    n_images, n_models, n_epochs = c.shape
    counts = c.sum(axis=1, dtype=np.int32)
    accuracies = c.mean(axis=0)
    observed = np.stack([np.bincount(counts[:, e], minlength=n_models + 1) for e in range(n_epochs)], axis=1)
    null = np.stack([n_images * tp_agreement_null(accuracies[:, e]) for e in range(n_epochs)], axis=1)
    return observed, null


def _as_accuracies(accuracies, ndim=(1, 2)) -> np.ndarray:
    p = as_finite(accuracies, name="accuracies", ndim=ndim)
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"accuracies must lie in [0, 1], found range {p.min()}..{p.max()}")
    return p


def _distinct_no_answers(pred: np.ndarray) -> np.ndarray:
    """Each decision without an answer becomes a negative value of its own model, so it matches no other."""
    if not (pred < 0).any():
        return pred
    model = np.arange(pred.shape[1]).reshape((1, -1) + (1,) * (pred.ndim - 2))
    return np.where(pred < 0, -1 - model, pred)


def _as_predicted(predicted) -> np.ndarray:
    pred = np.asarray(predicted)
    if pred.ndim not in (2, 3):
        raise ValueError(
            f"predicted must have shape (n_images, n_models) or (n_images, n_models, n_epochs), got {pred.shape}"
        )
    if pred.size == 0:
        raise ValueError(f"predicted is empty (shape {pred.shape})")
    if pred.dtype.kind == "f":
        if np.isnan(pred).any():
            raise ValueError("predicted contains NaN; expected integer class indices")
        if (pred != np.round(pred)).any():
            raise ValueError("predicted must hold integer class indices, found fractions")
        pred = pred.astype(np.int64)
    elif pred.dtype.kind not in "iu":
        raise ValueError(f"predicted must hold integer class indices, got dtype {pred.dtype}")
    if pred.min() < NO_ANSWER:
        raise ValueError(f"predicted must hold class indices >= 0 (or {NO_ANSWER}, no answer), found {pred.min()}")
    return pred
