"""Figures of the DDD split and of error consistency (meding2022 Fig. 2, 3, 6, 16, 17).

Each function takes the report's tables (DataFrames as `read_report_tables`
returns them) and returns a Figure; the numbers come from `audit.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.metrics import consistency, difficulty
from audit.plots import style as st

#: above this many bars (models or classes), bar charts are drawn as filled steps (patches take seconds)
MANY_BARS = 100
#: above this many models the κ matrices lose their tick labels and are shown in clustered order
MATRIX_LABELS_MAX = 40
SUBSET_TITLES = {"all": "all images", "inconclusive": "inconclusive images"}


@st.styled
def histogram_figure(histogram: pd.DataFrame, *, tolerance: int, label_issues: pd.DataFrame | None = None,
                     width: str | float = "one", style: str = "paper"):
    """Images by the number of models that classify them correctly, with both nulls (meding2022 Fig. 2, 17).

    Parameters
    ----------
    histogram : DataFrame with columns n_correct, observed, binomial, beta_binomial
        One row per n_correct = 0..n_models (the report's histogram.csv).
    tolerance : int
        t of the split: bars at n_correct <= t are impossible, >= n_models - t trivial.
    label_issues : DataFrame with columns n_correct, label_issue, optional
        Images flagged as label issues per n_correct (label_issues_histogram.csv),
        drawn hatched over the bars as in meding2022 Fig. 17.
    """
    k = histogram["n_correct"].to_numpy(dtype=int)
    observed = histogram["observed"].to_numpy(dtype=float)
    n_models = int(k.max())
    category = difficulty.Split.from_counts(k, n_models, tolerance).categories  # the category of each count
    fig, ax = st.new_figure(width, style=style)
    handles = []
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if len(k) <= MANY_BARS:
        ax.bar(k, observed, width=0.85, color=[st.CATEGORY_COLOURS[c] for c in category], lw=0)
    else:
        for name, colour in st.CATEGORY_COLOURS.items():
            ax.fill_between(k, np.where(category == name, observed, 0.0), step="mid", color=colour, lw=0)
    for name in ("impossible", "inconclusive", "trivial"):
        handles.append(Patch(color=st.CATEGORY_COLOURS[name], label=f"observed: {name}"))
    if label_issues is not None and len(label_issues):
        flagged = label_issues.set_index("n_correct")["label_issue"].reindex(k, fill_value=0).to_numpy(float)
        ax.bar(k, flagged, width=0.85, facecolor="none", edgecolor="#222222", hatch="////", lw=0.4)
        handles.append(Patch(facecolor="none", edgecolor="#222222", hatch="////", label="label issues (cleanlab)"))
    marker = "o" if len(k) <= MANY_BARS else None
    for column, label in (("binomial", "binomial null"), ("beta_binomial", "beta-binomial fit")):
        colour = st.REFERENCE_COLOURS[column]
        ls = "-" if column == "binomial" else "--"
        ax.plot(k, histogram[column].to_numpy(float), ls=ls, marker=marker, ms=2, color=colour, lw=0.9)
        handles.append(Line2D([], [], color=colour, ls=ls, marker=marker, ms=2, label=label))
    ax.set_xlim(-0.6, n_models + 0.6)
    ax.set_ylim(0, None)
    st.integer_ticks(ax)
    ax.set_xlabel(f"models correct (n_correct, of {n_models})")
    ax.set_ylabel("images")
    ax.legend(handles=handles, loc="upper center")
    return fig


def base_model_of(groups: Mapping[str, str], names) -> str:
    """The model of condition "base" among `names` (the first one), else the first model."""
    for name in names:
        if st.condition_of(groups, name) == "base":
            return name
    return list(names)[0]


def kappa_with_base(matrix: pd.DataFrame, groups: Mapping[str, str], base_model: str) -> pd.DataFrame:
    """Each model's κ with the base model, with its condition: columns model, condition, kappa (base left out)."""
    if base_model not in matrix.index:
        raise ValueError(f"base model {base_model!r} is not in the κ matrix; models: {list(matrix.index)[:5]}...")
    row = matrix.loc[base_model].drop(base_model)
    return pd.DataFrame({"model": row.index, "condition": [st.condition_of(groups, m) for m in row.index],
                         "kappa": row.to_numpy(float)})


@st.styled
def kappa_by_condition_figure(matrices: Mapping[str, pd.DataFrame], groups: Mapping[str, str], *,
                              base_model: str | None = None, width: str | float = "two", style: str = "paper"):
    """Error consistency of each condition with the base network, ordered, instances as faint dots (meding2022 Fig. 3, 16).

    Parameters
    ----------
    matrices : {"all": DataFrame, "inconclusive": DataFrame}
        κ matrices indexed and labelled by model (error_consistency_*.csv); one panel each.
    groups : mapping model -> condition
        The models table's `group`; each condition keeps its colour (`style.palette_of`).
    base_model : str, optional
        The reference network; by default the model of condition "base".

    Conditions are ordered by their mean κ on the first subset (highest first),
    as the paper orders Fig. 16 by Fig. 3; the mean of a condition is its
    large marker, each instance a faint dot.
    """
    subsets = [s for s in ("all", "inconclusive") if s in matrices]
    if not subsets:
        raise ValueError("no κ matrix to draw; expected the keys 'all' and/or 'inconclusive'")
    names = list(matrices[subsets[0]].index)
    base_model = base_model or base_model_of(groups, names)
    tables = {s: kappa_with_base(matrices[s], groups, base_model) for s in subsets}
    order = tables[subsets[0]].groupby("condition", sort=False)["kappa"].mean().sort_values(ascending=False).index
    palette = st.palette_of(groups, names)
    fig, axes = st.new_figure(width, st.panel_height(style), ncols=len(subsets), style=style,
                              sharey=True, squeeze=False)
    lo = min(0.0, *(float(t["kappa"].min()) for t in tables.values()))
    for ax, subset in zip(axes[0], subsets, strict=True):
        table = tables[subset]
        for x, condition in enumerate(order):
            kappas = table.loc[table["condition"] == condition, "kappa"].to_numpy()
            colour = palette[condition]
            ax.scatter(np.full(len(kappas), x), kappas, s=10, color=colour, alpha=st.INSTANCE_ALPHA, lw=0)
            ax.scatter([x], [kappas.mean()], s=34, marker="D", color=colour, edgecolor="black", lw=0.5, zorder=3)
        ax.axhline(0, color="#999999", lw=0.5, zorder=0)
        ax.set_xticks(range(len(order)), list(order), rotation=60, ha="right")
        ax.set_xlim(-0.7, len(order) - 0.3)
        ax.set_ylim(lo - 0.05, 1.02)
        ax.set_title(f"{SUBSET_TITLES[subset]} ({int(len(table))} models)")
        ax.set_xlabel("condition")
    axes[0][0].set_ylabel(f"error consistency κ with {base_model}")
    from matplotlib.lines import Line2D

    fig.legend(loc="outside lower center", ncols=2, handles=[
        Line2D([], [], ls="", marker="o", ms=3, color="#555555", alpha=st.INSTANCE_ALPHA, label="one model"),
        Line2D([], [], ls="", marker="D", ms=4, color="#555555", mec="black", mew=0.5, label="mean of condition"),
    ])
    return fig


@st.styled
def kappa_matrices_figure(matrices: Mapping[str, pd.DataFrame], groups: Mapping[str, str] | None = None, *,
                          width: str | float = "two", style: str = "paper"):
    """The κ matrices on all images and on the inconclusive ones, side by side (meding2022 Fig. 6).

    With more than 40 models they are shown in the clustered order of κ on all
    images (`consistency.cluster_order`), so that models that err alike form
    blocks; otherwise in the models' order, with a strip of condition colours.
    """
    names = list(next(iter(matrices.values())).index)
    arrays = {s: m.to_numpy(float) for s, m in matrices.items()}
    if len(names) > MATRIX_LABELS_MAX and "all" in arrays:
        order = consistency.cluster_order(arrays["all"])
        arrays = {s: a[np.ix_(order, order)] for s, a in arrays.items()}
        names = [names[i] for i in order]
    fig, axes = st.new_figure(width, 0.55 * st.figure_width(width, style), ncols=2, style=style)
    lo = min(0.0, *(float(a.min()) for a in arrays.values()))
    im = None
    for ax, subset in zip(axes, ("all", "inconclusive"), strict=True):
        if subset not in arrays:
            ax.set_axis_off()
            ax.set_title(f"{SUBSET_TITLES[subset]}: none")
            continue
        im = ax.imshow(arrays[subset], vmin=lo, vmax=1, cmap="viridis", interpolation="nearest")
        mean = consistency.mean_error_consistency(arrays[subset])
        ax.set_title(f"{SUBSET_TITLES[subset]} (mean κ {mean:.2f})")
        if st.matrix_labels(ax, names, side_in=0.3 * st.figure_width(width, style), most=MATRIX_LABELS_MAX):
            if groups:
                palette = st.palette_of(groups, names)
                for label, name in zip(ax.get_yticklabels(), names, strict=True):
                    label.set_bbox({"facecolor": palette[st.condition_of(groups, name)], "alpha": 0.35, "lw": 0,
                                    "pad": 0.6})
        else:
            ax.set_xlabel(f"{len(names)} models" + (", clustered" if len(names) > MATRIX_LABELS_MAX else ""))
        ax.spines[:].set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="error consistency κ")
    return fig
