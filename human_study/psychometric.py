"""Psychometric functions of an adaptive study: proportion correct against the gap in model difficulty,
fitted per observer and pooled with psignifit (Schütt et al. 2016, the `psignifit` package) as a 2AFC
function (guess rate 0.5, lapse fitted), Weibull (on log gaps) or logistic.

Reports the threshold (psignifit's threshold: the gap halfway between guessing and the upper asymptote, i.e.
75% correct for an observer who never lapses) with its credible interval, the slope there, the lapse and the
deviance.
Pure: frames and arrays in, records out; no files, no printing, no UI.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SIGMOIDS = ("weibull", "logistic")
THRESHOLD_PC = 0.75  # the threshold: halfway from guessing (50%) to perfect, 75% correct without lapses
POOLED = "all"  # the subj of the fit to every observer's trials together


@dataclass(frozen=True)
class PsychometricFit:
    """One psignifit fit.

    threshold, threshold_low, threshold_high : the gap halfway between guessing and the upper asymptote (75%
        correct without lapses; psignifit's threshold parameter) and its marginal credible interval (`coverage`)
    slope, slope_low, slope_high : d(proportion correct)/d(gap) at the threshold, and the interval that
        psignifit's width interval gives it (slope is proportional to 1/width at a fixed point of the curve)
    lapse : the fitted lapse rate (upper asymptote 1 - lapse)
    deviance : 2·Σ[k·ln(k/(n·p)) + (n-k)·ln((n-k)/(n·(1-p)))] over levels, for the MAP fit (as psignifit's
        getDeviance computes it); lower is better, about the number of levels for a good fit
    """

    subj: str
    sigmoid: str
    n_trials: int
    n_levels: int
    threshold: float
    threshold_low: float
    threshold_high: float
    slope: float
    slope_low: float
    slope_high: float
    lapse: float
    deviance: float
    coverage: float
    result: object = field(default=None, repr=False, compare=False)

    def proportion_correct(self, levels) -> np.ndarray:
        """The fitted curve at `levels` (gaps > 0)."""
        x = np.asarray(levels, dtype=float)
        return self.result.proportion_correct(np.log(x) if self.sigmoid == "weibull" else x)


def level_counts(levels, correct) -> np.ndarray:
    """Trials pooled by level, psignifit's data layout.

    Parameters
    ----------
    levels : array-like of float, shape (n_trials,), gaps > 0
    correct : array-like of bool, shape (n_trials,)

    Returns
    -------
    data : ndarray of shape (n_levels, 3): level, number correct, number of trials; levels increasing
    """
    levels = np.asarray(levels, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if levels.shape != correct.shape:
        raise ValueError(f"levels has shape {levels.shape} but correct has shape {correct.shape}")
    if len(levels) == 0 or not np.all(np.isfinite(levels)) or np.any(levels <= 0):
        raise ValueError("levels must be finite gaps > 0, at least one")
    values, inverse = np.unique(levels, return_inverse=True)
    k = np.bincount(inverse, weights=correct, minlength=len(values))
    n = np.bincount(inverse, minlength=len(values))
    return np.column_stack([values, k, n]).astype(float)


def psignifit_options(sigmoid: str = "weibull", *, stimulus_range=None, coverage: float = 0.95) -> dict:
    """The keyword options handed to `psignifit.psignifit` (stimulus range on its own axis: log gaps for
    the Weibull, which psignifit fits as a Gumbel in log space)."""
    if sigmoid not in SIGMOIDS:
        raise ValueError(f"sigmoid must be one of {SIGMOIDS}, got {sigmoid!r}")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    options = {"experiment_type": "2AFC", "sigmoid": sigmoid, "verbose": False, "confP": (coverage,)}
    if stimulus_range is not None:
        low, high = (float(v) for v in stimulus_range)
        options["stimulus_range"] = (math.log(low), math.log(high)) if sigmoid == "weibull" else (low, high)
    return options


def fit_psychometric(levels, correct, *, sigmoid: str = "weibull", stimulus_range=None, coverage: float = 0.95,
                     subj: str = POOLED) -> PsychometricFit:
    """Fit a 2AFC psychometric function to proportion correct against the gap (psignifit).

    Parameters
    ----------
    levels : array-like of float, shape (n_trials,), the gap of each trial's pair, > 0
    correct : array-like of bool, shape (n_trials,)
    stimulus_range : (low, high) gaps the study could show; psignifit's priors span it (default the data's)
    """
    import psignifit

    data = level_counts(levels, correct)
    x = np.log(data[:, 0]) if sigmoid == "weibull" else data[:, 0]
    options = psignifit_options(sigmoid, stimulus_range=stimulus_range, coverage=coverage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = psignifit.psignifit(np.column_stack([x, data[:, 1:]]), **options)
    return _summarise(result, data, x, sigmoid=sigmoid, coverage=coverage, subj=subj)


def _summarise(result, data: np.ndarray, x: np.ndarray, *, sigmoid: str, coverage: float, subj: str):
    key = next(iter(result.confidence_intervals["threshold"]))
    value = result.parameter_estimate["threshold"]
    low, high = result.confidence_intervals["threshold"][key]
    back = np.exp if sigmoid == "weibull" else (lambda v: v)
    threshold = float(back(value))
    slope = float(result.slope(value))
    if sigmoid == "weibull":
        slope /= threshold  # dP/dln(gap) -> dP/dgap
    width = result.parameter_estimate["width"]
    w_low, w_high = result.confidence_intervals["width"][key]
    p = np.clip(result.proportion_correct(x), 1e-12, 1 - 1e-12)
    k, n = data[:, 1], data[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(k > 0, k * np.log(k / (n * p)), 0.0) + np.where(n > k, (n - k) * np.log((n - k) / (n * (1 - p))), 0.0)
    return PsychometricFit(
        subj=subj, sigmoid=sigmoid, n_trials=int(n.sum()), n_levels=len(data),
        threshold=threshold, threshold_low=float(back(low)), threshold_high=float(back(high)),
        slope=slope, slope_low=slope * width / w_high, slope_high=slope * width / w_low,
        lapse=float(result.parameter_estimate["lambda"]), deviance=float(2 * terms.sum()),
        coverage=coverage, result=result,
    )


FIT_COLUMNS = ["subj", "sigmoid", "n_trials", "n_levels", "threshold", "threshold_low", "threshold_high", "slope",
               "slope_low", "slope_high", "lapse", "deviance", "coverage"]


def psychometric_fits(responses: pd.DataFrame, *, sigmoid: str = "weibull", stimulus_range=None,
                      coverage: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Fits to the main trials of each observer and of all observers pooled (subj "all").

    Parameters
    ----------
    responses : frame with columns subj, kind, level, correct (StudyAdmin.responses_frame of an adaptive study)

    Returns
    -------
    table : one row per fit (FIT_COLUMNS), observers first, then the pooled fit
    fits : {subj: PsychometricFit}, for the figures
    """
    missing = {"subj", "kind", "level", "correct"} - set(responses.columns)
    if missing:
        raise ValueError(f"the responses frame lacks columns {sorted(missing)}")
    main = responses[(responses["kind"] == "main") & responses["level"].notna()]
    fits = {}
    groups = [(subj, rows) for subj, rows in main.groupby("subj", sort=True)]
    if len(groups) > 1:
        groups.append((POOLED, main))
    for subj, rows in groups:
        fits[subj] = fit_psychometric(rows["level"].to_numpy(float), rows["correct"].to_numpy(bool), sigmoid=sigmoid,
                                      stimulus_range=stimulus_range, coverage=coverage, subj=subj)
    table = pd.DataFrame([[getattr(f, c) for c in FIT_COLUMNS] for f in fits.values()], columns=FIT_COLUMNS)
    return table, fits


def study_fits(responses: pd.DataFrame, config: dict, *, sigmoid: str | None = None,
               coverage: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """`psychometric_fits` of an adaptive study, with its settings: the sigmoid it names (`psychometric`) unless
    `sigmoid` is given, and the gaps it could show, 1/n_models to 1, as psignifit's stimulus range."""
    return psychometric_fits(responses, sigmoid=sigmoid or config.get("psychometric", "weibull"),
                             stimulus_range=(1.0 / int(config["n_models"]), 1.0), coverage=coverage)


def format_fits(table: pd.DataFrame) -> str:
    """The fits as plain text (for the CLI)."""
    if table.empty:
        return "Psychometric functions: no main trials answered yet"
    first = table.iloc[0]
    lines = [f"Psychometric functions (psignifit, 2AFC {first.sigmoid}, threshold = gap at 75% correct, "
             f"{100 * first.coverage:g}% credible intervals)",
             f"  {'subj':<12} {'trials':>6} {'levels':>6} {'threshold':>10} {'interval':>17} {'slope':>7} "
             f"{'interval':>15} {'lapse':>6} {'deviance':>8}"]
    for r in table.itertuples():
        lines.append(f"  {r.subj:<12} {r.n_trials:>6} {r.n_levels:>6} {r.threshold:>10.3f} "
                     f"{f'{r.threshold_low:.3f}-{r.threshold_high:.3f}':>17} {r.slope:>7.2f} "
                     f"{f'{r.slope_low:.2f}-{r.slope_high:.2f}':>15} {r.lapse:>6.3f} {r.deviance:>8.2f}")
    return "\n".join(lines)
