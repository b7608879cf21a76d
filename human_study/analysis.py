"""Statistics of a 2AFC study: per-observer accuracy with exact binomial tests and intervals,
error consistency between observers, the learning effect over trials and response times.

Functions take a responses frame (`StudyAdmin.responses_frame()`) or plain arrays and return
frames, dataclasses or numbers. Nothing here reads a database, touches files or prints.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

# --------------------------------------------------------------------------- single proportions


def _check_counts(n_correct, n_trials) -> tuple[int, int]:
    k, n = int(n_correct), int(n_trials)
    if n < 1 or not 0 <= k <= n or k != n_correct or n != n_trials:
        raise ValueError(
            f"need integers 0 <= n_correct <= n_trials with n_trials >= 1, got {n_correct}/{n_trials}"
        )
    return k, n


def binomial_p_value(n_correct: int, n_trials: int, *, chance: float = 0.5) -> float:
    """One-sided exact binomial test of accuracy > chance: P(X >= n_correct), X ~ Bin(n_trials, chance).

    Lower is stronger evidence of above-chance accuracy. 107 of 149 gives 5.0e-8 (meding2022, fn. 4).
    """
    k, n = _check_counts(n_correct, n_trials)
    return float(stats.binomtest(k, n, p=chance, alternative="greater").pvalue)


def wilson_interval(n_correct: int, n_trials: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided Wilson score interval: (k + z²/2)/(n + z²) ± z/(n + z²)·sqrt(k(n-k)/n + z²/4)."""
    k, n = _check_counts(n_correct, n_trials)
    z = stats.norm.ppf(1 - alpha / 2)
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_interval(n_correct: int, n_trials: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) interval from beta quantiles."""
    k, n = _check_counts(n_correct, n_trials)
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


# --------------------------------------------------------------------------- error consistency
@dataclass(frozen=True)
class ErrorConsistency:
    """Geirhos et al. (2020): κ = (c_obs - c_exp)/(1 - c_exp), c_exp = p1·p2 + (1-p1)(1-p2).

    κ in [-1, 1]: 1 = the same trials right and wrong, 0 = as expected from the accuracies alone.
    κ = 1 when c_obs = 1.
    """

    n_trials: int
    c_obs: float
    c_exp: float
    kappa: float


def error_consistency(correct_a, correct_b) -> ErrorConsistency:
    """Error consistency of two observers on the same trials.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, shape (n_trials,), matched trial by trial
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"correct_a has shape {a.shape} but correct_b has shape {b.shape}; need two equal 1-D arrays"
        )
    if len(a) == 0:
        return ErrorConsistency(0, math.nan, math.nan, math.nan)
    return ErrorConsistency(len(a), *_compute_error_consistency(a, b))


def _compute_error_consistency(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    c_obs = float(np.mean(a == b))
    p1, p2 = float(a.mean()), float(b.mean())
    c_exp = p1 * p2 + (1 - p1) * (1 - p2)
    if c_obs == 1.0:
        return c_obs, c_exp, 1.0
    return c_obs, c_exp, (c_obs - c_exp) / (1 - c_exp)


# --------------------------------------------------------------------------- per observer
def _main(responses: pd.DataFrame) -> pd.DataFrame:
    return responses[responses["kind"] == "main"]


def observer_accuracy(responses: pd.DataFrame, *, alpha: float = 0.05, chance: float = 0.5) -> pd.DataFrame:
    """Accuracy on main trials per observer (subj), with p-value and intervals; catch trials apart.

    Returns columns: subj, n_trials, n_correct, accuracy, p_value (one-sided exact binomial vs
    `chance`), wilson_low, wilson_high, cp_low, cp_high (1 - alpha), n_catch, catch_accuracy,
    n_catch_failed (failed attention checks: the noise image not picked as the harder one).
    """
    kind = responses["kind"].to_numpy()
    correct = responses["correct"].to_numpy(dtype=bool)
    counts = pd.DataFrame({"subj": responses["subj"], "main": kind == "main", "main_right": (kind == "main") & correct,
                           "catch": kind == "catch", "catch_right": (kind == "catch") & correct}
                          ).groupby("subj", sort=True).sum()
    rows = []
    for subj, c in zip(counts.index, counts.itertuples(index=False), strict=True):
        n, k = int(c.main), int(c.main_right)
        row = {"subj": subj, "n_trials": n, "n_correct": k}
        if n:
            row.update(accuracy=k / n, p_value=binomial_p_value(k, n, chance=chance))
            row["wilson_low"], row["wilson_high"] = wilson_interval(k, n, alpha=alpha)
            row["cp_low"], row["cp_high"] = clopper_pearson_interval(k, n, alpha=alpha)
        row["n_catch"] = int(c.catch)
        row["catch_accuracy"] = int(c.catch_right) / int(c.catch) if c.catch else math.nan
        row["n_catch_failed"] = int(c.catch) - int(c.catch_right)
        rows.append(row)
    columns = [
        "subj",
        "n_trials",
        "n_correct",
        "accuracy",
        "p_value",
        "wilson_low",
        "wilson_high",
        "cp_low",
        "cp_high",
        "n_catch",
        "catch_accuracy",
        "n_catch_failed",
    ]
    return pd.DataFrame(rows, columns=columns)


def accuracy_summary(table: pd.DataFrame) -> dict:
    """Mean, standard deviation (ddof=1), minimum and maximum of accuracy over observers."""
    acc = table["accuracy"].dropna().to_numpy(dtype=float) if len(table) else np.array([])
    return _describe(acc)


def _describe(values: np.ndarray) -> dict:
    n = len(values)
    return {
        "n": n,
        "mean": float(values.mean()) if n else math.nan,
        "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
        "min": float(values.min()) if n else math.nan,
        "max": float(values.max()) if n else math.nan,
    }


def pairwise_error_consistency(responses: pd.DataFrame) -> pd.DataFrame:
    """Error consistency for every pair of observers on the main trials both answered.

    Trials are matched by trial_id (the same pair of images, whatever side or order it had).
    Returns columns: subj_a, subj_b, n_trials, c_obs, c_exp, kappa. All pairs come from four matrix
    products over an (n_trials, n_observers) table, equal to `error_consistency` pair by pair.
    """
    columns = ["subj_a", "subj_b", "n_trials", "c_obs", "c_exp", "kappa"]
    main = _main(responses)
    if main.empty:
        return pd.DataFrame(columns=columns)
    subjects, subj_code = np.unique(main["subj"].to_numpy(dtype=str), return_inverse=True)
    _, trial_code = np.unique(main["trial_id"].to_numpy(), return_inverse=True)
    decided = np.zeros((trial_code.max() + 1, len(subjects)))
    right = np.zeros_like(decided)
    decided[trial_code, subj_code] = 1.0
    right[trial_code, subj_code] = main["correct"].to_numpy(dtype=bool)
    n = decided.T @ decided
    right_a = right.T @ decided  # [a, b]: a right, on the trials both answered
    both_right = right.T @ right
    ia, ib = np.triu_indices(len(subjects), k=1)
    n_ab, ra, rb, rr = n[ia, ib], right_a[ia, ib], right_a[ib, ia], both_right[ia, ib]
    with np.errstate(invalid="ignore", divide="ignore"):
        c_obs = (n_ab - ra - rb + 2 * rr) / n_ab
        p1, p2 = ra / n_ab, rb / n_ab
        c_exp = p1 * p2 + (1 - p1) * (1 - p2)
        kappa = np.where(c_obs == 1.0, 1.0, (c_obs - c_exp) / (1 - c_exp))
    none = n_ab == 0
    c_obs[none], c_exp[none], kappa[none] = math.nan, math.nan, math.nan
    return pd.DataFrame({"subj_a": subjects[ia], "subj_b": subjects[ib], "n_trials": n_ab.astype(np.int64),
                         "c_obs": c_obs, "c_exp": c_exp, "kappa": kappa}, columns=columns)


# --------------------------------------------------------------------------- over trials
@dataclass(frozen=True)
class LearningEffect:
    """Logistic regression of correctness on trial number (main trials, observers as fixed effects).

    logit P(correct) = b0 + slope·(number - 1) [+ one offset per observer]; slope > 0 means
    accuracy rises over the session. `odds_ratio_first_to_last` = exp(slope·(last_number - 1)),
    the change of the odds of a right answer from the first to the last trial of the study
    (never a span the study does not have, such as 100 trials of a 20-trial study).
    `params` are the fitted coefficients (intercept, slope, observer offsets), for the figure.
    """

    n_responses: int
    n_observers: int
    slope: float = math.nan
    slope_se: float = math.nan
    p_value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    last_number: int = 0
    odds_ratio_first_to_last: float = math.nan
    note: str = ""
    params: tuple[float, ...] = ()


def learning_design(responses: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Design matrix (intercept, trial number - 1, observer dummies) and outcome for main trials."""
    main = _main(responses).sort_values(["subj", "number"])
    subjects = sorted(main["subj"].unique())
    columns = [np.ones(len(main)), main["number"].to_numpy(dtype=float) - 1.0]
    names = ["intercept", "trial"]
    for s in subjects[1:]:
        columns.append((main["subj"] == s).to_numpy(dtype=float))
        names.append(f"subj[{s}]")
    return np.column_stack(columns), main["correct"].to_numpy(dtype=float), names


def learning_effect(responses: pd.DataFrame, *, alpha: float = 0.05) -> LearningEffect:
    """Fit `LearningEffect` with statsmodels (binomial GLM, logit link)."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning
    from threadpoolctl import threadpool_limits

    x, y, _ = learning_design(responses)
    n, n_obs = len(y), int(x.shape[1] - 1)
    if n == 0:
        return LearningEffect(0, 0, note="no main-trial responses")
    if np.all(y == y[0]):
        return LearningEffect(
            n, n_obs, note=f"every response is {'correct' if y[0] else 'wrong'}; no slope can be estimated"
        )
    if len(np.unique(x[:, 1])) < 2:
        return LearningEffect(
            n, n_obs, note="all responses come from one trial number; no slope can be estimated"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp overflow on the way to separation
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            with threadpool_limits(limits=1, user_api="blas"):  # a thin design: one BLAS thread is faster
                fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
        except (PerfectSeparationWarning, np.linalg.LinAlgError, ValueError) as err:
            reason = "perfect separation" if isinstance(err, PerfectSeparationWarning) else type(err).__name__
            return LearningEffect(n, n_obs, note=f"the logistic regression cannot be fitted ({reason})")
    if not fit.converged or not np.all(np.isfinite(fit.bse)):
        return LearningEffect(n, n_obs, note="the logistic regression did not converge")
    slope, se = float(fit.params[1]), float(fit.bse[1])
    low, high = fit.conf_int(alpha=alpha)[1]
    last = int(x[:, 1].max()) + 1
    return LearningEffect(
        n_responses=n,
        n_observers=n_obs,
        slope=slope,
        slope_se=se,
        p_value=float(fit.pvalues[1]),
        ci_low=float(low),
        ci_high=float(high),
        last_number=last,
        odds_ratio_first_to_last=float(np.exp((last - 1) * slope)),
        params=tuple(float(v) for v in fit.params),
    )


def learning_curve(effect: LearningEffect, numbers) -> np.ndarray:
    """The fitted P(correct) at each trial number, averaged over the observers' offsets.

    Returns ndarray of shape (len(numbers),), in [0, 1]; NaN when no fit exists.
    """
    numbers = np.asarray(numbers, dtype=float)
    if not effect.params:
        return np.full(numbers.shape, math.nan)
    intercept, slope, *offsets = effect.params
    shifts = np.array([0.0, *offsets])  # the first observer is the reference
    logits = intercept + slope * (numbers[:, None] - 1.0) + shifts[None, :]
    return (1.0 / (1.0 + np.exp(-logits))).mean(axis=1)


def accuracy_by_block(responses: pd.DataFrame, *, block: int = 25, n_numbers: int | None = None) -> pd.DataFrame:
    """Accuracy on main trials in blocks of `block` trial numbers, pooled over observers.

    n_numbers : the last trial number of the study (main and catch trials); default the
        largest number answered. The last block ends there, never past it (20 trials in
        blocks of 3 end with "19-20", not "19-21").

    Returns columns: block (1-based), first, last (trial numbers), n, accuracy.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    main = _main(responses)
    if main.empty:
        return pd.DataFrame(columns=["block", "first", "last", "n", "accuracy"])
    numbers = main["number"].to_numpy()
    end = int(numbers.max()) if n_numbers is None else max(int(n_numbers), int(numbers.max()))
    index = (numbers - 1) // block
    grouped = main.groupby(index)["correct"]
    out = pd.DataFrame({"n": grouped.size(), "accuracy": grouped.mean()})
    out.insert(0, "block", out.index + 1)
    out.insert(1, "first", out.index * block + 1)
    out.insert(2, "last", np.minimum((out.index + 1) * block, end))
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- response times
def response_time_summary(responses: pd.DataFrame) -> pd.DataFrame:
    """Response times (ms) on main trials per observer and over all ("all").

    Returns columns: subj, n, median, mean, q25, q75, min, max, median_correct, median_wrong,
    rt_source ("client" = measured in the browser, "server" = server timestamps, or both).
    """
    main = _main(responses)
    main = main[main["rt_ms"].notna()]
    groups = [(s, g) for s, g in main.groupby("subj", sort=True)]
    if len(main):
        groups.append(("all", main))
    rows = []
    for subj, g in groups:
        rt = g["rt_ms"].to_numpy(dtype=float)
        correct = g["correct"].to_numpy(dtype=bool)
        rows.append(
            {
                "subj": subj,
                "n": len(rt),
                "median": float(np.median(rt)),
                "mean": float(rt.mean()),
                "q25": float(np.percentile(rt, 25)),
                "q75": float(np.percentile(rt, 75)),
                "min": float(rt.min()),
                "max": float(rt.max()),
                "median_correct": float(np.median(rt[correct])) if correct.any() else math.nan,
                "median_wrong": float(np.median(rt[~correct])) if (~correct).any() else math.nan,
                "rt_source": "+".join(sorted(g["rt_source"].dropna().unique())),
            }
        )
    columns = [
        "subj",
        "n",
        "median",
        "mean",
        "q25",
        "q75",
        "min",
        "max",
        "median_correct",
        "median_wrong",
        "rt_source",
    ]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- everything
@dataclass(frozen=True)
class StudyAnalysis:
    alpha: float
    chance: float
    observers: pd.DataFrame = field(repr=False)
    accuracy: dict = field(default_factory=dict)
    consistency: pd.DataFrame = field(default=None, repr=False)
    consistency_summary: dict = field(default_factory=dict)
    learning: LearningEffect | None = None
    blocks: pd.DataFrame = field(default=None, repr=False)
    response_times: pd.DataFrame = field(default=None, repr=False)
    n_responses: int = 0


def analyze(
    responses: pd.DataFrame,
    *,
    alpha: float = 0.05,
    chance: float = 0.5,
    block: int = 25,
    n_numbers: int | None = None,
) -> StudyAnalysis:
    """Every statistic of the study from its responses frame (`n_numbers`: see accuracy_by_block)."""
    missing = {"subj", "kind", "trial_id", "number", "correct", "rt_ms"} - set(responses.columns)
    if missing:
        raise ValueError(f"the responses frame lacks columns {sorted(missing)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    table = observer_accuracy(responses, alpha=alpha, chance=chance)
    pairs = pairwise_error_consistency(responses)
    kappas = pairs["kappa"].dropna().to_numpy(dtype=float)
    return StudyAnalysis(
        alpha=alpha,
        chance=chance,
        observers=table,
        accuracy=accuracy_summary(table),
        consistency=pairs,
        consistency_summary=_describe(kappas),
        learning=learning_effect(responses, alpha=alpha),
        blocks=accuracy_by_block(responses, block=block, n_numbers=n_numbers),
        response_times=response_time_summary(responses),
        n_responses=len(responses),
    )


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_p_value(p: float) -> str:
    """A p-value as people read it: "0.942", "0.012", and below 0.001 "5.0e-08"."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def paper_summary(result: StudyAnalysis) -> list[str]:
    """The two lines meding2022 §3.4 reports: mean, range and SD of accuracy over observers, and
    of the error consistency (kappa) over all pairs of observers, e.g. "mean accuracy 81.36%
    (range 71.81-88.59%, SD 6.29%)" and "mean error consistency 0.5874 (range 0.4053-0.7527,
    SD 0.0878)". SDs are sample SDs (ddof=1)."""
    acc, ec = result.accuracy, result.consistency_summary

    def p2(x: float) -> str:
        return "-" if math.isnan(x) else f"{100 * x:.2f}"

    def k4(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.4f}"

    if acc["n"] == 1:  # no range and no SD over one observer
        lines = [f"1 observer: accuracy {p2(acc['mean'])}% (SD n/a (one observer))"]
    else:
        lines = [
            f"{acc['n']} observers: mean accuracy {p2(acc['mean'])}% (range {p2(acc['min'])}\u2013"
            f"{p2(acc['max'])}%, SD {p2(acc['sd'])}%)"
        ]
    if ec["n"]:
        lines.append(
            f"{ec['n']} pairs of observers: mean error consistency {k4(ec['mean'])} (range "
            f"{k4(ec['min'])}\u2013{k4(ec['max'])}, SD {k4(ec['sd'])})"
        )
    return lines


def format_analysis(result: StudyAnalysis) -> str:
    """A plain-text report of `analyze`'s result (for the CLI)."""
    level = f"{100 * (1 - result.alpha):g}%"
    if result.n_responses == 0:
        return "No responses yet."
    lines = ["Summary (as meding2022 §3.4 reports it)", *(f"  {line}" for line in paper_summary(result)), ""]
    lines.append(
        f"Accuracy on main trials (one-sided exact binomial test against {_pct(result.chance)}; {level} intervals)"
    )
    lines.append(
        f"  {'subj':<12} {'correct':>9} {'accuracy':>9} {'p':>9} {'Wilson':>15} {'Clopper-Pearson':>17} {'catch':>7}"
    )
    for r in result.observers.itertuples():
        lines.append(
            f"  {r.subj:<12} {f'{r.n_correct}/{r.n_trials}':>9} {_pct(r.accuracy):>9} {format_p_value(r.p_value):>9} "
            f"{_pct(r.wilson_low) + '-' + _pct(r.wilson_high):>15} {_pct(r.cp_low) + '-' + _pct(r.cp_high):>17} "
            f"{_pct(r.catch_accuracy) if r.n_catch else '-':>7}"
        )
    flagged = result.observers[result.observers["n_catch_failed"] > 0]
    for r in flagged.itertuples():
        lines.append(f"  flagged: {r.subj} failed {r.n_catch_failed} of {r.n_catch} attention checks (catch trials)")
    acc = result.accuracy
    if acc["n"] == 1:
        lines.append(f"  one observer: {_pct(acc['mean'])} (sd n/a (one observer))")
    else:
        lines.append(
            f"  mean over {acc['n']} observers: {_pct(acc['mean'])} (sd {_pct(acc['sd'])}, range {_pct(acc['min'])} to {_pct(acc['max'])})"
        )
    ec = result.consistency_summary
    lines.append("")
    if ec["n"]:
        lines.append(
            f"Error consistency between observers (kappa, {ec['n']} pairs on matched trials): mean {_num(ec['mean'])}, "
            f"sd {_num(ec['sd'])}, range {_num(ec['min'])} to {_num(ec['max'])}"
        )
    else:
        lines.append("Error consistency between observers: needs at least two observers")
    le = result.learning
    lines.append("")
    if le is None or math.isnan(le.slope):
        lines.append(f"Learning effect: {le.note if le else 'not computed'}")
    else:
        lines.append(
            f"Learning effect (logistic regression on trial number, {le.n_responses} responses): slope {le.slope:+.4f} "
            f"per trial (SE {le.slope_se:.4f}, p = {format_p_value(le.p_value)}), odds ratio from trial 1 to "
            f"trial {le.last_number} {le.odds_ratio_first_to_last:.2f}"
        )
    if result.blocks is not None and len(result.blocks):
        blocks = ", ".join(f"{b.first}-{b.last}: {_pct(b.accuracy)}" for b in result.blocks.itertuples())
        lines.append(f"  accuracy by trial block: {blocks}")
    lines.append("")
    rts = result.response_times
    if rts is None or rts.empty:
        lines.append("Response times: none recorded")
    else:
        lines.append("Response times on main trials (ms)")
        lines.append(f"  {'subj':<12} {'n':>5} {'median':>8} {'IQR':>15} {'correct':>8} {'wrong':>8}  source")
        for r in rts.itertuples():
            lines.append(
                f"  {r.subj:<12} {r.n:>5} {_num(r.median, '.0f'):>8} {_num(r.q25, '.0f') + '-' + _num(r.q75, '.0f'):>15} "
                f"{_num(r.median_correct, '.0f'):>8} {_num(r.median_wrong, '.0f'):>8}  {r.rt_source}"
            )
    return "\n".join(lines)
