"""The look shared by every figure: one colour per condition, journal sizes, integer ticks, saving.

Colours come from colour-blind-safe palettes (Okabe & Ito 2008; Paul Tol's
muted and light schemes); a condition keeps its colour in every figure. This
module draws nothing itself and reads no audit: it only styles and saves.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

#: One fixed colour per condition: the variant groups of meding2022 A.1 (audit/models/variants.py),
#: the pretrained zoo, models scored after the audit, imported makers and humans.
CONDITION_COLOURS: dict[str, str] = {
    "base": "#000000",  # black: the reference every other condition is compared with
    "plus1": "#E69F00",  # orange
    "plus10": "#882255",  # wine
    "nesterov": "#56B4E9",  # sky blue
    "half_batch": "#009E73",  # bluish green
    "init_seed": "#0072B2",  # blue
    "lr_jitter": "#DDCC77",  # sand
    "nondeterministic": "#CC79A7",  # reddish purple
    "data_order": "#332288",  # indigo
    "architecture": "#117733",  # green
    "half_data": "#999933",  # olive
    "combined": "#AA4499",  # purple
    "disjoint": "#44AA99",  # teal
    "pretrained": "#CC6677",  # rose
    "scored": "#F0E442",  # yellow
    "imported": "#88CCEE",  # cyan
    "human": "#D55E00",  # vermillion
}
#: Other names for the same condition (the models table says "human"; people write "humans").
CONDITION_ALIASES = {"humans": "human", "variant": "base"}
#: Colours for conditions a user names in a grid of their own, picked by a stable hash of the name.
EXTRA_COLOURS = ("#77AADD", "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF", "#44BB99", "#BBCC33", "#AAAA00",
                 "#BBBBBB", "#6699CC", "#997700", "#EE99AA")
#: The DDD split's categories (meding2022 §3): easy green, uncertain grey-blue, hard vermillion.
CATEGORY_COLOURS = {"trivial": "#009E73", "inconclusive": "#8DA0CB", "impossible": "#D55E00"}
#: The nulls drawn beside an observed histogram (meding2022 Fig. 2) and any other reference line.
REFERENCE_COLOURS = {"binomial": "#000000", "beta_binomial": "#0072B2", "null": "#777777", "mean": "#000000"}
#: Faint lines and dots for single instances beside their mean.
INSTANCE_ALPHA = 0.45

#: Figure widths in inches: one and two journal columns (89 mm and 183 mm, as Nature and most
#: Elsevier and Springer journals set them), and a 16:9 slide.
COLUMN_WIDTHS = {"one": 3.5, "two": 7.2, "slide": 10.0}
STYLES = ("paper", "slides")
#: matplotlib settings per style: small sans-serif text that stays legible in print, larger on slides.
STYLE_PARAMS: dict[str, dict] = {
    "paper": {
        "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
        "legend.fontsize": 7, "legend.frameon": False, "lines.linewidth": 1.2, "lines.markersize": 3,
        "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6,
        "xtick.major.width": 0.6, "ytick.major.width": 0.6, "pdf.fonttype": 42, "ps.fonttype": 42,
        "svg.fonttype": "none", "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
        "figure.constrained_layout.use": True, "image.cmap": "viridis",
    },
    "slides": {
        "font.size": 14, "axes.titlesize": 14, "axes.labelsize": 14, "xtick.labelsize": 12, "ytick.labelsize": 12,
        "legend.fontsize": 12, "legend.frameon": False, "lines.linewidth": 2.0, "lines.markersize": 5,
        "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42, "ps.fonttype": 42,
        "svg.fonttype": "none", "savefig.bbox": "tight", "savefig.pad_inches": 0.05,
        "figure.constrained_layout.use": True, "image.cmap": "viridis",
    },
}
FORMATS = ("pdf", "svg", "png")
#: Applied when saving: fonts embedded as TrueType in PDF, text kept as text in SVG, a tight box.
SAVE_PARAMS = {"pdf.fonttype": 42, "svg.fonttype": "none", "savefig.bbox": "tight", "savefig.pad_inches": 0.03}
#: Raster resolution of saved PNGs (journals ask for at least 300 dpi).
PNG_DPI = 300


def condition_colour(group: str) -> str:
    """The colour of a condition (a model's `group`), the same in every figure.

    Known conditions have a fixed colour (`CONDITION_COLOURS`); a user's own
    condition gets one of `EXTRA_COLOURS` by a stable hash of its name.
    """
    name = CONDITION_ALIASES.get(str(group), str(group))
    if name in CONDITION_COLOURS:
        return CONDITION_COLOURS[name]
    return EXTRA_COLOURS[zlib.crc32(name.encode()) % len(EXTRA_COLOURS)]


def condition_colours(groups: Iterable[str]) -> list[str]:
    """`condition_colour` of each group, in order (for one colour per model given the models' groups)."""
    return [condition_colour(g) for g in groups]


def condition_palette(groups: Iterable[str]) -> dict[str, str]:
    """A colour for each distinct condition in `groups`, no two alike.

    Known conditions keep their fixed colour; a user's own conditions take, in
    sorted order, their `condition_colour` unless a condition before them has it,
    else the next free one of `EXTRA_COLOURS` (grey once all are taken). Figures
    that are given the same conditions (the audit's) so colour them alike.
    """
    names = sorted({str(g) for g in groups})
    palette = {n: condition_colour(n) for n in names if CONDITION_ALIASES.get(n, n) in CONDITION_COLOURS}
    used = set(palette.values())
    for name in (n for n in names if n not in palette):
        start = EXTRA_COLOURS.index(condition_colour(name))
        free = [EXTRA_COLOURS[(start + i) % len(EXTRA_COLOURS)] for i in range(len(EXTRA_COLOURS))]
        palette[name] = next((c for c in free if c not in used), "#999999")
        used.add(palette[name])
    return palette


def figure_width(width: str | float, style: str = "paper") -> float:
    """Inches for "one" or "two" journal columns (a slide's width under style "slides"), or a number as given."""
    if isinstance(width, str):
        if width not in COLUMN_WIDTHS:
            raise ValueError(f"width must be one of {sorted(COLUMN_WIDTHS)} or inches, got {width!r}")
        return COLUMN_WIDTHS["slide"] if style == "slides" else COLUMN_WIDTHS[width]
    return float(width)


#: Height in inches of one row of panels: 3:4 of a journal column, or a slide's 16:9 less a title's room.
PANEL_HEIGHTS = {"paper": 0.75 * COLUMN_WIDTHS["one"], "slides": 5.0}


def panel_height(style: str = "paper") -> float:
    """Inches of one row of panels in `style`."""
    return PANEL_HEIGHTS[check_style(style)]


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    return style


def styled(draw):
    """Decorate a plotting function so that it draws under `STYLE_PARAMS[style]` (keyword `style`, default paper)."""

    @functools.wraps(draw)
    def wrapper(*args, style: str = "paper", **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE_PARAMS[check_style(style)]):
            return draw(*args, style=style, **kwargs)

    return wrapper


#: the parent that the next `new_figure` draws into (set by `drawing_into`), in a list that it empties
_INTO: contextvars.ContextVar[list | None] = contextvars.ContextVar("drawing_into", default=None)


@contextlib.contextmanager
def drawing_into(parent):
    """Within this block, the next `new_figure` draws its panels into `parent` (a matplotlib Figure or
    SubFigure, e.g. `fig.add_subfigure(ax.get_subplotspec())`) instead of making a Figure; later calls make
    their own. A figure function then returns `parent`, holding all its panels, colour bars and legends.

    The figures are laid out by constrained layout: when `parent`'s figure has no layout engine it gets one.
    """
    root = parent.get_figure(root=True) if hasattr(parent, "get_figure") else parent
    if root.get_layout_engine() is None:
        root.set_layout_engine("constrained")
    token = _INTO.set([parent])
    try:
        yield parent
    finally:
        _INTO.reset(token)


def new_figure(width: str | float = "one", height: float | None = None, *, ncols: int = 1, nrows: int = 1,
               style: str = "paper", **subplot_kw):
    """A constrained-layout Figure on the Agg canvas (no pyplot, no display) and its axes.

    `width` is "one" or "two" journal columns or inches; `height` defaults to
    `panel_height(style)` per row. Returns (fig, axes) as `Figure.subplots`.
    Inside `drawing_into(parent)`, the first call returns (parent, its new axes) instead; the parent keeps
    its size.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    into = _INTO.get()
    if into:
        parent = into.pop()
        return parent, parent.subplots(nrows, ncols, **subplot_kw)
    w = figure_width(width, style)
    h = float(height) if height is not None else panel_height(style) * nrows
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **subplot_kw)
    return fig, axes


def integer_ticks(ax, axis: str = "both") -> None:
    """Ticks at whole numbers only on `axis` ("x", "y" or "both"), for counts, epochs and ranks."""
    from matplotlib.ticker import MaxNLocator

    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"{name}axis").set_major_locator(MaxNLocator(integer=True))


def count_ticks(ax, low: int, high: int, *, axis: str = "x", most: int = 8) -> list[int]:
    """An axis that counts from `low` to exactly `high` (models, epochs): at most about `most` whole ticks at
    round steps, the last one at `high`, and the axis ending there. Returns the ticks."""
    from matplotlib.ticker import MaxNLocator

    low, high = int(low), int(high)
    if high <= low:
        ticks = [high]
        limits = (high - 0.5, high + 0.5)
    else:
        nice = [int(v) for v in MaxNLocator(nbins=most, integer=True).tick_values(low, high)]
        step = max(nice[1] - nice[0], 1) if len(nice) > 1 else 1
        ticks = [v for v in nice if low <= v <= high - step]  # the last label keeps a step of room
        if not ticks or ticks[0] - low > step / 2:
            ticks.insert(0, low)
        ticks.append(high)
        limits = (low, high)
    getattr(ax, f"set_{axis}lim")(*limits)
    getattr(ax, f"set_{axis}ticks")(ticks)
    return ticks


def matrix_labels(ax, labels, *, side_in: float, most: int = 40) -> bool:
    """Name the rows and columns of a square matrix drawn about `side_in` inches across, at a font size
    that gives each label its row (at most 6 pt); no labels when there are more than `most` or they would
    be under 4 pt. Returns whether the labels are drawn."""
    n = len(labels)
    size = min(6.0, 0.7 * side_in * 72 / max(n, 1))
    if n > most or size < 4:
        ax.set_xticks([])
        ax.set_yticks([])
        return False
    ax.set_xticks(range(n), list(labels), rotation=90, fontsize=size)
    ax.set_yticks(range(n), list(labels), fontsize=size)
    return True


def percent_axis(ax, axis: str = "y", *, share: bool = True) -> None:
    """Label a share axis (values 0-1 when `share`, else 0-100) in percent."""
    from matplotlib.ticker import PercentFormatter

    getattr(ax, f"{axis}axis").set_major_formatter(PercentFormatter(1.0 if share else 100.0, decimals=0))


def condition_legend(ax, groups: Sequence[str], *, marker: str = "o", palette: dict | None = None, **kwargs):
    """A legend with one entry per condition in `groups` (first appearance kept), in `palette`'s colours."""
    from matplotlib.lines import Line2D

    seen = list(dict.fromkeys(str(g) for g in groups))
    palette = palette or condition_palette(seen)
    handles = [Line2D([], [], color=palette[g], marker=marker, ls="", label=g) for g in seen]
    return ax.legend(handles=handles, **kwargs)


def palette_of(groups, models=()) -> dict[str, str]:
    """`condition_palette` of every condition in a mapping model -> group, and of `models` missing from it."""
    return condition_palette([*(condition_of(groups, m) for m in (groups or {})),
                              *(condition_of(groups, m) for m in models)])


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """"pdf,svg" or ["pdf", "png"] -> ("pdf", "svg"); an unknown format fails naming the known ones."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}; got {formats!r}")
    return chosen


def save_figure(fig, path_stem: str | Path, formats: str | Iterable[str] = FORMATS, *, dpi: int = PNG_DPI) -> list[Path]:
    """Write `fig` as <path_stem>.<format> for each format: vector PDF and SVG, PNG at `dpi` (300).

    Each file is written to a temporary name first and renamed, so a reader
    never sees half a figure. Returns the paths written, in the order asked.
    """
    import os

    import matplotlib

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in parse_formats(formats):
        path = stem.with_name(f"{stem.name}.{fmt}")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with matplotlib.rc_context(SAVE_PARAMS):
                fig.savefig(tmp, format=fmt, dpi=dpi if fmt == "png" else "figure",
                            metadata={"Date": None} if fmt in ("pdf", "svg") else None)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written


def condition_of(groups, model: str) -> str:
    """A model's condition from a mapping model -> group; the model's own name where the group is missing."""
    group = groups.get(model) if groups else None
    return model if group is None or (isinstance(group, float) and group != group) else str(group)
