"""The report's classes part: per-class accuracy, the easiest and hardest classes, and the ensemble confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.metrics import difficulty
from audit.metrics.confusion import ensemble_confusion, top_confusions
from audit.plots import images as image_plots
from audit.plots import similarity as similarity_plots
from audit.report.parts import ReportContent, ReportInputs, register_part
from audit.store import CONFUSION_TABLES, DEEPER_FIGURES


@register_part("classes", order=40)
def classes_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Per-class accuracy (meding2022 A.6, Table 1) and the pooled confusions of the impossible images."""
    content.summary["classes"] = per_class(inputs, content)
    confusion(inputs, content)


def per_class(inputs: ReportInputs, content: ReportContent) -> dict:
    """Per-class accuracy and the easiest and hardest classes (meding2022 A.6, Table 1)."""
    result, names = inputs.result, inputs.names
    class_names = result.class_names
    class_acc = difficulty.per_class_accuracy(inputs.correct, result.labels, len(class_names))
    class_sizes = np.bincount(result.labels, minlength=len(class_names))
    frame = pd.DataFrame(class_acc, columns=names)
    frame.insert(0, "n_images", class_sizes)
    frame.insert(0, "class_name", class_names)
    frame.insert(0, "class", np.arange(len(class_names)))
    frame["mean"] = class_acc.mean(axis=1)
    content.table("per_class", frame)
    k = min(10, int(np.count_nonzero(class_sizes)))
    ranked = difficulty.easiest_hardest_classes(class_acc, k=k)
    content.figure("per_class", lambda: image_plots.class_accuracy_figure(frame))
    return {
        side: [{"class": class_names[c], "accuracy": float(frame["mean"][c])} for c in ranked[side]]
        for side in ("easiest", "hardest")
    }


def confusion(inputs: ReportInputs, content: ReportContent) -> None:
    """The confusion matrix of the final decisions pooled over models, on all images and on the impossible ones."""
    result = inputs.result
    predicted = result.predicted()
    labels = result.labels
    names = [str(c) for c in result.class_names]
    k = len(names)
    impossible = inputs.split.mask("impossible")
    counts = {"all": ensemble_confusion(predicted, labels, k),
              "impossible": ensemble_confusion(predicted, labels, k, mask=impossible)}
    for key, c in counts.items():
        content.outputs[CONFUSION_TABLES[key]] = confusion_frame(c, names)
    top = top_confusions(counts["impossible"], k=10)
    total = int(counts["impossible"].sum())
    content.summary["confusion"] = {
        "n_models": int(predicted.shape[1]),
        "n_impossible": int(impossible.sum()),
        "impossible_top": [{"true": names[i], "predicted": names[j], "decisions": c,
                            "share": c / total if total else None} for i, j, c in top],
    }
    content.outputs[DEEPER_FIGURES["confusion"]] = lambda: similarity_plots.confusion_figure(counts, names)


def confusion_frame(counts: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Counts as a table: one row per true class, one column per predicted class."""
    return pd.DataFrame(counts, index=pd.Index(class_names, name="true_class"), columns=class_names)
