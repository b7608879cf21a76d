"""Figures of what the models share: RSA and CKA (meding2022 Fig. 7) and the ensemble confusion matrix.

Each function takes the report's tables and returns a Figure in the shared style
(`audit.plots.style`): models in their condition's colour, journal column widths.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.metrics.confusion import row_shares
from audit.plots import style as st

#: Above this many models or classes, a matrix is drawn without tick labels.
MAX_LABELLED = 40


def _matrix(ax, fig, values: np.ndarray, labels, title: str, cmap: str, label: str, *, side_in: float) -> None:
    """One matrix panel: square cells, labels sized to its rows (`style.matrix_labels`), a colour bar."""
    im = ax.imshow(values, vmin=0, vmax=1, cmap=cmap, interpolation="nearest")
    if not st.matrix_labels(ax, labels, side_in=side_in, most=MAX_LABELLED):
        ax.set_xlabel(f"{len(labels):,} rows and columns")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)


@st.styled
def representation_figure(matrices: Mapping[tuple[str, str], pd.DataFrame], vs_base: pd.DataFrame,
                          groups: Mapping[str, str], base: str, *, width: str | float = "two", style: str = "paper"):
    """RSA and CKA between every pair of models on all captured images (top), and each model against the
    base on all and on inconclusive images (bottom; meding2022 Fig. 7).

    Parameters
    ----------
    matrices : {(measure, subset): model x model frame}, measure "rsa" or "cka"
    vs_base : DataFrame with model, measure ("RSA", "CKA"), images ("all", "inconclusive"), value
    groups : mapping model -> condition, for the bars' colours
    base : the model the bars compare with
    """
    fig, axes = st.new_figure(width, 0.9 * st.figure_width(width, style), ncols=2, nrows=2, style=style)
    for ax, measure in zip(axes[0], ("rsa", "cka"), strict=True):
        frame = matrices[(measure, "all")]
        _matrix(ax, fig, frame.to_numpy(), list(frame.index),
                f"{measure.upper()} of {len(frame)} models, all captured images", "viridis", measure.upper(),
                side_in=0.3 * st.figure_width(width, style))
    models = list(dict.fromkeys(vs_base["model"]))
    colours = [st.condition_colour(st.condition_of(groups, m)) for m in models]
    x = np.arange(len(models))
    for ax, measure in zip(axes[1], ("RSA", "CKA"), strict=True):
        part = vs_base[vs_base["measure"] == measure]
        subsets = list(dict.fromkeys(part["images"]))
        width_bar = 0.8 / max(1, len(subsets))
        for i, subset in enumerate(subsets):
            values = part[part["images"] == subset].set_index("model").reindex(models)["value"].to_numpy(float)
            ax.bar(x + (i - (len(subsets) - 1) / 2) * width_bar, values, width_bar, color=colours,
                   alpha=1.0 if subset == "all" else 0.45, hatch=None if subset == "all" else "///",
                   edgecolor="white", lw=0.3, label=f"{subset} images")
        size = min(6.0, 0.7 * 0.4 * st.figure_width(width, style) * 72 / max(len(models), 1))
        ax.set_xticks(x, models if len(models) <= MAX_LABELLED and size >= 4 else [""] * len(models), rotation=90,
                      fontsize=size)
        ax.set_ylim(min(0.0, float(np.nanmin(part["value"])) if len(part) else 0.0), 1)
        ax.set_ylabel(f"{measure} with {base}")
        ax.set_title(f"{measure}: each model against {base}")
        if subsets and measure == "CKA":
            from matplotlib.patches import Patch

            handles = [Patch(facecolor="0.45", alpha=1.0 if s == "all" else 0.45, hatch=None if s == "all" else "///",
                             edgecolor="white", label=f"{s} images") for s in subsets]
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6)
    return fig


@st.styled
def confusion_figure(counts: Mapping[str, np.ndarray], class_names, *, width: str | float = "two",
                     style: str = "paper"):
    """Row shares of the final decisions pooled over models, one panel per subset (all, impossible images)."""
    fig, axes = st.new_figure(width, 0.55 * st.figure_width(width, style), ncols=len(counts), style=style)
    axes = np.atleast_1d(axes)
    for ax, (subset, c) in zip(axes, counts.items(), strict=True):
        _matrix(ax, fig, row_shares(c), list(class_names), f"{subset} images ({int(c.sum()):,} decisions)",
                "magma_r", "share of the row", side_in=0.4 * st.figure_width(width, style) / len(counts))
        ax.set_xlabel("taken for (predicted class)")
        ax.set_ylabel("true class")
    return fig
