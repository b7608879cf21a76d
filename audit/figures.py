"""The report's figures: matplotlib drawings of its tables, made only when the report is written.

Each function returns a Figure on the Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import numpy as np

from audit.metrics import consistency, difficulty

#: above this many bars (models or classes), bar charts are drawn as filled steps
MANY_BARS = 100


def new_figure(width: float, height: float, ncols: int = 1):
    """A constrained-layout Figure on the Agg canvas with `ncols` axes in one row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def n_correct_histogram(hist, binom, beta_binom, t):
    """The n_correct histogram coloured by category, with the binomial and beta-binomial nulls (meding2022 Fig. 2)."""
    n_models = len(hist) - 1
    fig, ax = new_figure(7, 4)
    k = np.arange(n_models + 1)
    share = hist / hist.sum()
    colour = {"trivial": "tab:green", "inconclusive": "tab:blue", "impossible": "tab:red"}
    category = difficulty.split_from_counts(k, n_models, tolerance=t)
    marker = 3 if n_models <= MANY_BARS else 0
    if n_models <= MANY_BARS:
        ax.bar(k, share, color=[colour[c] for c in category], alpha=0.75, label="observed")
    else:  # a thousand bars as patches take seconds; filled steps draw the same shape at once
        for name, col in colour.items():
            ax.fill_between(k, np.where(category == name, share, 0.0), step="mid", color=col, alpha=0.75, lw=0,
                            label="observed" if name == "inconclusive" else None)
    ax.plot(k, binom / hist.sum(), "o-", color="black", ms=marker, label="binomial null")
    ax.plot(k, beta_binom / hist.sum(), "s--", color="tab:orange", ms=marker, label="beta-binomial fit")
    ax.set_xlabel("models that classify the image correctly (n_correct)")
    ax.set_ylabel("share of images")
    ax.set_title(f"impossible (red) / inconclusive (blue) / trivial (green), tolerance {t}")
    ax.legend(frameon=False)
    return fig


def error_consistency(matrices: dict, names: list[str]):
    """The kappa matrices on all images and on the inconclusive ones, side by side (meding2022 Fig. 6).

    Many models are shown in the clustered order of κ on all images (`consistency.cluster_order`), so that
    groups of models that err alike form blocks."""
    fig, axes = new_figure(12, 6.5, ncols=2)
    if len(names) > 40 and "all" in matrices:
        order = consistency.cluster_order(matrices["all"])
        matrices = {k: m[np.ix_(order, order)] for k, m in matrices.items()}
        names = [names[i] for i in order]
    titles = {"all": "all images", "inconclusive": "inconclusive images"}
    lo = min(0.0, *(float(m.min()) for m in matrices.values()))
    for ax, subset in zip(np.atleast_1d(axes), ("all", "inconclusive"), strict=True):
        if subset not in matrices:
            ax.set_axis_off()
            ax.set_title(f"{titles[subset]}: none")
            continue
        im = ax.imshow(matrices[subset], vmin=lo, vmax=1, cmap="viridis")
        mean = consistency.mean_error_consistency(matrices[subset])
        ax.set_title(f"{titles[subset]} (mean {mean:.2f})", fontsize=10)
        if len(names) <= 40:
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="error consistency (kappa)")
    return fig


def per_class_accuracy(class_acc, class_names):
    """Mean accuracy per class, easiest first, with the range over models."""
    fig, ax = new_figure(9, 4)
    present = ~np.isnan(class_acc).all(axis=1)  # classes without a validation image have no accuracy
    class_acc = class_acc[present]
    class_names = [n for n, p in zip(class_names, present, strict=True) if p]
    mean = class_acc.mean(axis=1)
    order = np.argsort(-np.nan_to_num(mean, nan=-1), kind="stable")
    x = np.arange(len(order))
    if len(order) <= MANY_BARS:
        ax.bar(x, mean[order], color="tab:blue", width=1.0 if len(order) > 50 else 0.8)
    else:
        ax.fill_between(x, mean[order], step="mid", color="tab:blue", lw=0)
    if class_acc.shape[1] > 1:
        ax.vlines(
            x, np.nanmin(class_acc, axis=1)[order], np.nanmax(class_acc, axis=1)[order], color="black", lw=0.6
        )
    if len(order) <= 30:
        ax.set_xticks(x, [class_names[i] for i in order], rotation=90, fontsize=7)
    else:
        ax.set_xlabel("classes, easiest first")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (mean over models; line = range)")
    ax.set_title("per-class accuracy")
    return fig


def swaps_per_epoch(epochs, swaps, names, n_images):
    """Decisions that swap between recorded epochs: each model and their mean."""
    fig, ax = new_figure(7, 4)
    x = epochs[:-1]
    for row in swaps:
        ax.plot(x, 100 * row / n_images, color="grey", lw=0.5, alpha=0.5)
    ax.plot(
        x, 100 * swaps.mean(axis=0) / n_images, color="tab:red", lw=2, label=f"mean of {len(names)} models"
    )
    ax.set_xlabel("epoch e (change from e to the next recorded epoch)")
    ax.set_ylabel("decisions that swap (% of images)")
    ax.legend(frameon=False)
    return fig


def tp_agreement(epochs, tpa_hist, null_hist, bimodal, bimodal_null):
    """TP-agreement per epoch beside its null, and Pearson bimodality (hacohen2020 Fig. 3)."""
    fig, axes = new_figure(13, 4, ncols=3)
    n_models = tpa_hist.shape[0] - 1
    extent = (epochs[0] - 0.5, epochs[-1] + 0.5, -0.5 / n_models, 1 + 0.5 / n_models)
    vmax = max(float(tpa_hist.max()), float(null_hist.max()), 1.0)
    from matplotlib.colors import LogNorm

    norm = LogNorm(vmin=1, vmax=vmax)
    for ax, h, title in ((axes[0], tpa_hist, "observed"), (axes[1], null_hist, "independent models (null)")):
        im = ax.imshow(
            np.maximum(h, 0.5), origin="lower", aspect="auto", extent=extent, norm=norm, cmap="magma"
        )
        ax.set_title(f"TP-agreement per epoch: {title}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("TP-agreement")
    fig.colorbar(im, ax=axes[:2], label="images")
    axes[2].plot(epochs, bimodal, "o-", ms=3, label="observed")
    axes[2].plot(epochs, bimodal_null, "--", color="tab:orange", label="null")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("kurtosis - skewness² - 1 (lower = more bimodal)")
    axes[2].set_title("Pearson bimodality")
    axes[2].legend(frameon=False)
    return fig


def decision_maps(base_map, all_map, epochs, base_name, n_models, n_images):
    """The decision maps of the base model and of all models (meding2022 Fig. 4)."""
    fig, axes = new_figure(12, 5, ncols=2)
    extent = (epochs[0] - 0.5, epochs[-1] + 0.5, n_images, 0)
    axes[0].imshow(
        base_map, aspect="auto", cmap="Blues_r", vmin=0, vmax=1, extent=extent, interpolation="nearest"
    )
    axes[0].set_title(f"{base_name}: share correct (white = correct)")
    im = axes[1].imshow(
        all_map, aspect="auto", cmap="Reds_r", vmin=0, vmax=1, extent=extent, interpolation="nearest"
    )
    axes[1].set_title(f"{n_models} models: share correct")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("images, ordered by mean accuracy (easiest on top)")
    fig.colorbar(im, ax=axes, shrink=0.8, label="share correct")
    return fig
