"""The set of paper figures one audit yields, by name, from its report tables.

`paper_figures` maps each figure's file stem to a function that draws it in a
style, so a caller saves them (`style.save_figure`) in any format. Only what the
tables hold is drawn: no dynamics without several epochs, no κ with one model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
import pandas as pd

from audit.plots import dynamics, images, split

#: Each figure's file stem, the paper figure it follows, and what it shows (for the HTML report's notes).
FIGURES: dict[str, tuple[str, str]] = {
    "histogram": ("meding2022 Fig. 2, 17",
                  "Images by the number of models that classify them correctly. Dichotomous difficulty shows as two "
                  "spikes at none and all, far above the binomial null of independent models; hatched: images "
                  "flagged as label issues."),
    "kappa_by_condition": ("meding2022 Fig. 3, 16",
                           "Error consistency κ of each condition with the base network, highest first; faint dots "
                           "are single models, diamonds the condition's mean. κ near 0 means independent errors."),
    "error_consistency": ("meding2022 Fig. 6",
                          "κ between every pair of models on all images and on the inconclusive ones. The drop on "
                          "the inconclusive images is the model differences that the split's extremes hide."),
    "decision_maps": ("meding2022 Fig. 4, 5",
                      "Share of correct decisions per epoch, images ordered by mean accuracy: the base network, and "
                      "all models."),
    "swaps_per_epoch": ("meding2022 Fig. 12",
                        "Images whose decision changes from one epoch to the next, per model (condition colours) and "
                        "their mean."),
    "tp_agreement": ("hacohen2020 Fig. 3",
                     "TP-agreement per epoch beside independent models of the same accuracy: a bimodal observed "
                     "distribution means the models learn the images in a shared order."),
    "learning_order": ("hacohen2020 Fig. 6",
                       "Images sorted by Accessibility (how early and by how many models they are learned) in bins "
                       "of 5%: the epoch at which each bin is learned for good, and the share never learned."),
    "per_class_accuracy": ("meding2022 Fig. 15",
                           "Accuracy per class, easiest first: the mean over models, and the range over models."),
    "example_pairs": ("meding2022 Fig. 13, 14",
                      "Pairs of one impossible image (top) and one trivial image (below) of the same class."),
}


class FigureSource(Protocol):
    """What the paper figures read of a report; `audit.report.Report` is one.

    `tables` and `maps` are the report's tables and decision maps by their keys (`audit.store.REPORT_TABLES`,
    `REPORT_MAPS`); `groups` maps each model to its condition. `label_issues` is the label-issue histogram
    (or None); `tp_histograms` is (observed, null) of shape (n_models + 1, n_epochs) or None; `scores` the
    per-image accessibility and learned_epoch (or None); `pixels` the audit's images by index (or None), with
    each image's `categories` and `labels`, and the `class_names`.
    """

    tables: Mapping[str, pd.DataFrame]
    maps: Mapping[str, np.ndarray]
    summary: Mapping
    groups: Mapping[str, str]
    label_issues: pd.DataFrame | None
    tp_histograms: tuple[np.ndarray, np.ndarray] | None
    scores: pd.DataFrame | None
    pixels: object | None
    categories: np.ndarray | None
    labels: np.ndarray | None
    class_names: list[str]


def paper_figures(inputs: FigureSource) -> dict[str, Callable]:
    """{file stem: draw(style=...) -> Figure} for every figure the inputs allow, in `FIGURES` order."""
    tables, maps, summary, groups = inputs.tables, inputs.maps, inputs.summary, inputs.groups
    out: dict[str, Callable] = {}
    if "histogram" in tables:
        out["histogram"] = lambda **kw: split.histogram_figure(
            tables["histogram"], tolerance=int(summary.get("tolerance_used", 1)), label_issues=inputs.label_issues, **kw)
    matrices = {s: tables[f"ec_{s}"] for s in ("all", "inconclusive") if f"ec_{s}" in tables}
    if matrices:
        out["kappa_by_condition"] = lambda **kw: split.kappa_by_condition_figure(matrices, groups, **kw)
        out["error_consistency"] = lambda **kw: split.kappa_matrices_figure(matrices, groups, **kw)
    dyn = summary.get("dynamics") or {}
    if "base" in maps and "all" in maps and dyn:
        n_images = int(summary.get("audit", {}).get("n_images", maps["all"].shape[0]))
        out["decision_maps"] = lambda **kw: dynamics.decision_maps_figure(
            maps["base"], maps["all"], dyn["epochs"], base_model=dyn["base_model"], n_models=len(dyn["models"]),
            n_images=n_images, **kw)
    if "swaps" in tables:
        out["swaps_per_epoch"] = lambda **kw: dynamics.swaps_figure(tables["swaps"], groups, **kw)
    if "tp_by_epoch" in tables:
        hists = inputs.tp_histograms or (None, None)
        out["tp_agreement"] = lambda **kw: dynamics.tp_agreement_figure(tables["tp_by_epoch"], *hists, **kw)
    scores = inputs.scores
    if (scores is not None and {"accessibility", "learned_epoch"} <= set(scores.columns)
            and len(scores) >= 20 and scores["accessibility"].notna().all()):
        out["learning_order"] = lambda **kw: dynamics.learning_order_figure(scores, **kw)
    if "per_class" in tables:
        out["per_class_accuracy"] = lambda **kw: images.class_accuracy_figure(tables["per_class"], **kw)
    if inputs.categories is not None and inputs.labels is not None:
        pairs = images.pick_example_pairs(inputs.categories, inputs.labels) if inputs.pixels is not None else []
        out["example_pairs"] = lambda **kw: images.example_pairs_figure(
            inputs.pixels, pairs, inputs.class_names, inputs.labels, **kw)
    return out
