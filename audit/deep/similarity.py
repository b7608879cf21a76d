"""The report's part for what the models share beyond their accuracy: representations and confusions.

`representation_report(result, categories)` reads the stored Gram matrices
(representation/<model>.npz) and compares every pair of models by RSA and linear CKA
(meding2022 A.3, Fig. 7), on all captured images and on the inconclusive ones.
`confusion_report(result, categories)` pools the models' final decisions into a confusion
matrix, on all images and on the impossible ones. Both return a `DeepReport`; `audit.report`
writes it. Nothing is written here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit import figures
from audit.deep.summary import DeepReport
from audit.metrics.confusion import ensemble_confusion, row_shares, top_confusions
from audit.metrics.representation import Representation, similarity_matrices
from audit.store import CONFUSION_TABLES, DEEPER_FIGURES, REPRESENTATION_TABLES

#: Fewer inconclusive images than this among the captured ones: no RSA or CKA on them.
MIN_SUBSET_IMAGES = 10
SUBSETS = ("all", "inconclusive")


def base_model(result, names: list[str]) -> str:
    """The first model of the "base" group (meding2022's base network), else the first model."""
    groups = dict(zip(result.models["name"], result.models.get("group", pd.Series(dtype=object)), strict=False))
    return next((m for m in names if groups.get(m) == "base"), names[0])


# --------------------------------------------------------------------------- representational similarity
def representation_report(result, categories: np.ndarray, *, figures_too: bool = True) -> DeepReport | None:
    """RSA and linear CKA between the models that stored a representation, or None when fewer than two did."""
    stored = {m: result.representation(m) for m in result.model_names}
    stored = {m: a for m, a in stored.items() if a is not None}
    out = DeepReport()
    if len(stored) < 2:
        if stored:
            out.notes.append("representational similarity needs two models with stored representations; "
                             f"only {next(iter(stored))} has one")
            return out
        return None
    reps = {m: Representation.from_arrays(a) for m, a in stored.items()}
    names = list(reps)
    base = base_model(result, names)
    ids = reps[base].image_ids
    other = [m for m in names if not np.array_equal(reps[m].image_ids, ids)]
    if other:
        out.notes.append(f"representations of other images (another --rsa-images) left out of RSA/CKA: {', '.join(other)}")
        names = [m for m in names if m not in other]
        reps = {m: reps[m] for m in names}
        if len(names) < 2:
            return out
    cats = np.asarray(categories)[ids]
    positions = {"all": np.arange(len(ids)), "inconclusive": np.flatnonzero(cats == "inconclusive")}
    summary = {"models": names, "base": base, "n_images": int(len(ids)), "method": "spearman",
               "n_inconclusive": int(len(positions["inconclusive"])), "mean": {}, "vs_base": {}}  # {rsa_all: {model: v}}
    rows = []
    matrices = {}
    for subset in SUBSETS:
        pos = positions[subset]
        if len(pos) < MIN_SUBSET_IMAGES:
            out.notes.append(f"RSA/CKA on inconclusive images skipped: {len(pos)} of the {len(ids)} captured "
                             f"images are inconclusive (fewer than {MIN_SUBSET_IMAGES})")
            continue
        sub = reps if subset == "all" else {m: r.subset(pos) for m, r in reps.items()}
        result_pair = similarity_matrices(sub)
        for measure in ("rsa", "cka"):
            frame = pd.DataFrame(result_pair[measure], index=names, columns=names).rename_axis("model")
            out.tables[REPRESENTATION_TABLES[f"{measure}_{subset}"]] = frame
            matrices[(measure, subset)] = frame
            off = result_pair[measure][~np.eye(len(names), dtype=bool)]
            summary["mean"].setdefault(measure, {})[subset] = float(np.nanmean(off))
            for m in names:
                if m != base:
                    value = float(frame.loc[m, base])
                    rows.append({"model": m, "measure": measure.upper(), "images": subset, "value": value})
                    summary["vs_base"].setdefault(f"{measure}_{subset}", {})[m] = value
    vs = pd.DataFrame(rows, columns=["model", "measure", "images", "value"])
    out.tables[REPRESENTATION_TABLES["vs_base"]] = vs
    out.summary["representation"] = summary
    if figures_too:
        out.figures[DEEPER_FIGURES["representation"]] = lambda: _fig_representation(matrices, vs, base)
    return out


def _fig_representation(matrices: dict, vs: pd.DataFrame, base: str):
    """RSA and CKA matrices on all images, and each model against the base (meding2022 Fig. 7)."""
    fig, axes = figures.new_figure(13, 4.4, ncols=3)
    for ax, measure in zip(axes[:2], ("rsa", "cka"), strict=True):
        frame = matrices[(measure, "all")]
        im = ax.imshow(frame.to_numpy(), vmin=0, vmax=1, cmap="viridis")
        n = len(frame)
        if n <= 40:
            ax.set_xticks(range(n), frame.columns, rotation=90, fontsize=6)
            ax.set_yticks(range(n), frame.index, fontsize=6)
        ax.set_title(f"{measure.upper()}, all captured images")
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[2]
    models = list(dict.fromkeys(vs["model"]))
    x = np.arange(len(models))
    keys = [(m, s) for m in ("RSA", "CKA") for s in SUBSETS if ((vs["measure"] == m) & (vs["images"] == s)).any()]
    width = 0.8 / max(1, len(keys))
    for i, (measure, subset) in enumerate(keys):
        part = vs[(vs["measure"] == measure) & (vs["images"] == subset)].set_index("model").reindex(models)
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, part["value"], width, label=f"{measure}, {subset}")
    ax.set_xticks(x, models, rotation=90, fontsize=6 if len(models) > 20 else 8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"similarity to {base}")
    ax.set_title("Each model against the base")
    ax.legend(fontsize=7)
    return fig


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
        out.figures[DEEPER_FIGURES["confusion"]] = lambda: _fig_confusion(counts, names)
    return out


def confusion_frame(counts: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Counts as a table: one row per true class, one column per predicted class."""
    return pd.DataFrame(counts, index=pd.Index(class_names, name="true_class"), columns=class_names)


def _fig_confusion(counts: dict, names: list[str]):
    """Row shares of the pooled confusion matrix, on all images and on the impossible ones."""
    fig, axes = figures.new_figure(11, 4.8, ncols=2)
    n = len(names)
    for ax, (key, c) in zip(axes, counts.items(), strict=True):
        im = ax.imshow(row_shares(c), vmin=0, vmax=1, cmap="magma_r")
        if n <= 40:
            ax.set_xticks(range(n), names, rotation=90, fontsize=7)
            ax.set_yticks(range(n), names, fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{key} images ({int(c.sum()):,} decisions)")
        fig.colorbar(im, ax=ax, shrink=0.8, label="share of the row")
    return fig
