"""Frames for the Images and Compare pages: filtering and sorting images, one image's decisions and review,
thumbnails, the export command, and two groups of models compared by Accessibility and matched accuracy.

Views of an `audit.report.Report`, the store's reader and `audit.metrics`; no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics import agreement, groups
from audit.metrics.agreement import majority_vote
from audit.metrics.difficulty import CATEGORIES
from audit.report import REPORT_COLUMNS, Report
from audit.store import AuditError, decisions_by_epoch, load
from audit_app._data import near_chance_models
from audit_app._frames import SCATTER_MAX_POINTS, categories_at

#: Per-image scores the report writes, in the order the Images page offers them.
SCORE_COLUMNS = tuple(c for c in REPORT_COLUMNS if c != "category")


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
