"""Figures of learning over epochs (meding2022 Fig. 4, 5, 12; hacohen2020 Fig. 3).

Each function takes the report's tables and decision maps and returns a
Figure; epochs and counts get whole-number ticks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.plots import style as st


def _epoch_axis(ax, epochs, *, cells: bool) -> None:
    """Whole-number epoch ticks; `cells` (a heat map) leaves half an epoch either side, lines none."""
    pad = 0.5 if cells or epochs[0] == epochs[-1] else 0.0  # one epoch: a line's axis needs some width too
    ax.set_xlim(epochs[0] - pad, epochs[-1] + pad)
    st.integer_ticks(ax, "x")
    ax.set_xlabel("epoch")


@st.styled
def decision_maps_figure(base_map: np.ndarray, all_map: np.ndarray, epochs, *, base_model: str, n_models: int,
                         n_images: int, width: str | float = "two", style: str = "paper"):
    """Share of correct decisions per epoch, for the base network and for all models (meding2022 Fig. 4, 5).

    Parameters
    ----------
    base_map, all_map : ndarray of shape (n_bins, n_epochs)
        Binned decision maps (`dynamics.binned_decision_map`): rows are images
        ordered by mean accuracy, easiest on top; values are shares correct.
    epochs : sequence of int, length n_epochs
    """
    epochs = np.asarray(epochs)
    fig, axes = st.new_figure(width, 0.45 * st.figure_width(width, style), ncols=2, style=style)
    extent = (epochs[0] - 0.5, epochs[-1] + 0.5, n_images, 0)
    panels = ((base_map, "Blues_r", f"{base_model}"), (all_map, "Reds_r", f"all {n_models} models"))
    for ax, (values, cmap, title) in zip(axes, panels, strict=True):
        im = ax.imshow(values, aspect="auto", cmap=cmap, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax.set_title(title)
        _epoch_axis(ax, epochs, cells=True)
        st.integer_ticks(ax, "y")
        fig.colorbar(im, ax=ax, shrink=0.85, label="share of decisions correct")
    axes[0].set_ylabel("images, by mean accuracy (easiest on top)")
    return fig


@st.styled
def swaps_figure(swaps: pd.DataFrame, groups: Mapping[str, str], *, width: str | float = "two",
                 style: str = "paper"):
    """Images whose decision changes from each epoch to the next, one line per model (meding2022 Fig. 12).

    Parameters
    ----------
    swaps : DataFrame with columns epoch_from, epoch_to, one column per model, and mean
        The report's swaps_per_epoch.csv: counts of images.
    groups : mapping model -> condition
        Each model's line takes its condition's colour; the mean is black and dashed.
    """
    models = [c for c in swaps.columns if c not in ("epoch_from", "epoch_to", "mean")]
    x = swaps["epoch_from"].to_numpy()
    fig, ax = st.new_figure(width, style=style)
    conditions = [st.condition_of(groups, m) for m in models]
    palette = st.palette_of(groups, models)
    for model, condition in zip(models, conditions, strict=True):
        ax.plot(x, swaps[model].to_numpy(float), color=palette[condition], lw=0.8,
                alpha=0.8 if len(models) <= 30 else 0.3)
    mean = swaps["mean"] if "mean" in swaps.columns else swaps[models].mean(axis=1)
    ax.plot(x, mean.to_numpy(float), color=st.REFERENCE_COLOURS["mean"], lw=1.6, ls="--", label="mean of models")
    _epoch_axis(ax, x, cells=False)
    ax.set_xlabel("epoch e (change from e to e + 1)")
    st.integer_ticks(ax, "y")
    ax.set_ylim(0, None)
    ax.set_ylabel("images whose decision changes")
    from matplotlib.lines import Line2D

    distinct = list(dict.fromkeys(conditions))
    handles = [Line2D([], [], color=palette[c], label=c) for c in distinct[:16]]
    handles.append(Line2D([], [], color="black", ls="--", lw=1.6, label="mean of models"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncols=1 if len(handles) <= 9 else 2)
    return fig


@st.styled
def tp_agreement_figure(tp_by_epoch: pd.DataFrame, tpa_hist: np.ndarray | None = None,
                        null_hist: np.ndarray | None = None, *, width: str | float = "two", style: str = "paper"):
    """TP-agreement per epoch beside its null of independent models, and Pearson bimodality (hacohen2020 Fig. 3, §3).

    Parameters
    ----------
    tp_by_epoch : DataFrame with columns epoch, bimodality, bimodality_null
        The report's tp_agreement_by_epoch.csv.
    tpa_hist, null_hist : ndarray of shape (n_models + 1, n_epochs), optional
        Images per TP-agreement value and epoch, observed and under the null;
        without them only the bimodality panel is drawn.
    """
    epochs = tp_by_epoch["epoch"].to_numpy()
    with_maps = tpa_hist is not None and null_hist is not None
    fig, axes = st.new_figure(width if with_maps else "one", None if with_maps else None,
                              ncols=3 if with_maps else 1, style=style)
    axes = np.atleast_1d(axes)
    if with_maps:
        from matplotlib.colors import LogNorm

        n_models = tpa_hist.shape[0] - 1
        extent = (epochs[0] - 0.5, epochs[-1] + 0.5, -0.5 / n_models, 1 + 0.5 / n_models)
        norm = LogNorm(vmin=1, vmax=max(float(tpa_hist.max()), float(null_hist.max()), 1.0))
        for ax, hist, title in ((axes[0], tpa_hist, "observed"), (axes[1], null_hist, "independent models")):
            im = ax.imshow(np.maximum(hist, 0.5), origin="lower", aspect="auto", extent=extent, norm=norm,
                           cmap="magma", interpolation="nearest")
            ax.set_title(title)
            _epoch_axis(ax, epochs, cells=True)
        axes[0].set_ylabel("TP-agreement (share of models correct)")
        fig.colorbar(im, ax=axes[:2], label="images", shrink=0.85)
    ax = axes[-1]
    ax.plot(epochs, tp_by_epoch["bimodality"].to_numpy(float), "o-", color="black", ms=3, label="observed")
    ax.plot(epochs, tp_by_epoch["bimodality_null"].to_numpy(float), "--", color=st.REFERENCE_COLOURS["null"],
            label="independent models")
    _epoch_axis(ax, epochs, cells=False)
    ax.set_ylabel("kurtosis − skewness² − 1 (lower: more bimodal)")
    ax.set_title("Pearson bimodality")
    ax.legend(loc="best")
    return fig


@st.styled
def learning_order_figure(scores: pd.DataFrame, *, n_bins: int = 20, width: str | float = "one",
                          style: str = "paper"):
    """Images sorted by Accessibility in bins of equal size, and the epoch at which each bin is learned (hacohen2020 Fig. 6).

    Parameters
    ----------
    scores : DataFrame with columns accessibility and learned_epoch
        Per-image scores (the report's images.parquet): learned_epoch is NaN for
        images never learned for good.
    n_bins : int, default 20
        Bins of equal size (20: 5% of the images each), most accessible first.

    Dots are the median learned epoch of a bin's learned images, bars their
    quartiles; grey columns the share of the bin never learned (right axis).
    """
    if len(scores) < n_bins:
        raise ValueError(f"learning order needs at least {n_bins} images (one per bin), got {len(scores)}")
    order = np.argsort(-scores["accessibility"].to_numpy(float), kind="stable")
    learned = scores["learned_epoch"].to_numpy(float)[order]
    bins = np.array_split(learned, n_bins)
    x = np.arange(1, n_bins + 1)
    median, low, high, never = (np.full(n_bins, np.nan) for _ in range(4))
    for i, values in enumerate(bins):
        never[i] = np.isnan(values).mean()
        if not np.isnan(values).all():
            low[i], median[i], high[i] = np.nanpercentile(values, [25, 50, 75])
    fig, ax = st.new_figure(width, style=style)
    share = ax.twinx()
    share.bar(x, never, width=0.8, color="#BBBBBB", lw=0, label="never learned (right axis)")
    share.set_ylim(0, 1)
    st.percent_axis(share, "y")
    share.set_ylabel("images never learned")
    share.spines["right"].set_visible(True)
    ax.set_zorder(share.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.errorbar(x, median, yerr=[median - low, high - median], fmt="o", color="black", ms=3, lw=0.8, capsize=0,
                label="learned epoch: median, quartiles")
    ax.set_xlim(0.4, n_bins + 0.6)
    st.integer_ticks(ax)
    ax.set_xlabel(f"images by Accessibility, most accessible first ({100 / n_bins:g}% bins)")
    ax.set_ylabel("epoch learned")
    handles = [*ax.get_legend_handles_labels()[0], *share.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside upper center", ncols=2)
    return fig
