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
    ax.set_xticks(x, [s.replace("subject-", "") for s in table["subj"]])
    ax.set_xlabel("observer")
    ax.set_ylabel(f"accuracy ({100 * (1 - result.alpha):g}% Clopper\u2013Pearson)")
    ax.set_ylim(0, 1)
    style.percent_axis(ax)
    ax.legend(loc="lower right", frameon=False)
    return fig


def consistency_matrix(result: StudyAnalysis) -> pd.DataFrame:
    """The symmetric observers x observers matrix of kappa (1 on the diagonal)."""
    subjects = list(result.observers["subj"])
    matrix = pd.DataFrame(np.nan, index=subjects, columns=subjects)
    for s in subjects:
        matrix.loc[s, s] = 1.0
    for r in result.consistency.itertuples():
        matrix.loc[r.subj_a, r.subj_b] = matrix.loc[r.subj_b, r.subj_a] = r.kappa
    return matrix


def consistency_figure(result: StudyAnalysis):
    """Left: the kappa matrix between observers; right: the distribution of the pairwise kappas."""
    matrix = consistency_matrix(result)
    fig, (left, right) = style.new_figure("two", 3.0, ncols=2)
    image = left.imshow(matrix.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    labels = [s.replace("subject-", "") for s in matrix.index]
    left.set_xticks(range(len(labels)), labels)
    left.set_yticks(range(len(labels)), labels)
    left.set_title("error consistency (\u03ba)")
    fig.colorbar(image, ax=left, shrink=0.8)
    kappas = result.consistency["kappa"].dropna().to_numpy(dtype=float)
    if len(kappas):
        right.hist(kappas, bins=np.linspace(-1, 1, 41), color=HUMAN)
        right.axvline(float(kappas.mean()), color="black", ls=":", lw=1, label=f"mean {kappas.mean():.3f}")
        right.legend(loc="upper left", frameon=False)
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
    ax.legend(loc="lower right", frameon=False)
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
        ax.legend(loc="upper right", frameon=False)
    ax.set_xlabel("response time (ms)")
    ax.set_ylabel("responses")
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


def write_figures(result: StudyAnalysis, responses: pd.DataFrame, out_dir: str | os.PathLike,
                  *, prefix: str, formats="png,pdf") -> list[Path]:
    """Save every figure as <out_dir>/<prefix>_<name>.<format>; returns the paths written."""
    written = []
    for name, fig in study_figures(result, responses).items():
        written += style.save_figure(fig, Path(out_dir) / f"{prefix}_{name}", formats)
    return written
