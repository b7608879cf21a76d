"""Altair specs of the report pages, sized to what they show, so that they read for 2 models or 1,000.

Matrices keep square cells of at least `MIN_CELL` px (their height grows with their rows) and turn into an
image above `MATRIX_MAX_ROWS` rows; axes that count models or images have whole ticks and stop at the real
count; titles state the real numbers. Pure: frames in, specs or arrays out; nothing here draws on a page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from audit.plots.style import CATEGORY_COLOURS
from audit.report import count_noun

#: smallest and largest side of a matrix's cell, in px; a small matrix aims at MATRIX_SPAN px across
MIN_CELL, MAX_CELL, MATRIX_SPAN = 20, 40, 320
#: above this many rows a matrix is an image (`matrix_picture`): 40 rows of MIN_CELL are 800 px already
MATRIX_MAX_ROWS = 40
#: the longest axis label, in px; longer model names are cut with an ellipsis (the tooltip has them whole)
LABEL_LIMIT = 160
#: what a table shows for a missing value
MISSING = "—"
#: column names of the report's tables, as a person reads them
COLUMN_NAMES = {
    "n_images": "images", "n_defined": "images with a depth", "mean_prediction_depth": "mean depth",
    "median_prediction_depth": "median depth", "undefined_share": "share without a depth",
    "n_correct": "models correct", "label_issue": "label issues", "mean_kappa": "mean κ",
}
#: the per-image columns of images.parquet (the Images page's table, sort and scores), as a person reads them
IMAGE_COLUMN_NAMES = {
    "image_id": "image id", "class_name": "class", "label": "label index", "category": "category",
    "n_correct": "models correct", "tp_agreement": "TP-agreement", "consensus": "consensus",
    "mean_true_prob": "mean true-class prob.", "accessibility": "accessibility", "learned_epoch": "learned at epoch",
    "forgetting_events": "forgetting events", "prediction_depth": "prediction depth", "depth_type": "depth type",
    "impossible_cause": "why impossible", "is_label_issue": "label issue", "label_quality": "label quality",
    "learnable": "learnable", "cartography_confidence": "confidence (cartography)",
    "cartography_variability": "variability (cartography)", "cartography_correctness": "correctness (cartography)",
    "el2n": "EL2N", "aum": "AUM", "first_learned_epoch": "first learned epoch",
    "trivial_resample_share": "trivial in resamples", "impossible_resample_share": "impossible in resamples",
}
CATEGORY_SCALE = alt.Scale(domain=list(CATEGORY_COLOURS), range=list(CATEGORY_COLOURS.values()))


def cell_size(n_rows: int, *, span: int = MATRIX_SPAN) -> int:
    """The side of a matrix's cell in px: `span` spread over the rows, within [MIN_CELL, MAX_CELL]."""
    return int(np.clip(span // max(int(n_rows), 1), MIN_CELL, MAX_CELL))


def count_axis(title: str | None = None, **kwargs) -> alt.Axis:
    """An axis that counts (images, models): whole numbers only, with a thousands separator."""
    return alt.Axis(title=title, format=",d", tickMinStep=1, **kwargs)


def count_scale(n: int, *, low: int = 0) -> alt.Scale:
    """A scale from `low` to exactly `n` (not rounded up to a nicer number)."""
    return alt.Scale(domain=[int(low), int(n)], nice=False)


def matrix_chart(long: pd.DataFrame, order: Sequence[str], *, title: str, x: str = "column", y: str = "row",
                 value: str = "value", value_title: str | None = None, scheme: str = "viridis",
                 domain: Sequence[float] = (0, 1), tooltip: Sequence | None = None,
                 columns: Sequence[str] | None = None) -> alt.Chart:
    """A square heatmap of `long` (one row per cell: x, y, value) with cells of `cell_size` px.

    `order` is the rows' order (and the columns', unless `columns` gives theirs). The chart's width and
    height are steps, so it grows with its rows; draw it at its own size (`width="content"`).
    """
    columns = list(order) if columns is None else list(columns)
    cell = cell_size(max(len(order), len(columns)))
    small = cell < 28
    label = {"labelOverlap": False, "labelLimit": LABEL_LIMIT, "labelFontSize": 11 if small else 12}
    tips = tooltip if tooltip is not None else [
        alt.Tooltip(f"{y}:N", title="row"), alt.Tooltip(f"{x}:N", title="column"),
        alt.Tooltip(f"{value}:Q", title=value_title or "value", format=".3f")]
    return (
        alt.Chart(long).mark_rect().encode(
            x=alt.X(f"{x}:N", sort=columns, title=None, scale=alt.Scale(domain=columns),
                    axis=alt.Axis(labelAngle=-90 if small else -45, **label)),
            y=alt.Y(f"{y}:N", sort=list(order), title=None, scale=alt.Scale(domain=list(order)),
                    axis=alt.Axis(**label)),
            color=alt.Color(f"{value}:Q", title=value_title, scale=alt.Scale(scheme=scheme, domain=list(domain))),
            tooltip=list(tips),
        ).properties(width=alt.Step(cell), height=alt.Step(cell), title=title)
    )


def matrix_picture(values: np.ndarray, *, cmap: str = "viridis", domain: Sequence[float] = (0, 1),
                   min_side: int = 600) -> np.ndarray:
    """A matrix too large for a chart as an RGB image, each cell a square of pixels, NaN light grey.

    Returns uint8 of shape (n * k, m * k, 3), k the smallest whole factor that makes a side >= `min_side`.
    """
    from matplotlib import colormaps

    v = np.asarray(values, dtype=float)
    lo, hi = float(domain[0]), float(domain[1])
    rgb = colormaps[cmap](np.clip((np.nan_to_num(v, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1))[..., :3] * 255
    rgb[np.isnan(v)] = (215, 215, 215)
    k = max(1, -(-min_side // max(v.shape)))
    return np.repeat(np.repeat(rgb.round().astype(np.uint8), k, axis=0), k, axis=1)


def stability_chart(long: pd.DataFrame, n_models: int) -> alt.Chart:
    """The split by number of models (resampled mean, 95% band, dashed fit), on an axis of whole models
    that ends at the audit's `n_models`: the fit beyond it is stated in `stability_projection`, not drawn."""
    shown = long[long["n_models"] <= n_models]
    low = int(shown["n_models"].min()) if len(shown) else 1
    base = alt.Chart(shown).encode(
        x=alt.X("n_models:Q", title="number of models", scale=count_scale(n_models, low=low),
                axis=count_axis("number of models", values=whole_ticks(low, n_models))),
        color=alt.Color("category:N", title=None, sort=list(CATEGORY_COLOURS), scale=CATEGORY_SCALE))
    band = base.mark_area(opacity=0.25).encode(
        y=alt.Y("low:Q", title="share of images", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        y2="high:Q")
    line = base.mark_line(point=True).encode(
        y="mean:Q", tooltip=[alt.Tooltip("n_models:Q", title="models"), "category:N",
                             alt.Tooltip("mean:Q", format=".1%")])
    fitted = base.mark_line(strokeDash=[4, 3]).encode(y="fit:Q")
    title = f"The split of subsets of {low}-{n_models} of the audit's {count_noun(n_models, 'model')}"
    return (band + line + fitted).properties(height=340, title=title)


def stability_projection(long: pd.DataFrame, n_models: int) -> str | None:
    """What the fit says beyond the audit's models, as one sentence; None when it reaches no further."""
    beyond = long[(long["n_models"] > n_models) & long["fit"].notna()]
    if beyond.empty:
        return None
    top = int(beyond["n_models"].max())
    at = beyond[beyond["n_models"] == top].set_index("category")["fit"]
    parts = [f"{c} {at[c]:.1%}" for c in CATEGORY_COLOURS if c in at.index and pd.notna(at[c])]
    return f"Projected by the fit at {top:,} models: {', '.join(parts)}."


def whole_ticks(low: int, high: int, most: int = 12) -> list[int]:
    """At most about `most` whole ticks from `low` to `high`, both ends included."""
    step = max(1, -(-(high - low) // (most - 1)))
    ticks = list(range(low, high + 1, step))
    if ticks[-1] != high:
        ticks = (ticks[:-1] if high - ticks[-1] < step / 2 else ticks) + [high]
    return ticks


def cartography_chart(points: pd.DataFrame, n_images: int) -> alt.Chart:
    """The cartography map (Swayamdipta et al. 2020) of `points` (variability, confidence, category),
    a sample of the audit's `n_images` when there are more; the title says which."""
    shown = len(points)
    of = f"all {n_images:,} images" if shown >= n_images else f"a sample of {shown:,} of {n_images:,} images"
    return alt.Chart(points).mark_circle(size=12 if shown < 2000 else 8, opacity=0.5).encode(
        x=alt.X("variability:Q", title="variability (sd of the true class's probability over epochs)"),
        y=alt.Y("confidence:Q", title="confidence (mean)", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("category:N", title=None, sort=list(CATEGORY_COLOURS), scale=CATEGORY_SCALE),
        tooltip=["category:N", alt.Tooltip("variability:Q", format=".3f"), alt.Tooltip("confidence:Q", format=".3f")],
    ).properties(height=360, title=f"Cartography map (Swayamdipta et al. 2020), {of}")


def readable_table(frame: pd.DataFrame, names: Mapping[str, str] | None = None, *, digits: int = 3) -> pd.DataFrame:
    """A report table for the page: human column names (`COLUMN_NAMES`, then `names`, else underscores as
    spaces) and `MISSING` for a missing value; a number column with gaps becomes text with `digits` decimals."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if not values.isna().any():
            continue
        if values.dtype.kind == "f":
            whole = bool(np.all(values.dropna() == values.dropna().round()))
            out[col] = [MISSING if pd.isna(v) else f"{v:,.0f}" if whole else f"{v:.{digits}f}" for v in values]
        else:
            out[col] = values.astype(object).where(values.notna(), MISSING)
    rename = {**COLUMN_NAMES, **(names or {})}
    return out.rename(columns=lambda c: rename.get(c, str(c).replace("_", " ")))


def image_column_label(column: str) -> str:
    """An images.parquet column as the page names it (`IMAGE_COLUMN_NAMES`, else underscores as spaces)."""
    return IMAGE_COLUMN_NAMES.get(column, str(column).replace("_", " "))


def models_axis(n_models: int, title: str, **kwargs) -> alt.Axis:
    """An ordinal axis of 0..`n_models` models (n_correct, models right): upright whole labels, at most
    about a dozen of them however many models there are."""
    return alt.Axis(title=title, labelAngle=0, values=whole_ticks(0, int(n_models)), **kwargs)
