"""The report's dynamics part: how the models' decisions change over the epochs they recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.metrics import agreement, groups
from audit.metrics import dynamics as dynamics_metrics
from audit.plots import dynamics as dynamics_plots
from audit.plots import split as split_plots
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, num, register_part

#: rows of the binned decision maps (images sorted by when they are learned)
DECISION_MAP_ROWS = 500


@register_part("dynamics", order=50, depends_on_tolerance=False, summary_lines=text.dynamics_lines)
def dynamics_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Learning dynamics over the epochs the models share (meding2022 Fig. 4, 5, 12; hacohen2020 §2-3)."""
    content.summary["dynamics"] = dynamics(inputs, content)


def dynamics(inputs: ReportInputs, content: ReportContent) -> dict | None:
    """The dynamics' summary entry (None without models of several epochs); tables, maps and scores to `content`."""
    result, names, epochs_of, notes = inputs.result, inputs.names, inputs.epochs_of, content.notes
    scores = content.scores
    dyn = [m for m in names if len(epochs_of[m]) >= 2]
    if not dyn:
        notes.append("no model has more than one recorded epoch: learning dynamics are skipped")
        return None
    skipped = [m for m in names if m not in dyn]
    if skipped:
        notes.append(
            f"dynamics use the {len(dyn)} model(s) with several epochs; left out: {', '.join(skipped)}"
        )
    lengths = {len(epochs_of[m]) for m in dyn}
    by_epoch = result.correct_by_epoch(dyn)  # (n_images, n_dyn, n_epochs), shared epochs only
    n_epochs = by_epoch.shape[2]
    epochs = epochs_of[dyn[0]][:n_epochs]
    if len(lengths) > 1:
        notes.append(
            f"models record different numbers of epochs; dynamics use the first {n_epochs} shared epochs"
        )
    n_images, n_dyn = by_epoch.shape[:2]

    swaps = dynamics_metrics.swaps_per_epoch(by_epoch)  # (n_dyn, n_epochs - 1)
    frame = pd.DataFrame(swaps.T, columns=dyn)
    frame.insert(0, "epoch_to", epochs[1:])
    frame.insert(0, "epoch_from", epochs[:-1])
    frame["mean"] = swaps.mean(axis=0)
    content.table("swaps", frame)
    groups_of = inputs.groups_of  # all models': one palette
    content.figure("swaps", lambda: dynamics_plots.swaps_figure(frame, groups_of))

    counts = by_epoch.sum(axis=1, dtype=np.int32)  # n models right, per image and epoch
    tpa = counts / n_dyn
    acc_by_epoch = by_epoch.mean(axis=0)  # (n_dyn, n_epochs)
    bimodal = agreement.bimodality_score(tpa)
    bimodal_null = agreement.bimodality_null(acc_by_epoch)
    tpa_hist, null_hist = agreement.tp_agreement_histograms(by_epoch)
    tp_frame = pd.DataFrame({"epoch": epochs, "mean_accuracy": acc_by_epoch.mean(axis=0),
                             "mean_tp_agreement": tpa.mean(axis=0), "bimodality": bimodal,
                             "bimodality_null": bimodal_null})
    content.table("tp_by_epoch", tp_frame)
    content.array("tp_observed", tpa_hist)
    content.array("tp_null", null_hist)
    content.figure("tp_agreement", lambda: dynamics_plots.tp_agreement_figure(tp_frame, tpa_hist, null_hist))

    base = dyn.index(split_plots.base_model_of(groups_of, dyn))
    base_map = dynamics_metrics.binned_decision_map(by_epoch[:, base, :], n_bins=DECISION_MAP_ROWS)
    all_map = dynamics_metrics.binned_decision_map(by_epoch, n_bins=DECISION_MAP_ROWS)
    content.array("base", base_map)
    content.array("all", all_map)
    content.figure("decision_maps", lambda: dynamics_plots.decision_maps_figure(
        base_map, all_map, epochs, base_model=dyn[base], n_models=n_dyn, n_images=n_images))

    accessibility = agreement.accessibility(by_epoch)
    learned = dynamics_metrics.learned_epoch(by_epoch, epochs=epochs, reduce="median")
    forgotten = dynamics_metrics.forgetting_events(by_epoch).sum(axis=1)
    scores["accessibility"] = accessibility
    scores["learned_epoch"] = learned
    scores["forgetting_events"] = forgotten

    out = {
        "models": dyn,
        "base_model": dyn[base],
        "epochs": [int(e) for e in epochs],
        "mean_swap_share": float(swaps.mean() / n_images),
        "bimodality": [num(v) for v in bimodal],
        "bimodality_null": [num(v) for v in bimodal_null],
        "mean_accessibility": float(accessibility.mean()),
        "never_learned_share": float(np.isnan(learned).mean()),
        "median_learned_epoch": num(np.nanmedian(learned)) if not np.isnan(learned).all() else None,
        "mean_forgetting_events": float(forgotten.mean() / n_dyn),
    }
    if n_dyn >= 2:
        half = groups.accessibility_correlation(
            agreement.accessibility(by_epoch[:, 0::2]), agreement.accessibility(by_epoch[:, 1::2])
        )
        out["split_half_accessibility_r"] = num(half["r"])
    return out
