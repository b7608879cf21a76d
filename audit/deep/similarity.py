"""The report's part for what the models share beyond their accuracy: representations and confusions.

`representation_report(result, categories)` reads the stored Gram matrices
(representation/<model>.npz) and compares every pair of models by RSA and linear CKA
(meding2022 A.3, Fig. 7), on all captured images and on the inconclusive ones.
`confusion_report(result, categories)` pools the models' final decisions into a confusion
matrix, on all images and on the impossible ones. Both return a `DeepReport`, and
`similarity_report` both in one, which `audit.report` writes. Nothing is written here.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from audit.deep.summary import DeepReport
from audit.metrics.confusion import ensemble_confusion, top_confusions
from audit.metrics.representation import Representation, compare
from audit.plots import similarity as similarity_plots
from audit.store import CONFUSION_TABLES, DEEPER_FIGURES, REPRESENTATION_TABLES

#: Fewer inconclusive images than this among the captured ones: no RSA or CKA on them.
MIN_SUBSET_IMAGES = 10
SUBSETS = ("all", "inconclusive")
#: Above this much memory for the prepared vectors (M models x n(n - 1)/2 image pairs), RSA/CKA are skipped.
MAX_VECTOR_BYTES = 4e9


def similarity_report(result, categories: np.ndarray, *, deep: bool = True) -> DeepReport:
    """The ensemble confusion matrix and, with the deeper measures (`deep`), RSA and CKA, in one part."""
    out = confusion_report(result, categories)
    rep = representation_report(result, categories) if deep else None
    if rep is not None:
        out.summary.update(rep.summary)
        out.notes.extend(rep.notes)
        out.tables.update(rep.tables)
        out.figures.update(rep.figures)
    return out


def model_groups(result) -> dict[str, str]:
    """Each model's group (its condition), from the models table."""
    return dict(zip(result.models["name"], result.models.get("group", pd.Series(dtype=object)), strict=False))


def base_model(result, names: list[str]) -> str:
    """The first model of the "base" group (meding2022's base network), else the first model."""
    groups = model_groups(result)
    return next((m for m in names if groups.get(m) == "base"), names[0])


# --------------------------------------------------------------------------- representational similarity
def representation_report(result, categories: np.ndarray, *, figures_too: bool = True) -> DeepReport | None:
    """RSA and linear CKA between the models that stored a representation, or None when none did.

    The Gram matrices are read one model at a time (`audit.metrics.representation.compare`).
    """
    found = {m: _stored_ids(result, m) for m in result.model_names}
    found = {m: ids for m, ids in found.items() if ids is not None}
    if not found:
        return None
    out = DeepReport()
    names = list(found)
    if len(names) < 2:
        out.notes.append(f"representational similarity needs two models with stored representations; only "
                         f"{names[0]} has one")
        return out
    base = base_model(result, names)
    ids = found[base]
    other = [m for m in names if not np.array_equal(found[m], ids)]
    if other:
        out.notes.append(f"representations of other images (another --rsa-images) left out of RSA/CKA: {', '.join(other)}")
        names = [m for m in names if m not in other]
        if len(names) < 2:
            return out
    cats = np.asarray(categories)[ids]
    subsets = {"all": None}
    inconclusive = np.flatnonzero(cats == "inconclusive")
    if len(inconclusive) >= MIN_SUBSET_IMAGES:
        subsets["inconclusive"] = inconclusive
    else:
        out.notes.append(f"RSA/CKA on inconclusive images skipped: {len(inconclusive)} of the {len(ids)} captured "
                         f"images are inconclusive (fewer than {MIN_SUBSET_IMAGES})")
    n_pairs = len(ids) * (len(ids) - 1) // 2
    needed = 2 * 4 * n_pairs * len(names) * len(subsets)  # the float32 vectors of both measures
    if needed > MAX_VECTOR_BYTES:
        out.notes.append(f"RSA/CKA skipped: {len(names)} models x {len(ids):,} images would need "
                         f"{needed / 1e9:.1f} GB; rerun with a smaller --rsa-images")
        return out
    t0 = time.perf_counter()
    compared = compare(names, lambda m: Representation.from_arrays(result.representation(m)), subsets)
    summary = {"models": names, "base": base, "n_images": int(len(ids)), "method": "spearman",
               "n_inconclusive": int(len(inconclusive)), "mean": {}, "vs_base": {},  # vs_base: {rsa_all: {model: v}}
               "seconds": round(time.perf_counter() - t0, 3)}
    rows, matrices = [], {}
    off_diagonal = ~np.eye(len(names), dtype=bool)
    for subset, by_measure in compared.items():
        for measure, matrix in by_measure.items():
            frame = pd.DataFrame(matrix, index=names, columns=names).rename_axis("model")
            out.tables[REPRESENTATION_TABLES[f"{measure}_{subset}"]] = frame
            matrices[(measure, subset)] = frame
            summary["mean"].setdefault(measure, {})[subset] = float(np.nanmean(matrix[off_diagonal]))
            for m in names:
                if m != base:
                    value = float(frame.loc[m, base])
                    rows.append({"model": m, "measure": measure.upper(), "images": subset, "value": value})
                    summary["vs_base"].setdefault(f"{measure}_{subset}", {})[m] = value
    vs = pd.DataFrame(rows, columns=["model", "measure", "images", "value"])
    out.tables[REPRESENTATION_TABLES["vs_base"]] = vs
    out.summary["representation"] = summary
    if figures_too:
        out.figures[DEEPER_FIGURES["representation"]] = lambda: similarity_plots.representation_figure(
            matrices, vs, model_groups(result), base)
    return out


def _stored_ids(result, model: str) -> np.ndarray | None:
    arrays = result.representation(model, fields=("image_ids",))
    return None if arrays is None else arrays["image_ids"]


# --------------------------------------------------------------------------- ensemble confusion matrix
def confusion_report(result, categories: np.ndarray, *, figures_too: bool = True) -> DeepReport:
    """The confusion matrix of the final decisions pooled over models, on all images and on the impossible ones."""
    out = DeepReport()
    predicted = result.predicted()
    labels = result.labels
    names = [str(c) for c in result.class_names]
    k = len(names)
    impossible = np.asarray(categories) == "impossible"
    counts = {"all": ensemble_confusion(predicted, labels, k),
              "impossible": ensemble_confusion(predicted, labels, k, mask=impossible)}
    for key, c in counts.items():
        out.tables[CONFUSION_TABLES[key]] = confusion_frame(c, names)
    top = top_confusions(counts["impossible"], k=10)
    total = int(counts["impossible"].sum())
    out.summary["confusion"] = {
        "n_models": int(predicted.shape[1]),
        "n_impossible": int(impossible.sum()),
        "impossible_top": [{"true": names[i], "predicted": names[j], "decisions": c,
                            "share": c / total if total else None} for i, j, c in top],
    }
    if figures_too:
        out.figures[DEEPER_FIGURES["confusion"]] = lambda: similarity_plots.confusion_figure(counts, names)
    return out


def confusion_frame(counts: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Counts as a table: one row per true class, one column per predicted class."""
    return pd.DataFrame(counts, index=pd.Index(class_names, name="true_class"), columns=class_names)


# --------------------------------------------------------------------------- the printed summary
def format_similarity_summary(summary: dict) -> list[str]:
    """Lines for `audit.report.format_summary`: mean RSA and CKA, and what impossible images are taken for."""
    lines: list[str] = []
    rep = summary.get("representation")
    if rep:
        lines.append(f"  representations ({len(rep['models'])} models' penultimate layers, "
                     f"{rep['n_images']:,} images; mean over pairs)")
        for measure, label in (("rsa", "RSA (Spearman)"), ("cka", "linear CKA")):
            means = rep["mean"].get(measure, {})
            lines.append(f"    {label:<16}" + "   ".join(f"{s} {v:.3f}" for s, v in means.items()))
    conf = summary.get("confusion")
    if conf and conf.get("impossible_top"):
        top = conf["impossible_top"][:3]
        lines.append(f"  impossible images, most frequent confusions (share of the {conf['n_models']} models' "
                     "decisions on them)")
        lines.append("    " + ", ".join(f"{t['true']} as {t['predicted']} {100 * t['share']:.1f}%" for t in top))
    if lines:
        lines.insert(0, "Representations and confusions")
    return lines
