"""The report's training-scores part: other difficulty scores from the training dynamics, and the split's stability.

`training_scores_report` computes the training-dynamics scores of every image (cartography, EL2N,
AUM, forgetting, first learned epoch; audit.metrics.training_scores), their Spearman matrix with
DDD's n_correct, and a cartography map. `stability_report` resamples the models
(audit.metrics.stability). Both add to a `ReportContent`. Nothing is written here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.metrics import stability as stab
from audit.metrics import training_scores as ts
from audit.metrics.difficulty import CATEGORIES
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, num, register_part
from audit.store import DEEPER_FIGURES, SCORE_FIELDS, SCORE_TABLES, has_fields

#: Per-image columns this part adds to images.parquet.
SCORE_IMAGE_COLUMNS = ("cartography_confidence", "cartography_variability", "cartography_correctness", "el2n", "aum", "first_learned_epoch",
                       "trivial_resample_share", "impossible_resample_share")
#: Names in the Spearman matrix and the summary.
SCORE_LABELS = {"n_correct": "n_correct", "cartography_confidence": "confidence",
                "cartography_variability": "variability", "cartography_correctness": "correctness", "el2n": "EL2N", "aum": "AUM",
                "forgetting_events_mean": "forgetting events", "first_learned_epoch": "first learned epoch"}
#: at most this many images are drawn in the cartography map (a seeded subset; the table has all)
MAP_POINTS = 20000
#: above this many models the stability curve takes 50 draws per size on ZOO_CURVE_IMAGES images
ZOO_MODELS = 100
ZOO_CURVE_IMAGES = 10000


@register_part("training_scores", order=80, deep=True, summary_lines=text.scores_lines)
def training_scores_part(inputs: ReportInputs, content: ReportContent) -> None:
    """The training-dynamics scores, and the split's stability under resampled models."""
    split = inputs.split
    training_scores_report(inputs.result, split.categories, split.n_correct, content)
    stability_report(inputs.correct, split.tolerance_used, content, random_state=inputs.random_state)


def training_scores_report(result, categories: np.ndarray, n_correct: np.ndarray, out: ReportContent, *,
                           figures_too: bool = True) -> None:
    """Training-dynamics scores of the validation images over the models with several recorded epochs.

    EL2N and AUM need the margin and the sum of squared probabilities, which trainers record since
    they were added; models without them are left out of those two scores (with a note), and an
    audit where no model has them gets the other scores only.
    """
    names = result.model_names
    dyn = [m for m in names if len(result.epochs(m)) >= 2 and result.epochs(m)[-1] >= 1]
    if not dyn:
        return
    with_fields = [m for m in dyn if has_fields(result.path, m, SCORE_FIELDS)]
    n_epochs = min(len(result.epochs(m)) for m in dyn)
    epochs = result.epochs(dyn[0])[:n_epochs]
    frame = _mean_over_models(result, dyn, with_fields, epochs)
    at = ts.el2n_epoch(epochs) if with_fields else None
    left_out = [m for m in dyn if m not in with_fields]
    if with_fields and left_out:
        out.notes.append(f"EL2N and AUM use the {len(with_fields)} models that record margins; left out: "
                         f"{', '.join(left_out)}")
    elif not with_fields:
        out.notes.append("EL2N and AUM are absent: no model of this audit records margins (audits written before "
                         "they were recorded; train again to get them)")
    ranked = pd.concat([pd.DataFrame({"n_correct": np.asarray(n_correct, dtype=float)}), frame], axis=1)
    rho = ts.spearman_matrix(ranked).rename(index=SCORE_LABELS, columns=SCORE_LABELS).rename_axis("score")
    out.outputs[SCORE_TABLES["score_correlation"]] = rho
    for col in frame.columns:
        if col in SCORE_IMAGE_COLUMNS:
            out.scores[col] = frame[col].to_numpy()
    cats = np.asarray(categories)
    out.summary["training_scores"] = {
        "models": dyn,
        "margin_models": with_fields,
        "epochs": [int(epochs[epochs >= 1][0]), int(epochs[-1])],
        "el2n_epoch": at,
        "scores": [SCORE_LABELS[c] for c in frame.columns],
        "spearman_n_correct": {k: num(v) for k, v in rho["n_correct"].items() if k != "n_correct"},
        "mean_by_category": {c: {SCORE_LABELS[s]: num(frame.loc[cats == c, s].mean()) for s in frame.columns}
                             for c in CATEGORIES if (cats == c).any()},
    }
    train = _training_split_scores(result, dyn, with_fields, epochs)
    if train is not None:
        out.outputs[SCORE_TABLES["training_split"]] = train
        out.summary["training_scores"]["training_split_images"] = len(train)
    if figures_too:
        pick = _subset(len(cats), MAP_POINTS)
        points = pd.DataFrame({"variability": frame["cartography_variability"].to_numpy()[pick],
                               "confidence": frame["cartography_confidence"].to_numpy()[pick], "category": cats[pick]})
        out.outputs[DEEPER_FIGURES["training_scores"]] = lambda: _fig_training_scores(points, rho, len(dyn), len(cats))


def _mean_over_models(result, dyn: list[str], with_fields: list[str], epochs: np.ndarray, *,
                      split: str = "val", image_ids: np.ndarray | None = None) -> pd.DataFrame:
    """`training_scores` of each model in turn, averaged over the models (every score is a mean over them).

    One model's decision file is read at a time, past the audit's cache, so memory stays at one
    model's epochs however many models and epochs the audit has.
    """
    from audit.store import read_decisions

    n_epochs = len(epochs)
    sums: dict[str, np.ndarray] = {}
    for m in dyn:
        fields = ("correct", "true_prob", *(SCORE_FIELDS if m in with_fields else ()))
        ids = result.image_ids if image_ids is None else image_ids
        _, arrays = read_decisions(result.path, m, fields, ids, split)
        cubes = {f: arrays[f][:n_epochs].T[:, None, :] for f in fields}
        frame = ts.training_scores(cubes, epochs)
        for col in frame.columns:
            sums[col] = sums.get(col, 0.0) + frame[col].to_numpy()
    counts = {col: (len(with_fields) if col in ("el2n", "aum") else len(dyn)) for col in sums}
    return pd.DataFrame({col: sums[col] / counts[col] for col in ts.SCORE_COLUMNS if col in sums})


def _training_split_scores(result, dyn: list[str], with_fields: list[str], epochs: np.ndarray) -> pd.DataFrame | None:
    """The same scores on the training split, when every model recorded it (`--record-train`), else None.

    This is where the papers score their images; the training split's image ids run 0..n-1.
    """
    import pyarrow.parquet as pq

    from audit.store import decision_path

    files = [decision_path(result.path, m, "train") for m in dyn]
    if not all(f.exists() for f in files):
        return None
    ids = np.unique(pq.read_table(files[0], columns=["image_id"]).column("image_id").to_numpy())
    train_fields = [m for m in with_fields if has_fields(result.path, m, SCORE_FIELDS, "train")]
    frame = _mean_over_models(result, dyn, train_fields, epochs, split="train", image_ids=ids)
    frame.insert(0, "image_id", ids)
    return frame


def stability_report(correct: np.ndarray, tolerance: int, out: ReportContent, *, random_state: int = 0,
                     figures_too: bool = True) -> None:
    """The split under resampled models: shares and mean κ per number of models, per-image shares."""
    n_models = correct.shape[1]
    if n_models < stab.min_models(tolerance):
        out.notes.append(f"the stability of the split needs at least {stab.min_models(tolerance)} models; "
                         f"this audit has {n_models}")
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # thin products: one BLAS thread is faster (see there)
        # a zoo: fewer draws, and the curve on a subset of the images (each size costs n_images x M x draws)
        zoo = n_models > ZOO_MODELS
        res = stab.split_stability(correct, tolerance=tolerance, random_state=random_state,
                                   n_draws=50 if zoo else 200, max_images=ZOO_CURVE_IMAGES if zoo else None)
    out.outputs[SCORE_TABLES["stability"]] = res.curve
    out.scores["trivial_resample_share"] = res.per_image["trivial_share"].to_numpy()
    out.scores["impossible_resample_share"] = res.per_image["impossible_share"].to_numpy()
    summary = dict(res.summary)
    summary["always_trivial_share"] = float((res.per_image["trivial_share"] == 1).mean())
    summary["always_impossible_share"] = float((res.per_image["impossible_share"] == 1).mean())
    out.summary["stability"] = summary
    if figures_too:
        out.outputs[DEEPER_FIGURES["stability"]] = lambda: _fig_stability(res.curve, n_models)


def _subset(n: int, k: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=k, replace=False))


def _models(n: int) -> str:
    return f"{int(n):,} model{'' if n == 1 else 's'}"


def _fig_training_scores(points: pd.DataFrame, rho: pd.DataFrame, n_models: int, n_images: int | None = None):
    """Cartography map (Swayamdipta et al. 2020 Fig. 1) coloured by DDD category, and the Spearman matrix."""
    from audit.plots import style

    fig, (ax, bx) = style.new_figure("two", 3.4, ncols=2)
    for c in CATEGORIES:
        part = points[points["category"] == c]
        ax.scatter(part["variability"], part["confidence"], s=2, lw=0, alpha=0.5,
                   color=style.CATEGORY_COLOURS[c], label=f"{c} ({len(part):,})", rasterized=True)
    ax.set_xlabel("variability (sd of true-class probability)")
    ax.set_ylabel("confidence (mean true-class probability)")
    n_images = len(points) if n_images is None else n_images
    of = f"{n_images:,} images" if len(points) >= n_images else f"a sample of {len(points):,} of {n_images:,} images"
    ax.set_title(f"Cartography map\n{_models(n_models)}, {of}")
    ax.legend(markerscale=4, loc="upper right")
    values = rho.to_numpy(dtype=float)
    im = bx.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
    labels = list(rho.columns)
    side = 0.3 * style.figure_width("two")
    if style.matrix_labels(bx, labels, side_in=side):
        size = min(5.0, 0.5 * side * 72 / max(len(labels), 1))  # the values fit their cells
        for i, j in np.argwhere(~np.isnan(values)):
            bx.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=size,
                    color="white" if abs(values[i, j]) > 0.6 else "black")
    bx.set_title("Spearman's ρ between per-image scores")
    fig.colorbar(im, ax=bx, shrink=0.8)
    return fig


def stability_projection(curve: pd.DataFrame, n_models: int) -> str | None:
    """What the fit says beyond the audit's `n_models`, as one sentence; None when the curve stops there."""
    fits = [c for c in CATEGORIES if f"{c}_fit" in curve]
    beyond = curve[curve["n_models"] > n_models]
    if beyond.empty or not fits:
        return None
    at = beyond.loc[beyond["n_models"].idxmax()]
    parts = [f"{c} {at[f'{c}_fit']:.1%}" for c in fits if pd.notna(at[f"{c}_fit"])]
    return f"Projected by the fit at {int(at['n_models']):,} models: {', '.join(parts)}." if parts else None


def _fig_stability(curve: pd.DataFrame, n_models: int):
    """Shares and mean κ on inconclusive images by number of models up to the audit's: resampled mean, 95% band,
    fitted model (dashed); what the fit projects beyond the audit's models is stated under the panels."""
    from audit.plots import style

    fig, (ax, bx) = style.new_figure("two", 3.0, ncols=2)
    seen = curve[curve["observed"] & (curve["n_models"] <= n_models)]
    fitted = curve[curve["n_models"] <= n_models]
    low = int(seen["n_models"].min()) if len(seen) else n_models
    for c in CATEGORIES:
        colour = style.CATEGORY_COLOURS[c]
        ax.plot(seen["n_models"], seen[f"{c}_mean"], color=colour, label=c, marker="o" if len(seen) < 3 else None)
        ax.fill_between(seen["n_models"], seen[f"{c}_low"], seen[f"{c}_high"], color=colour, alpha=0.25, lw=0)
        if f"{c}_fit" in curve:
            ax.plot(fitted["n_models"], fitted[f"{c}_fit"], color=colour, ls="--", lw=0.8)
    ax.set_xlabel("number of models (dashed: inflated beta-binomial fit)")
    ax.set_ylabel("share of images")
    style.percent_axis(ax)
    ax.legend()
    ax.set_title(f"Split by number of models\nsubsets of the audit's {_models(n_models)}")
    if "kappa_mean" in seen:
        bx.plot(seen["n_models"], seen["kappa_mean"], color=style.REFERENCE_COLOURS["mean"],
                marker="o" if len(seen) < 3 else None)
        bx.fill_between(seen["n_models"], seen["kappa_low"], seen["kappa_high"], color=style.REFERENCE_COLOURS["null"],
                        alpha=0.3, lw=0)
    bx.set_xlabel("number of models")
    bx.set_ylabel("mean κ, inconclusive images")
    bx.set_title("κ on the inconclusive images")
    for axes in (ax, bx):
        style.count_ticks(axes, low, n_models)
    projection = stability_projection(curve, n_models)
    if projection:
        fig.supxlabel(projection + " The report's stability.csv holds the whole fitted curve.",
                      fontsize="small", color="#444444")
    return fig
