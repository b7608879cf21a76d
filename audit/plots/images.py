"""Figures of classes and of example images (meding2022 Fig. 13, 14, 15).

`class_accuracy_figure` takes the report's per-class table; `example_pairs_figure`
takes pixel arrays and the images' categories, and draws a note when the audit
has no pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.plots import style as st
from audit.plots.split import MANY_BARS

#: classes with more than this many bars lose their names on the axis
CLASS_LABELS_MAX = 40


@st.styled
def class_accuracy_figure(per_class: pd.DataFrame, *, model: str | None = None, groups=None,
                          width: str | float = "one", style: str = "paper"):
    """Accuracy per class, sorted from the easiest class down (meding2022 Fig. 15, Table 1).

    Parameters
    ----------
    per_class : DataFrame with columns class_name, n_images, one per model, and mean
        The report's per_class_accuracy.csv; classes without images are left out.
    model : str, optional
        Draw this model's accuracy (the paper draws the fully trained base
        network); by default the mean over models, with a line for the range
        over models.
    groups : mapping model -> condition, optional
        Colours `model`'s bars in its condition's colour.
    """
    frame = per_class[per_class["n_images"] > 0] if "n_images" in per_class.columns else per_class
    models = [c for c in frame.columns if c not in ("class", "class_name", "n_images", "mean")]
    if model is not None and model not in models:
        raise ValueError(f"model {model!r} is not a column of the per-class table; models: {models[:5]}")
    values = frame[model] if model else frame["mean"]
    order = np.argsort(-values.to_numpy(float), kind="stable")
    x = np.arange(len(order))
    y = values.to_numpy(float)[order]
    fig, ax = st.new_figure(width, style=style)
    colour = st.palette_of(groups, [model])[st.condition_of(groups, model)] if model else "#555555"
    if len(order) <= MANY_BARS:
        ax.bar(x, y, width=0.8 if len(order) <= 50 else 1.0, color=colour, lw=0,
               label=model or f"mean of {len(models)} models")
    else:
        ax.fill_between(x, y, step="mid", color=colour, lw=0, label=model or f"mean of {len(models)} models")
    if model is None and len(models) > 1:
        acc = frame[models].to_numpy(float)[order]
        ax.vlines(x, np.nanmin(acc, axis=1), np.nanmax(acc, axis=1), color="black", lw=0.6,
                  label="range over models")
    if len(order) <= CLASS_LABELS_MAX:
        ax.set_xticks(x, frame["class_name"].astype(str).to_numpy()[order], rotation=60, ha="right")
        ax.set_xlabel("class, easiest first")
    else:
        st.integer_ticks(ax, "x")
        ax.set_xlabel("class rank, easiest first")
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, 1)
    st.percent_axis(ax, "y")
    ax.set_ylabel("accuracy")
    fig.legend(loc="outside upper center", ncols=2)
    return fig


def pick_example_pairs(categories, labels, *, n_pairs: int = 6, random_state: int = 0) -> list[tuple[int, int]]:
    """Pairs (impossible image, trivial image) of the same class where possible, as in meding2022 §3.4's 2AFC.

    Classes are taken in turn, so the pairs spread over classes; a seeded draw
    picks the images. Returns at most `n_pairs` pairs of image indices.
    """
    categories = np.asarray(categories)
    labels = np.asarray(labels)
    rng = np.random.default_rng(random_state)
    hard = {c: rng.permutation(np.flatnonzero((categories == "impossible") & (labels == c))) for c in np.unique(labels)}
    easy = {c: rng.permutation(np.flatnonzero((categories == "trivial") & (labels == c))) for c in np.unique(labels)}
    classes = [c for c in hard if len(hard[c]) and len(easy[c])]
    pairs: list[tuple[int, int]] = []
    depth = 0
    while len(pairs) < n_pairs and classes:
        added = False
        for c in classes:
            if depth < min(len(hard[c]), len(easy[c])) and len(pairs) < n_pairs:
                pairs.append((int(hard[c][depth]), int(easy[c][depth])))
                added = True
        if not added:
            break
        depth += 1
    return pairs


@st.styled
def example_pairs_figure(images: np.ndarray | None, pairs: list[tuple[int, int]], class_names: list[str],
                         labels, *, width: str | float = "two", style: str = "paper"):
    """A grid of example pairs: impossible images on top, trivial ones below, one pair per column (meding2022 Fig. 13, 14).

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W) or (n_images, H, W, C), or None
        The audit's pixels (images.npy); None draws a note instead of images.
    pairs : list of (impossible index, trivial index)
        From `pick_example_pairs`.
    """
    if images is None or not pairs:
        fig, ax = st.new_figure(width, 0.8, style=style)
        ax.set_axis_off()
        why = "this audit stores no pixels (images.npy)" if images is None else "no class has both an impossible and a trivial image"
        ax.text(0.5, 0.5, f"No example pairs: {why}.", ha="center", va="center", transform=ax.transAxes)
        return fig
    labels = np.asarray(labels)
    n = len(pairs)
    w = st.figure_width(width, style)
    fig, axes = st.new_figure(width, 2 * w / n + 0.5, ncols=n, nrows=2, style=style, squeeze=False)
    for col, (hard, easy) in enumerate(pairs):
        for row, index in enumerate((hard, easy)):
            ax = axes[row][col]
            pixels = np.asarray(images[index])
            gray = pixels.ndim == 2 or pixels.shape[-1] == 1
            ax.imshow(pixels.squeeze(), cmap="gray" if gray else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if row == 0:
                ax.set_title(str(class_names[labels[index]]))
    axes[0][0].set_ylabel("impossible", color=st.CATEGORY_COLOURS["impossible"])
    axes[1][0].set_ylabel("trivial", color=st.CATEGORY_COLOURS["trivial"])
    return fig
