"""Chart- and table-ready frames for the report pages, one section per page (the Images and Compare pages'
are in `_image_frames`).

Views of an `audit.report.Report` (its tables, summary and per-image scores), the store's reader and
`audit.metrics`; no Streamlit, so each function is tested without the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics import consistency, dynamics
from audit.metrics.confusion import row_shares
from audit.metrics.difficulty import CATEGORIES, Split
from audit.report import Report
from audit.store import REPRESENTATION_TABLES, read_decisions
from audit.store.files import csv_bytes

#: Rows of a decision map as drawn on screen (the report stores 500).
MAP_ROWS = 200
#: Above this many distinct points the accessibility scatter becomes a 2-d histogram.
SCATTER_MAX_POINTS = 5000


# --------------------------------------------------------------------------- overview
def categories_at(data: Report, tolerance: int) -> np.ndarray:
    """Each image's category at `tolerance`: the report's split (`Report.split`) at that tolerance."""
    return data.split.at(tolerance).categories


def split_table(report: Report) -> pd.DataFrame:
    """The report's split (at its tolerance; `Report.at_tolerance` for another) beside the two nulls.

    Returns
    -------
    frame : DataFrame indexed by category (CATEGORIES), columns images,
        observed, binomial, beta_binomial (shares in [0, 1])
    """
    split = report.summary["split"]
    return pd.DataFrame(
        {
            "images": [split["counts"][c] for c in CATEGORIES],
            "observed": [split["observed"][c] for c in CATEGORIES],
            "binomial": [split["binomial"][c] for c in CATEGORIES],
            "beta_binomial": [split["beta_binomial"][c] for c in CATEGORIES],
        },
        index=pd.Index(CATEGORIES, name="category"),
    )


def histogram_frames(data: Report, tolerance: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The n_correct histogram for a chart: bars (observed, with category) and null curves (long).

    Returns
    -------
    bars : DataFrame with n_correct, images, share, category
    nulls : DataFrame with n_correct, null ("binomial" / "beta-binomial"), images, share
    """
    hist = data.tables["histogram"]
    m = len(hist) - 1
    k = hist["n_correct"].to_numpy()
    total = float(hist["observed"].sum())
    category = Split.from_counts(k, m, tolerance).categories  # the category of each count
    bars = pd.DataFrame(
        {"n_correct": k, "images": hist["observed"].to_numpy(), "share": hist["observed"] / total, "category": category}
    )
    nulls = pd.concat(
        [
            pd.DataFrame({"n_correct": k, "null": label, "images": hist[col].to_numpy(), "share": hist[col] / total})
            for col, label in (("binomial", "binomial"), ("beta_binomial", "beta-binomial"))
        ],
        ignore_index=True,
    )
    return bars, nulls


# --------------------------------------------------------------------------- consistency
ORDERINGS = ("audit order", "accuracy", "variant group", "clustered")


def model_order(kappa: pd.DataFrame, models: pd.DataFrame, how: str) -> list[str]:
    """Model order for the matrices: audit order, accuracy (highest first), variant group, or clustered.

    "clustered" is average-linkage clustering on 1 - kappa, so models that err
    on the same images sit together.
    """
    names = list(kappa.index)
    if how not in ORDERINGS:
        raise ValueError(f"ordering must be one of {ORDERINGS}, got {how!r}")
    info = models.set_index("name").reindex(names)
    if how == "accuracy":
        return list(info["accuracy"].astype(float).sort_values(ascending=False, kind="stable").index)
    if how == "variant group":
        rank = {n: i for i, n in enumerate(names)}
        return sorted(names, key=lambda n: (str(info.loc[n, "group"]), rank[n]))
    if how == "clustered" and len(names) > 2:
        return [names[i] for i in consistency.cluster_order(kappa.to_numpy(dtype=float))]
    return names


#: above this many models the matrices are drawn as images (a heatmap of a million rects is too slow)
HEATMAP_MAX_MODELS = 120


def matrix_image(kappa: pd.DataFrame, order: Sequence[str], reach: float) -> np.ndarray:
    """A kappa matrix in `order` as an RGB image: red (-reach) through white (0) to blue (+reach), like the
    heatmap's colour scale; the diagonal and NaN are light grey. Shape (n, n, 3), uint8."""
    k = kappa.loc[list(order), list(order)].to_numpy(dtype=float)
    x = np.clip(np.nan_to_num(k, nan=0.0) / max(reach, 1e-9), -1.0, 1.0)[..., None]
    red, white, blue = (np.array(c, dtype=float) for c in ((178, 24, 43), (247, 247, 247), (33, 102, 172)))
    rgb = np.where(x < 0, white + (red - white) * -x, white + (blue - white) * x)
    blank = np.isnan(k) | np.eye(len(order), dtype=bool)
    rgb[blank] = (215, 215, 215)
    return rgb.round().astype(np.uint8)


def nearest_models(kappa: pd.DataFrame, model: str, k: int = 10) -> pd.DataFrame:
    """The `k` models whose errors coincide most with `model`'s, and the `k` that coincide least."""
    row = kappa.loc[model].drop(model).astype(float).dropna().sort_values(ascending=False, kind="stable")
    top, bottom = row.head(k), row.tail(k)[::-1]
    return pd.concat([
        pd.DataFrame({"side": "most alike", "model": top.index, "kappa": top.to_numpy()}),
        pd.DataFrame({"side": "least alike", "model": bottom.index, "kappa": bottom.to_numpy()}),
    ], ignore_index=True)


def matrix_long(kappa: pd.DataFrame, order: Sequence[str], models: pd.DataFrame) -> pd.DataFrame:
    """A kappa matrix as long rows for a heatmap (the diagonal, always 1, left out).

    Returns
    -------
    frame : DataFrame with model_a, model_b, kappa, group_a, group_b
    """
    group = dict(zip(models["name"], models["group"], strict=False))
    k = kappa.loc[list(order), list(order)]
    arr = k.to_numpy(dtype=float)
    a, b = np.meshgrid(np.arange(len(order)), np.arange(len(order)), indexing="ij")
    off = a != b
    names = np.asarray(order, dtype=object)
    return pd.DataFrame(
        {
            "model_a": names[a[off]],
            "model_b": names[b[off]],
            "kappa": arr[off],
            "group_a": [group.get(n, "") for n in names[a[off]]],
            "group_b": [group.get(n, "") for n in names[b[off]]],
        }
    )


def group_means(kappa: pd.DataFrame, models: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Mean error consistency within and between variant groups (pairs of distinct models).

    Returns
    -------
    pairs : DataFrame with group_a, group_b, mean_kappa, n_pairs (one row per unordered group pair)
    overall : dict with "within" and "between" (NaN when no such pair) and their pair counts
    """
    names = list(kappa.index)
    group = models.set_index("name").reindex(names)["group"].fillna("").astype(str).to_numpy()
    arr = kappa.to_numpy(dtype=float)
    iu, ju = np.triu_indices(len(names), k=1)
    ga, gb = group[iu], group[ju]
    lo = np.where(ga <= gb, ga, gb)
    hi = np.where(ga <= gb, gb, ga)
    pairs = pd.DataFrame({"group_a": lo, "group_b": hi, "kappa": arr[iu, ju]})
    table = (
        pairs.groupby(["group_a", "group_b"], sort=True)["kappa"]
        .agg(mean_kappa="mean", n_pairs="size")
        .reset_index()
    )
    same = ga == gb
    overall = {
        "within": float(arr[iu, ju][same].mean()) if same.any() else float("nan"),
        "within_pairs": int(same.sum()),
        "between": float(arr[iu, ju][~same].mean()) if (~same).any() else float("nan"),
        "between_pairs": int((~same).sum()),
    }
    return table, overall


# --------------------------------------------------------------------------- dynamics
def rebin_map(share: np.ndarray, n_rows: int = MAP_ROWS) -> np.ndarray:
    """Average consecutive rows of a decision map down to at most `n_rows` (screen resolution)."""
    share = np.asarray(share, dtype=float)
    if len(share) <= n_rows:
        return share
    edges = np.linspace(0, len(share), n_rows + 1).round().astype(np.int64)
    return np.add.reduceat(share, edges[:-1], axis=0) / np.diff(edges)[:, None]


def map_long(share: np.ndarray, epochs: Sequence[int], n_images: int, n_rows: int = MAP_ROWS) -> pd.DataFrame:
    """A binned decision map as long rows for a heatmap, aggregated to `n_rows` rows.

    Returns
    -------
    frame : DataFrame with row (0 = easiest), first, last (image ranks, 1-based), epoch, share
    """
    small = rebin_map(share, n_rows)
    rows, n_epochs = small.shape
    edges = np.linspace(0, n_images, rows + 1).round().astype(np.int64)
    r, e = np.meshgrid(np.arange(rows), np.arange(n_epochs), indexing="ij")
    epochs = np.asarray(epochs)[:n_epochs]
    return pd.DataFrame(
        {
            "row": r.ravel(),
            "first": edges[:-1][r.ravel()] + 1,
            "last": edges[1:][r.ravel()],
            "epoch": epochs[e.ravel()],
            "share": small.ravel(),
        }
    )


def model_map(path: str | Path, model: str, image_ids, n_bins: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """One model's decision map, (epochs, share of shape (n_bins, n_epochs)), read from its decisions."""
    epochs, arrays = read_decisions(path, model, ("correct",), image_ids)
    return epochs, dynamics.binned_decision_map(arrays["correct"].T.astype(bool), n_bins=n_bins)


def swaps_long(data: Report) -> pd.DataFrame:
    """Swaps per epoch of every model plus their mean, in % of images (long rows)."""
    swaps = data.tables["swaps"]
    models = [c for c in swaps.columns if c not in ("epoch_from", "epoch_to")]
    frame = swaps.melt(id_vars=["epoch_from", "epoch_to"], value_vars=models, var_name="model", value_name="swaps")
    frame["percent"] = 100 * frame["swaps"] / data.n_images
    frame["series"] = np.where(frame["model"] == "mean", "mean over models", "one model")
    return frame


def tp_agreement_frame(data: Report) -> pd.DataFrame:
    """The report's TP-agreement counts per epoch beside their null of independent models (hacohen2020 Fig. 3).

    Returns
    -------
    frame : DataFrame with epoch, n_right (0..n_models), tp_agreement, observed, null
        (image counts; null = n_images x the Poisson-binomial pmf at that epoch's accuracies)
    """
    observed, null = data.maps["tp_observed"], data.maps["tp_null"]
    epochs = data.dynamics["epochs"]
    n_models = observed.shape[0] - 1
    k = np.arange(n_models + 1)
    return pd.concat([pd.DataFrame({"epoch": int(epochs[e]), "n_right": k, "tp_agreement": k / n_models,
                                    "observed": observed[:, e], "null": null[:, e]})
                      for e in range(observed.shape[1])], ignore_index=True)


def learned_epoch_frame(data: Report, tolerance: int) -> pd.DataFrame:
    """Images per learned epoch and category ("never" = wrong at the final epoch for most models).

    Returns
    -------
    frame : DataFrame with learned (str: an epoch or "never"), order, category, images
    """
    cats = categories_at(data, tolerance)
    learned = data.images["learned_epoch"].to_numpy(dtype=float)
    uniq, inverse = np.unique(learned, return_inverse=True)  # NaN last
    label = np.array(["never" if np.isnan(v) else f"{v:g}" for v in uniq], dtype=object)[inverse.ravel()]
    order = np.where(np.isnan(learned), np.inf, learned)
    frame = pd.DataFrame({"learned": label, "order": order, "category": cats})
    out = frame.groupby(["learned", "order", "category"]).size().rename("images").reset_index()
    return out.sort_values(["order", "category"]).reset_index(drop=True)


def score_histogram(data: Report, column: str, tolerance: int, bins: int = 20) -> pd.DataFrame:
    """Histogram of a per-image score in [0, 1] split by category.

    Returns
    -------
    frame : DataFrame with low, high, category, images
    """
    values = data.images[column].to_numpy(dtype=float)
    cats = categories_at(data, tolerance)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(values, edges[1:-1]), 0, bins - 1)
    rows = []
    for c in CATEGORIES:
        n = np.bincount(idx[cats == c], minlength=bins)
        rows.append(pd.DataFrame({"low": edges[:-1], "high": edges[1:], "category": c, "images": n}))
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- classes
def class_frame(data: Report, tolerance: int) -> pd.DataFrame:
    """Per-class accuracy (mean, min, max over models) and category shares, easiest first.

    Returns
    -------
    frame : DataFrame with class, class_name, n_images, mean, min, max, rank and the
        share of each category among the class's images
    """
    per_class = data.tables["per_class"]
    models = [m for m in data.model_names if m in per_class.columns]
    accuracy = per_class[models].to_numpy(dtype=float)
    frame = per_class[["class", "class_name", "n_images"]].copy()
    frame["class_name"] = frame["class_name"].astype(str)
    with np.errstate(all="ignore"):
        frame["mean"] = np.nanmean(accuracy, axis=1) if accuracy.size else np.nan
        frame["min"] = np.nanmin(accuracy, axis=1) if accuracy.size else np.nan
        frame["max"] = np.nanmax(accuracy, axis=1) if accuracy.size else np.nan
    cats = categories_at(data, tolerance)
    labels = data.images["label"].to_numpy()
    sizes = np.maximum(np.bincount(labels, minlength=len(frame)), 1)[: len(frame)]
    for c in CATEGORIES:
        frame[c] = np.bincount(labels[cats == c], minlength=len(frame))[: len(frame)] / sizes
    frame = frame[frame["n_images"] > 0]
    frame = frame.sort_values(["mean", "class"], ascending=[False, True], kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


def easiest_hardest(frame: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The k easiest and k hardest classes of `class_frame` (hardest: lowest accuracy first)."""
    cols = ["class_name", "n_images", "mean", "min", "max", *CATEGORIES]
    easiest = frame.head(k)[cols].reset_index(drop=True)
    hardest = frame.iloc[::-1].head(k)[cols].reset_index(drop=True)
    return easiest, hardest


# --------------------------------------------------------------------------- downloads
def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8 CSV without the index (for download buttons); formula cells neutralised."""
    return csv_bytes(frame)


# --------------------------------------------------------------------------- humans
def human_frames(summary: dict) -> dict[str, pd.DataFrame] | None:
    """The humans' part of a report as page tables (None without humans): accuracy per category,
    error consistency by group of makers, each human, and the split per condition."""
    humans = summary.get("humans")
    if not humans:
        return None
    by_category = pd.DataFrame([
        {"category": c, "accuracy": e["accuracy"], "low": e["ci95"][0], "high": e["ci95"][1], "decisions": e["n"]}
        for c, e in humans["accuracy_by_category"].items()])
    consistency = pd.DataFrame([
        {"images": subset, "pair": pair, "mean kappa": v["mean"], "low": v["ci95"][0], "high": v["ci95"][1]}
        for subset, entry in humans.get("error_consistency", {}).items()
        for pair, v in entry.items() if isinstance(v, dict)])
    return {"by_category": by_category, "consistency": consistency, "makers": pd.DataFrame(humans["makers"]),
            "by_condition": pd.DataFrame(humans.get("by_condition") or [])}


# --------------------------------------------------------------------------- scored models
def scored_frames(summary: dict) -> dict[str, pd.DataFrame] | None:
    """The scored models' part of a report as page tables (None without scored models).

    Returns
    -------
    frames : dict
        "models": one row per scored model: model, spec, and for all images and each category its
        accuracy (%) and 95% interval as text, images (n), mean κ with the audit's models on all and
        on the inconclusive images with intervals, rank on all and on the inconclusive images;
        "table": the stored table as it is (for the CSV download);
        "ranks": every maker's rank on "all images" and on "inconclusive images" (long: model, scored,
        images, rank, accuracy), for a slope chart.
    """
    part = summary.get("scored")
    if not part or not part.get("models"):
        return None
    table = pd.DataFrame(part["models"])
    rows = []
    for r in part["models"]:
        row = {"model": r["model"], "spec": r.get("spec", ""), "all": _interval(r["accuracy"], r["accuracy_low"],
                                                                             r["accuracy_high"], percent=True)}
        for c in CATEGORIES:
            row[c] = _interval(r[f"{c}_accuracy"], r[f"{c}_low"], r[f"{c}_high"], percent=True)
            row[f"{c} images"] = int(r[f"{c}_n"])
        for subset in ("all", "inconclusive"):
            row[f"κ {subset}"] = _interval(r.get(f"kappa_{subset}"), r.get(f"kappa_{subset}_low"),
                                           r.get(f"kappa_{subset}_high"))
        row["rank all"] = r["rank_all"]
        row["rank inconclusive"] = r.get("rank_inconclusive")
        row["of"] = r["n_ranked"]
        rows.append(row)
    ranking = pd.DataFrame(part.get("ranking") or [])
    ranks = pd.DataFrame(columns=["model", "scored", "images", "rank", "accuracy"])
    if len(ranking):
        ranks = pd.concat([
            pd.DataFrame({"model": ranking["model"], "scored": ranking["scored"], "images": label,
                          "rank": ranking[f"rank_{subset}"], "accuracy": ranking[f"accuracy_{subset}"]})
            for subset, label in (("all", "all images"), ("inconclusive", "inconclusive images"))
        ], ignore_index=True).dropna(subset=["rank"])
    return {"models": pd.DataFrame(rows), "table": table, "ranks": ranks}


def _interval(value, low, high, *, percent: bool = False) -> str:
    """"93.8% [91.6, 95.5]" or "0.012 [-0.004, 0.030]"; "-" where the value is undefined."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    scale, fmt, unit = (100, ".1f", "%") if percent else (1, ".3f", "")
    text = f"{scale * value:{fmt}}{unit}"
    if low is not None and high is not None and not (np.isnan(low) or np.isnan(high)):
        text += f" [{scale * low:{fmt}}, {scale * high:{fmt}}]"
    return text


# --------------------------------------------------------------------------- deeper measures
def report_file(data: Report, name: str, index_col=None) -> pd.DataFrame | None:
    """A table of the report (`Report.table`), or None when this audit's report has none."""
    return data.table(name, index_col=index_col)


def matrix_long_form(matrix: pd.DataFrame) -> pd.DataFrame:
    """A square model x model frame as rows (row, column, value), in the frame's order."""
    long = matrix.rename_axis(index="row", columns="column").stack(future_stack=True).rename("value")
    return long.reset_index()


def representation_frames(data: Report) -> dict | None:
    """The report's RSA and CKA tables for the Deeper measures page, or None without them.

    Returns measures ("RSA", "CKA"), subsets ("all", "inconclusive"), matrices {(measure, subset):
    long frame}, vs_base (model, measure, images, value) and n_images (the captured images).
    """
    matrices = {}
    for key, name in REPRESENTATION_TABLES.items():
        if key == "vs_base":
            continue
        frame = report_file(data, name, index_col=0)
        if frame is not None:
            measure, subset = key.split("_", 1)
            matrices[(measure.upper(), subset)] = matrix_long_form(frame)
    if not matrices:
        return None
    vs = report_file(data, REPRESENTATION_TABLES["vs_base"])
    info = (data.summary.get("representation") or {})
    return {"measures": list(dict.fromkeys(m for m, _ in matrices)),
            "subsets": list(dict.fromkeys(s for _, s in matrices)),
            "matrices": matrices,
            "vs_base": vs if vs is not None else pd.DataFrame(columns=["model", "measure", "images", "value"]),
            "n_images": int(info.get("n_images", 0))}


def confusion_long(table: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """The report's ensemble confusion matrix (a confusion_*.csv: true class x predicted class) as rows
    (true, predicted, decisions, share).

    `share` is the cell's part of its true class's decisions; cells without decisions are left out.
    """
    counts = table.to_numpy(dtype=np.int64)
    shares = row_shares(counts)
    rows, cols = np.nonzero(counts)
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({"true": names[rows], "predicted": names[cols], "decisions": counts[rows, cols],
                         "share": shares[rows, cols]})


def stability_long_form(curve: pd.DataFrame) -> pd.DataFrame:
    """The report's stability.csv as rows (n_models, category, mean, low, high, fit) for a chart."""
    rows = []
    for c in ("trivial", "inconclusive", "impossible"):
        part = pd.DataFrame({"n_models": curve["n_models"], "category": c,
                             "mean": curve.get(f"{c}_mean"), "low": curve.get(f"{c}_low"),
                             "high": curve.get(f"{c}_high"), "fit": curve.get(f"{c}_fit")})
        rows.append(part)
    return pd.concat(rows, ignore_index=True)
