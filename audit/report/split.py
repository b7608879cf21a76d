"""The report's split part: the DDD split, its binomial and beta-binomial nulls, and the agreement scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.metrics import agreement, difficulty
from audit.metrics.difficulty import Split
from audit.plots import split as split_plots
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, register_part
from audit.store import DEEP_TABLES


@register_part("split", order=20, summary_lines=text.split_lines)
def split_part(inputs: ReportInputs, content: ReportContent) -> None:
    """The split and its nulls (meding2022 §3.1-3.2, Fig. 2 and 17), and agreement (hacohen2020 §2).

    Sets `inputs.split`, which every later part reads.
    """
    summary, scores, notes = content.summary, content.scores, content.notes
    correct = inputs.correct
    n_models = correct.shape[1]
    split = Split.from_correct(correct, inputs.tolerance)
    inputs.split = split
    t = split.tolerance_used
    if split.clipped:
        notes.append(split.note)
    if n_models == 1:
        notes.append("one model: trivial = correct and impossible = wrong; the split says nothing about DDD")
    n_corr = np.asarray(split.n_correct)
    categories = np.array(split.categories)
    hist = np.bincount(n_corr, minlength=n_models + 1)
    binom = difficulty.binomial_null(correct)
    bb = difficulty.fit_beta_binomial(n_corr, n_models)
    if n_models == 1:
        notes.append("one model: the beta-binomial fit is not identifiable and equals the observed histogram")
    summary["tolerance"] = int(inputs.tolerance)
    summary["tolerance_used"] = t
    summary["split"] = {
        "counts": split.counts,
        "observed": split.shares,
        "binomial": difficulty.histogram_shares(binom, tolerance=t),
        "beta_binomial": difficulty.histogram_shares(bb.expected, tolerance=t),
    }
    summary["nulls"] = {
        "binomial": {"p": float(correct.mean())},
        "beta_binomial": {
            "alpha": bb.alpha,
            "beta": bb.beta,
            "mean": bb.mean,
            "overdispersion": bb.overdispersion,
            "log_likelihood": bb.log_likelihood,
        },
    }
    hist_frame = pd.DataFrame({"n_correct": np.arange(n_models + 1), "observed": hist, "binomial": binom,
                               "beta_binomial": bb.expected})
    content.table("histogram", hist_frame)
    content.figure("histogram", lambda: split_plots.histogram_figure(  # drawn after the deeper part's label issues
        hist_frame, tolerance=t, label_issues=content.outputs.get(DEEP_TABLES["label_issues_histogram"])))
    scores["n_correct"] = n_corr
    scores["category"] = categories
    scores["tp_agreement"] = agreement.tp_agreement(correct)
    scores["consensus"] = agreement.consensus(inputs.result.predicted())
    scores["mean_true_prob"] = inputs.result.true_prob().astype(float).mean(axis=1)
    summary["agreement"] = {
        "mean_tp_agreement": float(scores["tp_agreement"].mean()),
        "mean_consensus": float(scores["consensus"].mean()),
    }
