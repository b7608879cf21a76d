"""The report's representations part: how alike the models' penultimate layers are, by RSA and linear CKA.

`representation_part` reads the stored Gram matrices (representation/<model>.npz) and compares every pair of
models (meding2022 A.3, Fig. 7), on all captured images and on the inconclusive ones. Nothing is written here.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from audit.metrics.representation import Representation, compare
from audit.plots import similarity as similarity_plots
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, register_part
from audit.store import DEEPER_FIGURES, REPRESENTATION_TABLES

#: Fewer inconclusive images than this among the captured ones: no RSA or CKA on them.
MIN_SUBSET_IMAGES = 10
SUBSETS = ("all", "inconclusive")
#: Above this much memory for the prepared vectors (M models x n(n - 1)/2 image pairs), RSA/CKA are skipped.
MAX_VECTOR_BYTES = 4e9


@register_part("representations", order=70, deep=True, summary_lines=text.similarity_lines)
def representation_part(inputs: ReportInputs, content: ReportContent) -> None:
    """RSA and linear CKA between the models that stored a representation (none stored: nothing added)."""
    representation_report(inputs.result, inputs.categories, content)


def model_groups(result) -> dict[str, str]:
    """Each model's group (its condition), from the models table."""
    return dict(zip(result.models["name"], result.models.get("group", pd.Series(dtype=object)), strict=False))


def base_model(result, names: list[str]) -> str:
    """The first model of the "base" group (meding2022's base network), else the first model."""
    groups = model_groups(result)
    return next((m for m in names if groups.get(m) == "base"), names[0])


# --------------------------------------------------------------------------- representational similarity
def representation_report(result, categories: np.ndarray, out: ReportContent, *, figures_too: bool = True) -> None:
    """RSA and linear CKA between the models that stored a representation, added to `out`.

    The Gram matrices are read one model at a time (`audit.metrics.representation.compare`).
    """
    found = {m: _stored_ids(result, m) for m in result.model_names}
    found = {m: ids for m, ids in found.items() if ids is not None}
    if not found:
        return
    names = list(found)
    if len(names) < 2:
        out.notes.append(f"representational similarity needs two models with stored representations; only "
                         f"{names[0]} has one")
        return
    base = base_model(result, names)
    ids = found[base]
    other = [m for m in names if not np.array_equal(found[m], ids)]
    if other:
        out.notes.append(f"representations of other images (another --rsa-images) left out of RSA/CKA: {', '.join(other)}")
        names = [m for m in names if m not in other]
        if len(names) < 2:
            return
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
        return
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
            out.outputs[REPRESENTATION_TABLES[f"{measure}_{subset}"]] = frame
            matrices[(measure, subset)] = frame
            summary["mean"].setdefault(measure, {})[subset] = float(np.nanmean(matrix[off_diagonal]))
            for m in names:
                if m != base:
                    value = float(frame.loc[m, base])
                    rows.append({"model": m, "measure": measure.upper(), "images": subset, "value": value})
                    summary["vs_base"].setdefault(f"{measure}_{subset}", {})[m] = value
    vs = pd.DataFrame(rows, columns=["model", "measure", "images", "value"])
    out.outputs[REPRESENTATION_TABLES["vs_base"]] = vs
    out.summary["representation"] = summary
    if figures_too:
        out.outputs[DEEPER_FIGURES["representation"]] = lambda: similarity_plots.representation_figure(
            matrices, vs, model_groups(result), base)


def _stored_ids(result, model: str) -> np.ndarray | None:
    arrays = result.representation(model, fields=("image_ids",))
    return None if arrays is None else arrays["image_ids"]
