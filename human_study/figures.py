"""Figures of a 2AFC study's results, drawn from `analysis.analyze`'s result and the responses:
per-observer accuracy with Clopper-Pearson intervals and the 50% line, the human-human error
consistency matrix and its distribution, accuracy over trials with the logistic fit, and RTs.

Each function returns a matplotlib Figure (Agg, no pyplot); `write_figures` saves them all.
Nothing here computes a statistic of its own or reads a database.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from audit.plots import style
from human_study.analysis import StudyAnalysis, learning_curve

HUMAN = style.condition_colour("human")
CHANCE = style.REFERENCE_COLOURS["null"]
FIGURES = ("accuracy", "consistency", "learning", "response_times")


def accuracy_figure(result: StudyAnalysis):
    """Accuracy per observer (main trials) with Clopper-Pearson intervals; dashed line at chance."""
    table = result.observers.dropna(subset=["accuracy"])
    fig, ax = style.new_figure("one")
    x = np.arange(len(table))
    acc = table["accuracy"].to_numpy(dtype=float)
    err = np.vstack([acc - table["cp_low"].to_numpy(dtype=float), table["cp_high"].to_numpy(dtype=float) - acc])
    ax.errorbar(x, acc, yerr=err, fmt="o", color=HUMAN, capsize=2, lw=1)
    ax.axhline(result.chance, color=CHANCE, ls="--", lw=1, label=f"chance ({100 * result.chance:.0f}%)")
    if len(acc):
        ax.axhline(float(acc.mean()), color=HUMAN, ls=":", lw=1, label=f"mean ({100 * acc.mean():.1f}%)")
    _observer_ticks(ax, "x", list(table["subj"]))
    ax.set_xlabel("observer")
    ax.set_ylabel(f"accuracy ({100 * (1 - result.alpha):g}% Clopper\u2013Pearson)")
    ax.set_ylim(0, 1)
    style.percent_axis(ax)
    _legend_above(ax)
    return fig


def _observer_ticks(ax, axis: str, subjects: list[str], *, most: int = 20) -> None:
    """Observer numbers as ticks, every k-th one where there are more than `most`, so none overlap."""
    step = max(1, math.ceil(len(subjects) / most))
    at = list(range(0, len(subjects), step))
    getattr(ax, f"set_{axis}ticks")(at, [subjects[i].replace("subject-", "") for i in at])


def _plain_log_ticks(axis) -> None:
    """A log axis labelled in plain numbers at 1, 2 and 5 of each decade, with unlabelled minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _legend_above(ax) -> None:
    """The legend above the axes, outside the data, in one row."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(handles), frameon=False,
                  borderaxespad=0.2, handlelength=1.5, columnspacing=1.0)


def consistency_matrix(result: StudyAnalysis) -> pd.DataFrame:
    """The symmetric observers x observers matrix of kappa (1 on the diagonal)."""
    subjects = list(result.observers["subj"])
    position = {s: i for i, s in enumerate(subjects)}
    values = np.full((len(subjects), len(subjects)), np.nan)
    np.fill_diagonal(values, 1.0)
    pairs = result.consistency
    if len(pairs):
        a = pairs["subj_a"].map(position).to_numpy()
        b = pairs["subj_b"].map(position).to_numpy()
        values[a, b] = values[b, a] = pairs["kappa"].to_numpy(dtype=float)
    return pd.DataFrame(values, index=subjects, columns=subjects)


def consistency_figure(result: StudyAnalysis):
    """Left: the kappa matrix between observers; right: the distribution of the pairwise kappas."""
    matrix = consistency_matrix(result)
    fig, (left, right) = style.new_figure("two", 3.0, ncols=2)
    image = left.imshow(matrix.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    _observer_ticks(left, "x", list(matrix.index))
    _observer_ticks(left, "y", list(matrix.index))
    left.set_title("error consistency (\u03ba)")
    fig.colorbar(image, ax=left, shrink=0.8)
    kappas = result.consistency["kappa"].dropna().to_numpy(dtype=float)
    if len(kappas):
        right.hist(kappas, bins=np.linspace(-1, 1, 41), color=HUMAN)
        right.axvline(float(kappas.mean()), color="black", ls=":", lw=1, label=f"mean {kappas.mean():.3f}")
        _legend_above(right)
    right.axvline(0, color=CHANCE, ls="--", lw=1)
    right.set_xlabel("\u03ba between two observers")
    right.set_ylabel("pairs of observers")
    style.integer_ticks(right, "y")
    return fig


def learning_figure(result: StudyAnalysis):
    """Accuracy per block of trials (pooled) and the logistic fit over trial number."""
    fig, ax = style.new_figure("one")
    blocks = result.blocks
    if blocks is not None and len(blocks):
        centre = (blocks["first"].to_numpy(dtype=float) + blocks["last"].to_numpy(dtype=float)) / 2
        ax.plot(centre, blocks["accuracy"].to_numpy(dtype=float), "o", color=HUMAN, label="blocks of trials")
        le = result.learning
        if le is not None and not math.isnan(le.slope):
            numbers = np.linspace(1, max(le.last_number, 2), 200)
            ax.plot(numbers, learning_curve(le, numbers), color="black", lw=1,
                    label=f"logistic fit (slope {le.slope:+.4f})")
        ax.set_xlim(0.5, float(blocks["last"].max()) + 0.5)
    ax.axhline(result.chance, color=CHANCE, ls="--", lw=1)
    ax.set_xlabel("trial number")
    ax.set_ylabel("accuracy (all observers)")
    ax.set_ylim(0, 1)
    style.percent_axis(ax)
    style.integer_ticks(ax, "x")
    _legend_above(ax)
    return fig


def response_time_figure(responses: pd.DataFrame):
    """Response times of main trials: histograms for right and wrong answers (log-spaced bins)."""
    main = responses[(responses["kind"] == "main") & responses["rt_ms"].notna()]
    fig, ax = style.new_figure("one")
    rt = main["rt_ms"].to_numpy(dtype=float)
    if len(rt):
        bins = np.geomspace(max(rt.min(), 50.0) * 0.9, rt.max() * 1.1, 30)
        correct = main["correct"].to_numpy(dtype=bool)
        ax.hist(rt[correct], bins=bins, color=HUMAN, alpha=0.7, label=f"right ({correct.sum()})")
        ax.hist(rt[~correct], bins=bins, color="black", alpha=0.5, label=f"wrong ({(~correct).sum()})")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        _legend_above(ax)
    ax.set_xlabel("response time (ms)")
    ax.set_ylabel("responses")
    style.integer_ticks(ax, "y")  # a count
    return fig


@style.styled
def study_figures(result: StudyAnalysis, responses: pd.DataFrame, *, style: str = "paper") -> dict:
    """Every figure of the study, by name (FIGURES)."""
    return {
        "accuracy": accuracy_figure(result),
        "consistency": consistency_figure(result),
        "learning": learning_figure(result),
        "response_times": response_time_figure(responses),
    }


def psychometric_figure(fits: dict, *, most: int = 12):
    """An adaptive study's psychometric functions, one panel per observer (the first `most`) and the pooled
    fit: proportion correct per level (marker area by trials there), the psignifit curve, and the 75%-correct
    threshold with its credible interval. `fits` is psychometric.psychometric_fits's {subj: PsychometricFit}."""
    from human_study.psychometric import POOLED, THRESHOLD_PC

    names = [s for s in fits if s != POOLED][:most] + ([POOLED] if POOLED in fits else [])
    ncols = min(4, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig, axes = style.new_figure("two", ncols=ncols, nrows=nrows, squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes.ravel(), names, strict=False):
        fit = fits[name]
        data = fit.result.data
        levels = np.exp(data[:, 0]) if fit.sigmoid == "weibull" else data[:, 0]
        ax.scatter(levels, data[:, 1] / data[:, 2], s=6 + 4 * data[:, 2], color=HUMAN, alpha=0.6, lw=0)
        grid = np.geomspace(levels.min(), levels.max(), 200) if fit.sigmoid == "weibull" else np.linspace(
            levels.min(), levels.max(), 200)
        ax.plot(grid, fit.proportion_correct(grid), color="black", lw=1)
        ax.errorbar([fit.threshold], [THRESHOLD_PC], xerr=[[fit.threshold - fit.threshold_low],
                    [fit.threshold_high - fit.threshold]], fmt="o", color="black", ms=3, capsize=2, lw=1)
        ax.axhline(0.5, color=CHANCE, ls="--", lw=0.8)
        ax.set_title(f"{name.replace('subject-', 'observer ')}: {fit.threshold:.3g}", fontsize="small")
        if fit.sigmoid == "weibull":
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis)
        ax.set_ylim(0.3, 1.02)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("gap in mean correctness")
    for ax in axes[:, 0]:
        ax.set_ylabel("proportion correct")
        style.percent_axis(ax)
    return fig


@style.styled
def adaptive_figures(fits: dict, *, style: str = "paper") -> dict:
    """The figures only an adaptive study has, by name: its psychometric functions."""
    return {"psychometric": psychometric_figure(fits)}


def write_figures(result: StudyAnalysis, responses: pd.DataFrame, out_dir: str | os.PathLike,
                  *, prefix: str, formats="png,pdf", fits: dict | None = None) -> list[Path]:
    """Save every figure as <out_dir>/<prefix>_<name>.<format>; returns the paths written. With `fits` (an
    adaptive study's psychometric fits) also <prefix>_psychometric."""
    from audit.store.safety import check_name

    check_name(prefix, "study name")  # read from a study's database: it must not lead out of out_dir
    written = []
    figures = study_figures(result, responses)
    if fits:
        figures.update(adaptive_figures(fits))
    for name, fig in figures.items():
        written += style.save_figure(fig, Path(out_dir) / f"{prefix}_{name}", formats)
    return written
