"""Chart- and table-ready frames for the report pages, one section per page.

Views of an `audit.report.Report` (its tables, summary and per-image scores), the store's reader and
`audit.metrics`; no Streamlit, so each function is tested without the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics import agreement, consistency, dynamics, groups
from audit.metrics.agreement import majority_vote
from audit.metrics.confusion import row_shares
from audit.metrics.difficulty import CATEGORIES, Split
from audit.report import REPORT_COLUMNS, Report
from audit.store import (
    REPRESENTATION_TABLES,
    AuditError,
    decisions_by_epoch,
    load,
    read_decisions,
)
from audit.store.files import csv_bytes
from audit_app._data import near_chance_models

#: Per-image scores the report writes, in the order the Images page offers them.
SCORE_COLUMNS = tuple(c for c in REPORT_COLUMNS if c != "category")
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


# --------------------------------------------------------------------------- images
def score_columns(images: pd.DataFrame) -> list[str]:
    """The per-image numeric scores present, report scores first, then any other numeric column."""
    known = [c for c in SCORE_COLUMNS if c in images.columns]
    skip = {"image_id", "label", *known}
    other = [c for c in images.columns if c not in skip and pd.api.types.is_numeric_dtype(images[c])]
    return known + other


def filter_images(
    data: Report,
    *,
    tolerance: int,
    categories: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    sort_by: str = "n_correct",
    ascending: bool = True,
    label_issues_only: bool = False,
    causes: Sequence[str] | None = None,
    depth_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The images of the chosen categories (at `tolerance`) and classes, sorted by a score.

    Empty or None `categories` / `classes` / `causes` / `depth_types` means all.
    `label_issues_only` keeps the images cleanlab flags (`is_label_issue`);
    `causes` filters `impossible_cause`, `depth_types` filters `depth_type`
    (both written by the report's deeper measures). Ties keep image order;
    NaN scores (e.g. never learned) sort last.
    """
    frame = data.images.copy()
    frame["category"] = categories_at(data, tolerance)
    if categories:
        frame = frame[frame["category"].isin(list(categories))]
    if classes:
        frame = frame[frame["class_name"].astype(str).isin([str(c) for c in classes])]
    for column, wanted in (("impossible_cause", causes), ("depth_type", depth_types)):
        if wanted:
            if column not in frame.columns:
                raise ValueError(f"this audit has no {column} column; rebuild the report with `ddd-audit report`")
            frame = frame[frame[column].astype(str).isin([str(w) for w in wanted])]
    if label_issues_only:
        if "is_label_issue" not in frame.columns:
            raise ValueError("this audit has no is_label_issue column; rebuild the report with `ddd-audit report`")
        frame = frame[frame["is_label_issue"].fillna(False).astype(bool)]
    if sort_by not in frame.columns:
        raise ValueError(f"cannot sort by {sort_by!r}; columns are {list(frame.columns)}")
    frame = frame.sort_values([sort_by, "image_id"], ascending=[ascending, True], kind="stable", na_position="last")
    front = ["image_id", "class_name", "label", "category"]
    return frame[front + [c for c in frame.columns if c not in front]].reset_index(drop=True)


def deep_filter_options(images: pd.DataFrame) -> dict[str, list[str]]:
    """The values offered by the deeper-measure filters (only columns the audit has)."""
    out = {}
    for column in ("impossible_cause", "depth_type"):
        if column in images.columns:
            out[column] = sorted(str(v) for v in images[column].dropna().unique())
    if "is_label_issue" in images.columns:
        out["is_label_issue"] = ["flagged"]
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8 CSV without the index (for download buttons); formula cells neutralised."""
    return csv_bytes(frame)


def pixels_note(path: str | Path, **image_options) -> str | None:
    """Why the audit's images cannot be shown (e.g. an import without --images, or an audit folder from
    elsewhere opened without --images-root), or None when they can. `image_options`: audit.store.load's."""
    result = load(path, **image_options)
    try:
        result.image(0)
    except (AuditError, OSError) as err:
        return f"The pixels are not available: {err}"
    return None


def thumbnails(path: str | Path, image_ids: Sequence[int], size: int = 112, **image_options) -> list[np.ndarray]:
    """The images as uint8 arrays of side about `size` (small images enlarged without blur); a light grey
    square for an image that cannot be read (see `pixels_note`). Every image is read through
    `AuditResult.image_path`'s rule: inside the folder it may be read from, and no other file."""
    result = load(path, **image_options)
    out = []
    for i in image_ids:
        try:
            img = result.image(int(i))
        except (AuditError, OSError):
            out.append(np.full((size, size, 3), 235, dtype=np.uint8))
            continue
        w, h = img.size
        scale = size / max(w, h)
        if scale >= 2:
            from PIL import Image

            f = int(scale)
            img = img.resize((w * f, h * f), Image.Resampling.NEAREST)
        elif scale < 1:
            img = img.copy()
            img.thumbnail((size, size))
        out.append(np.asarray(img))
    return out


def image_decisions(data: Report, final: dict, image_id: int) -> pd.DataFrame:
    """Every model's decision on one image at its final epoch.

    Parameters
    ----------
    final : dict from `audit.store.final_decisions` with predicted, correct, true_prob, top_prob

    Returns
    -------
    frame : DataFrame with model, group, predicted (class name), correct, true_prob, confidence
    """
    pos = int(np.searchsorted(data.image_ids, image_id))
    if pos >= data.n_images or data.image_ids[pos] != image_id:
        raise ValueError(f"image {image_id} is not in this audit (ids {data.image_ids.min()}..{data.image_ids.max()})")
    names = data.class_names
    pred = final["predicted"][pos].astype(int)
    return pd.DataFrame(
        {
            "model": data.model_names,
            "group": data.models["group"].to_numpy(),
            "predicted": [names[p] if 0 <= p < len(names) else str(p) for p in pred],
            "correct": final["correct"][pos].astype(bool),
            "true_prob": final["true_prob"][pos].astype(float),
            "confidence": final["top_prob"][pos].astype(float),
        }
    )


def image_history(cube: np.ndarray, epochs: Sequence[int], models: Sequence[str], pos: int) -> pd.DataFrame:
    """One image's correctness at every shared epoch of every model with several epochs (long rows)."""
    sub = np.asarray(cube[pos], dtype=bool)  # (n_models, n_epochs)
    m, e = np.meshgrid(np.arange(sub.shape[0]), np.arange(sub.shape[1]), indexing="ij")
    return pd.DataFrame(
        {
            "model": np.asarray(models, dtype=object)[m.ravel()],
            "epoch": np.asarray(epochs)[e.ravel()],
            "decision": np.where(sub.ravel(), "correct", "wrong"),
        }
    )


def image_scores(data: Report, image_id: int, tolerance: int) -> pd.DataFrame:
    """One image's label and scores as a two-column table (score, value)."""
    pos = int(np.searchsorted(data.image_ids, image_id))
    row = data.images.iloc[pos]
    items = [("image_id", str(image_id)), ("class", str(row["class_name"])),
             ("category", str(categories_at(data, tolerance)[pos]))]
    for col in score_columns(data.images):
        v = row[col]
        items.append((col, "never" if col == "learned_epoch" and pd.isna(v) else _fmt(v)))
    return pd.DataFrame(items, columns=["score", "value"])


def _fmt(v) -> str:
    if pd.isna(v):
        return "–"
    if isinstance(v, int | np.integer) or float(v).is_integer():
        return str(int(v))
    return f"{float(v):.3f}"


#: What each cause of an impossible image means (audit.metrics.depth.impossible_cause).
CAUSE_TEXT = {
    "label_error": "decided early for another class and flagged as a label issue: the label is likely wrong",
    "look_alike": "decided early for another class, without a label issue: it looks like another class",
    "ambiguous": "no layer of the network settles it: the image is ambiguous",
}


def majority_labels(data: Report, final: dict, image_ids: Sequence[int]) -> list[str]:
    """The models' majority prediction (a class name) for each of `image_ids`, as the label review suggests it."""
    pos = np.searchsorted(data.image_ids, np.asarray(image_ids, dtype=np.int64))
    label, _ = majority_vote(final["predicted"][pos], data.n_classes)
    return [str(data.class_names[c]) for c in label]


def image_review(data: Report, final: dict, image_id: int) -> dict:
    """One image's label beside the models' majority prediction, its label issue and why it is impossible.

    Returns
    -------
    review : dict with label, majority (class names), votes, n_models, is_label_issue (bool, or None
        without label issues), label_quality (float or None), cause and cause_text ("" unless impossible
        with a known cause)
    """
    pos = int(np.searchsorted(data.image_ids, image_id))
    row = data.images.iloc[pos]
    label, votes = majority_vote(final["predicted"][pos : pos + 1], data.n_classes)
    flag = row.get("is_label_issue")
    quality = row.get("label_quality")
    cause = row.get("impossible_cause")
    cause = "" if cause is None or pd.isna(cause) else str(cause)
    return {
        "label": str(row["class_name"]), "majority": str(data.class_names[int(label[0])]), "votes": int(votes[0]),
        "n_models": data.n_models, "is_label_issue": None if flag is None or pd.isna(flag) else bool(flag),
        "label_quality": None if quality is None or pd.isna(quality) else float(quality),
        "cause": cause, "cause_text": CAUSE_TEXT.get(cause, ""),
    }


def export_command(path: str | Path, tolerance: int, *, categories: Sequence[str] = (), classes: Sequence[str] = (),
                   label_issues_only: bool = False, causes: Sequence[str] = (), depth_types: Sequence[str] = (),
                   out: str = "exports/selection") -> str:
    """The `ddd-audit export` command that writes the Images page's selection as an ImageFolder tree.

    The filters become a query over the images table (a category name alone stays a subset name), so
    the command selects the images that `filter_images` shows with the same arguments.
    """
    import json
    import shlex

    def within(column: str, values: Sequence[str]) -> str:
        return f"{column} in [{', '.join(json.dumps(str(v)) for v in values)}]"

    parts = []
    if categories and set(categories) != set(CATEGORIES):
        parts.append(within("category", categories))
    parts += [within(col, vals) for col, vals in (("class_name", classes), ("impossible_cause", causes),
                                                  ("depth_type", depth_types)) if vals]
    if label_issues_only:
        parts.append("is_label_issue == True")
    if len(parts) == 1 and len(categories) == 1 and parts[0].startswith("category"):
        subset = categories[0]
    else:
        subset = " and ".join(parts) or "n_correct >= 0"
    return shlex.join(["ddd-audit", "export", str(path), "--subset", subset, "--tolerance", str(tolerance),
                       "--format", "imagefolder", "--out", out])


# --------------------------------------------------------------------------- compare
COMPARE_MODES = ("split half", "by variant group", "custom")


def default_groups(models: Sequence[str]) -> tuple[list[str], list[str]]:
    """Two disjoint halves of the models, alternating (as the report's split-half correlation)."""
    models = list(models)
    return models[0::2], models[1::2]


def compare_groups(path: str | Path, group_a: Sequence[str], group_b: Sequence[str], image_ids, labels) -> dict:
    """Compare two groups of models by the order in which they learn (hacohen2020 §4.1, Fig. 8).

    Each group uses its own shared epochs. Accessibility is the mean
    TP-agreement over epochs; the accuracy-matched counts compare the
    groups' majority-vote ensembles at epochs of equal accuracy (±1 %).

    Returns
    -------
    result : dict with "accessibility_a", "accessibility_b" (ndarray of shape (n_images,)),
        "correlation" (r, p_value, n_images) and "matched" (DataFrame, one row per matched epoch)
    """
    image_ids, labels = np.asarray(image_ids), np.asarray(labels)
    out = {}
    ensembles = {}
    for key, members in (("a", group_a), ("b", group_b)):
        if not members:
            raise ValueError(f"group {key.upper()} is empty")
        epochs, cubes = decisions_by_epoch(path, members, ("correct", "predicted"), image_ids)
        out[f"accessibility_{key}"] = agreement.accessibility(cubes["correct"].astype(bool))
        ensembles[key] = (epochs, agreement.majority_vote_correct(cubes["predicted"], labels))
    out["correlation"] = groups.accessibility_correlation(out["accessibility_a"], out["accessibility_b"])
    (ep_a, ens_a), (ep_b, ens_b) = ensembles["a"], ensembles["b"]
    cmp = groups.accuracy_matched_comparison(ens_a, ens_b, accuracy_window=0.01)
    matched = pd.DataFrame({k: v for k, v in cmp.items()})
    matched["epoch_a"] = ep_a[cmp["epoch_a"]] if len(cmp["epoch_a"]) else matched["epoch_a"]
    matched["epoch_b"] = ep_b[cmp["epoch_b"]] if len(cmp["epoch_b"]) else matched["epoch_b"]
    out["matched"] = matched
    return out


def matched_problem(matched: pd.DataFrame, data: Report, group_a: Sequence[str], group_b: Sequence[str]) -> str | None:
    """Why the accuracy-matched counts have nothing to draw, or None when they make a curve.

    A curve needs at least two matched accuracies. Groups whose models are all at or near chance
    never learn, so their only matches are guesses (often just epoch 0, before training).
    """
    near = set(near_chance_models(data))
    at_chance = [m for m in (*group_a, *group_b) if m in near]
    if group_a and group_b and (set(group_a) <= near or set(group_b) <= near):
        accuracy = (data.summary.get("chance") or {}).get("accuracy")
        level = f" ({100 * accuracy:.1f}%)" if accuracy is not None else ""
        return (
            f"Nothing to compare: {', '.join(at_chance)} classify at or near chance{level}, so the groups' "
            "ensembles never learn and match only by guessing. Train longer, or check the labels."
        )
    if matched.empty:
        return "Nothing to compare: no epochs of the two groups reach the same accuracy (±1 %)."
    if matched["accuracy_a"].round(6).nunique() < 2:
        row = matched.iloc[0]
        when = (
            "before training (epoch 0)"
            if int(row["epoch_a"]) == 0 and int(row["epoch_b"]) == 0
            else f"epoch {int(row['epoch_a'])} of group A and {int(row['epoch_b'])} of group B"
        )
        return (
            f"Nothing to compare: the groups' ensembles reach the same accuracy (±1 %) only {when}, at "
            f"{100 * float(row['accuracy_a']):.1f}%; a curve needs at least two matched accuracies."
        )
    return None


def accessibility_points(
    data: Report, accessibility_a: np.ndarray, accessibility_b: np.ndarray, tolerance: int, *, bins: int = 25
) -> tuple[pd.DataFrame, bool]:
    """Accessibility of group A against group B, ready for a scatter or a 2-d histogram.

    Accessibility takes few distinct values, so equal points are pooled and counted.

    Returns
    -------
    frame : DataFrame with a, b, category, images (pooled points, up to
        SCATTER_MAX_POINTS distinct ones), or a_low, a_high, b_low, b_high, images (binned)
    binned : bool
    """
    points = pd.DataFrame({"a": np.round(accessibility_a, 6), "b": np.round(accessibility_b, 6),
                           "category": categories_at(data, tolerance)})
    pooled = points.groupby(["a", "b", "category"]).size().rename("images").reset_index()
    if len(pooled) <= SCATTER_MAX_POINTS:
        return pooled, False
    edges = np.linspace(0, 1, bins + 1)
    counts, _, _ = np.histogram2d(accessibility_a, accessibility_b, bins=[edges, edges])
    i, j = np.nonzero(counts)
    frame = pd.DataFrame(
        {"a_low": edges[i], "a_high": edges[i + 1], "b_low": edges[j], "b_high": edges[j + 1], "images": counts[i, j]}
    )
    return frame, True


def matched_long(matched: pd.DataFrame) -> pd.DataFrame:
    """The accuracy-matched counts as long rows: accuracy of group A, series, images."""
    frame = matched.melt(
        id_vars=["epoch_a", "epoch_b", "accuracy_a", "accuracy_b", "beyond"],
        value_vars=["both", "only_a", "only_b"],
        var_name="series",
        value_name="images",
    )
    frame["series"] = frame["series"].map({"both": "both groups", "only_a": "only group A", "only_b": "only group B"})
    return frame


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
