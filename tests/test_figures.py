"""Every paper figure drawn from small hand-made tables: axes, ticks, legends, colours and files."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgba

from audit.plots import dynamics, images, paper, split, style

GROUPS = {"base": "base", "init_seed_1": "init_seed", "init_seed_2": "init_seed", "architecture": "architecture"}
NAMES = list(GROUPS)


def _kappa(values: dict) -> pd.DataFrame:
    """A symmetric κ matrix over NAMES with 1 on the diagonal and the given pairs, 0.3 elsewhere."""
    m = np.full((len(NAMES), len(NAMES)), 0.3)
    for (a, b), v in values.items():
        m[NAMES.index(a), NAMES.index(b)] = m[NAMES.index(b), NAMES.index(a)] = v
    np.fill_diagonal(m, 1.0)
    return pd.DataFrame(m, index=NAMES, columns=NAMES).rename_axis("model")


KAPPA_ALL = _kappa({("base", "init_seed_1"): 0.9, ("base", "init_seed_2"): 0.7, ("base", "architecture"): 0.5})
KAPPA_INC = _kappa({("base", "init_seed_1"): 0.4, ("base", "init_seed_2"): 0.2, ("base", "architecture"): -0.1})
HISTOGRAM = pd.DataFrame({"n_correct": range(5), "observed": [30, 5, 10, 8, 47],
                          "binomial": [1.0, 8.0, 30.0, 45.0, 16.0], "beta_binomial": [28.0, 9.0, 9.0, 10.0, 44.0]})
SWAPS = pd.DataFrame({"epoch_from": [0, 1, 2], "epoch_to": [1, 2, 3], "base": [40, 20, 10], "init_seed_1": [35, 25, 5],
                      "init_seed_2": [30, 15, 12], "architecture": [50, 30, 20]})
SWAPS["mean"] = SWAPS[NAMES].mean(axis=1)
TP_BY_EPOCH = pd.DataFrame({"epoch": [0, 1, 2, 3], "bimodality": [1.5, 0.9, 0.5, 0.3],
                            "bimodality_null": [1.9, 1.9, 1.8, 1.8]})
PER_CLASS = pd.DataFrame({"class": [0, 1, 2], "class_name": ["cat", "dog", "empty"], "n_images": [10, 10, 0],
                          "base": [0.5, 0.9, np.nan], "init_seed_1": [0.3, 0.8, np.nan]})
PER_CLASS["mean"] = PER_CLASS[["base", "init_seed_1"]].mean(axis=1)


# 40 images, two per bin: accessibility falls with the index; the last 10 images are never learned
SCORES = pd.DataFrame({"accessibility": np.linspace(1, 0, 40),
                       "learned_epoch": np.r_[np.repeat([0.0, 1.0, 2.0], 10), np.full(10, np.nan)]})


def _ticks(ax, axis):
    """The tick values inside the axis' limits (matplotlib keeps one beyond each end)."""
    lo, hi = sorted(getattr(ax, f"get_{axis}lim")())
    return [t for t in getattr(ax, f"get_{axis}ticks")() if lo - 1e-9 <= t <= hi + 1e-9]


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _all_integers(values):
    return len(values) > 0 and all(float(v).is_integer() for v in values)


def test_histogram_bars_take_their_category_colour_and_counts_get_integer_ticks():
    fig = split.histogram_figure(HISTOGRAM, tolerance=1)
    ax = fig.axes[0]
    fig.canvas.draw()
    bars = ax.patches[:5]
    expected = ["impossible", "impossible", "inconclusive", "trivial", "trivial"]  # M = 4, t = 1
    assert [to_hex(b.get_facecolor()) for b in bars] == [style.CATEGORY_COLOURS[c].lower() for c in expected]
    assert [b.get_height() for b in bars] == [30, 5, 10, 8, 47]
    assert _all_integers(_ticks(ax, "x")) and _all_integers(_ticks(ax, "y"))
    assert ax.get_xlabel().startswith("models correct") and ax.get_ylabel() == "images"
    assert _legend_texts(ax) == ["observed: impossible", "observed: inconclusive", "observed: trivial",
                                 "binomial null", "beta-binomial fit"]
    binomial = [line for line in ax.lines if to_hex(line.get_color()) == style.REFERENCE_COLOURS["binomial"].lower()]
    assert list(binomial[0].get_ydata()) == [1.0, 8.0, 30.0, 45.0, 16.0]
    assert ax.get_title() == ""  # the legend explains the colours, not a title


def test_histogram_overlays_the_label_issues():
    issues = pd.DataFrame({"n_correct": [0, 1, 3], "label_issue": [20, 2, 1], "other": [10, 3, 7]})
    ax = split.histogram_figure(HISTOGRAM, tolerance=1, label_issues=issues).axes[0]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert [p.get_height() for p in hatched] == [20, 2, 0, 1, 0]
    assert "label issues (cleanlab)" in _legend_texts(ax)


def test_kappa_by_condition_orders_conditions_and_colours_them():
    fig = split.kappa_by_condition_figure({"all": KAPPA_ALL, "inconclusive": KAPPA_INC}, GROUPS)
    left, right = fig.axes
    # init_seed's mean κ with base is 0.8, architecture's 0.5: highest first, in both panels
    assert [t.get_text() for t in left.get_xticklabels()] == ["init_seed", "architecture"]
    assert [t.get_text() for t in right.get_xticklabels()] == ["init_seed", "architecture"]
    means = [c for c in left.collections if c.get_paths() and c.get_offsets().shape[0] == 1
             and c.get_edgecolor().size and tuple(c.get_edgecolor()[0][:3]) == (0.0, 0.0, 0.0)]
    assert [float(c.get_offsets()[0][1]) for c in means] == pytest.approx([0.8, 0.5])
    assert [to_hex(c.get_facecolor()[0]) for c in means] == [style.condition_colour("init_seed").lower(),
                                                              style.condition_colour("architecture").lower()]
    dots = left.collections[0]  # init_seed's two instances, faint
    assert sorted(dots.get_offsets()[:, 1]) == pytest.approx([0.7, 0.9])
    assert dots.get_alpha() == pytest.approx(style.INSTANCE_ALPHA)
    assert left.get_ylabel() == "error consistency κ with base"
    assert right.get_ylim()[0] < -0.1  # a negative κ stays in view
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["one model", "mean of condition"]


def test_kappa_by_condition_needs_the_base_model():
    with pytest.raises(ValueError, match="base model 'nope' is not in the κ matrix"):
        split.kappa_by_condition_figure({"all": KAPPA_ALL}, GROUPS, base_model="nope")


def test_kappa_matrices_show_both_subsets_with_their_mean():
    fig = split.kappa_matrices_figure({"all": KAPPA_ALL, "inconclusive": KAPPA_INC}, GROUPS)
    left, right = fig.axes[:2]
    np.testing.assert_allclose(left.images[0].get_array(), KAPPA_ALL.to_numpy())
    off = KAPPA_INC.to_numpy()[~np.eye(4, dtype=bool)]
    assert right.get_title() == f"inconclusive images (mean κ {off.mean():.2f})"
    assert [t.get_text() for t in left.get_yticklabels()] == NAMES
    assert fig.axes[-1].get_ylabel() == "error consistency κ"  # the colour bar


def test_one_condition_has_the_same_colour_in_every_figure():
    kappa = split.kappa_by_condition_figure({"all": KAPPA_ALL}, GROUPS).axes[0]
    swaps = dynamics.swaps_figure(SWAPS, GROUPS).axes[0]
    kappa_colour = {t.get_text(): to_hex(c.get_facecolor()[0])
                    for t, c in zip(kappa.get_xticklabels(), kappa.collections[1::2], strict=True)}
    model_lines = swaps.lines[:len(NAMES)]
    swaps_colour = {GROUPS[m]: to_hex(line.get_color()) for m, line in zip(NAMES, model_lines, strict=True)}
    for condition in ("init_seed", "architecture"):
        assert kappa_colour[condition] == swaps_colour[condition] == style.condition_colour(condition).lower()
    assert to_hex(model_lines[1].get_color()) == to_hex(model_lines[2].get_color())  # two instances, one condition
    legend = dict(zip(_legend_texts(swaps), (to_hex(h.get_color()) for h in swaps.get_legend().legend_handles),
                      strict=True))
    assert legend["init_seed"] == style.condition_colour("init_seed").lower()


def test_swaps_axes_are_whole_epochs_and_image_counts():
    fig = dynamics.swaps_figure(SWAPS, GROUPS)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xlim() == (0, 2)  # no half epochs beyond the data
    assert _all_integers(_ticks(ax, "x")) and _all_integers(_ticks(ax, "y"))
    assert ax.get_ylabel() == "images whose decision changes"
    assert "mean of models" in _legend_texts(ax)
    mean = [line for line in ax.lines if line.get_linestyle() == "--"][0]
    np.testing.assert_allclose(mean.get_ydata(), SWAPS["mean"])


def test_tp_agreement_with_and_without_its_histograms():
    hist = np.array([[5, 1, 0, 0], [3, 4, 2, 1], [0, 3, 6, 7]])  # 2 models, 4 epochs
    fig = dynamics.tp_agreement_figure(TP_BY_EPOCH, hist, hist[::-1])
    observed, null, bimodal = fig.axes[:3]
    fig.canvas.draw()
    assert observed.get_title() == "observed" and null.get_title() == "independent models"
    assert _all_integers(_ticks(observed, "x")) and _all_integers(_ticks(bimodal, "x"))
    assert bimodal.get_xlim() == (0, 3)
    assert _legend_texts(bimodal) == ["observed", "independent models"]
    only = dynamics.tp_agreement_figure(TP_BY_EPOCH)
    assert len(only.axes) == 1 and only.axes[0].get_title() == "Pearson bimodality"


def test_decision_maps_keep_whole_epoch_ticks():
    base = np.linspace(0, 1, 12).reshape(4, 3)
    fig = dynamics.decision_maps_figure(base, base[::-1], [1, 2, 3], base_model="base", n_models=4, n_images=400)
    left, right = fig.axes[:2]
    fig.canvas.draw()
    assert left.get_title() == "base" and right.get_title() == "all 4 models"
    assert [float(t) for t in _ticks(left, "x")] == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(left.images[0].get_array(), base)
    assert [a.get_ylabel() for a in fig.axes[2:]] == ["share of decisions correct"] * 2  # the colour bars


def test_class_accuracy_is_sorted_and_leaves_out_empty_classes():
    fig = images.class_accuracy_figure(PER_CLASS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["dog", "cat"]
    assert [b.get_height() for b in ax.patches] == pytest.approx([0.85, 0.4])
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["mean of 2 models", "range over models"]
    one = images.class_accuracy_figure(PER_CLASS, model="base", groups=GROUPS).axes[0]
    assert [b.get_height() for b in one.patches] == pytest.approx([0.9, 0.5])
    assert to_hex(one.patches[0].get_facecolor()) == style.condition_colour("base").lower()
    with pytest.raises(ValueError, match="model 'x' is not a column"):
        images.class_accuracy_figure(PER_CLASS, model="x")


def test_example_pairs_come_from_one_class_each():
    categories = np.array(["impossible", "trivial", "impossible", "trivial", "inconclusive", "trivial"])
    labels = np.array([0, 0, 1, 1, 1, 2])
    pairs = images.pick_example_pairs(categories, labels, n_pairs=5)
    assert sorted(pairs) == [(0, 1), (2, 3)]  # class 2 has no impossible image
    pixels = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)
    fig = images.example_pairs_figure(pixels, pairs, ["shirt", "coat", "bag"], labels)
    assert len(fig.axes) == 4
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), pixels[pairs[0][0]])
    assert fig.axes[0].get_ylabel() == "impossible" and fig.axes[len(pairs)].get_ylabel() == "trivial"
    note = images.example_pairs_figure(None, pairs, ["shirt", "coat", "bag"], labels)
    assert "stores no pixels" in note.axes[0].texts[0].get_text()


@dataclass
class Inputs:
    """A hand-made `paper.FigureSource` (what a `Report` gives the paper figures)."""

    tables: dict
    maps: dict
    summary: dict
    groups: dict
    label_issues: pd.DataFrame | None = None
    tp_histograms: tuple | None = None
    scores: pd.DataFrame | None = None
    pixels: object | None = None
    categories: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: list = field(default_factory=list)


def _inputs(**kw) -> Inputs:
    tables = {"histogram": HISTOGRAM, "ec_all": KAPPA_ALL, "ec_inconclusive": KAPPA_INC, "swaps": SWAPS,
              "tp_by_epoch": TP_BY_EPOCH, "per_class": PER_CLASS}
    maps = {"base": np.ones((4, 4)), "all": np.zeros((4, 4))}
    summary = {"tolerance_used": 1, "audit": {"n_images": 6},
               "dynamics": {"epochs": [0, 1, 2, 3], "base_model": "base", "models": NAMES}}
    return Inputs(tables, maps, summary, GROUPS, categories=np.array(["impossible", "trivial"] * 3),
                              labels=np.array([0, 0, 1, 1, 2, 2]), class_names=["a", "b", "c"], scores=SCORES, **kw)


def test_paper_figures_names_every_figure_the_tables_allow():
    assert list(paper.paper_figures(_inputs())) == list(paper.FIGURES)
    fewer = _inputs()
    fewer.tables, fewer.maps, fewer.scores = {"histogram": HISTOGRAM}, {}, None
    fewer.categories = None
    assert list(paper.paper_figures(fewer)) == ["histogram"]


@pytest.mark.parametrize("fmt", style.FORMATS)
def test_each_figure_is_written_in_each_format(tmp_path, fmt):
    for name, draw in paper.paper_figures(_inputs(pixels=np.zeros((6, 3, 3), np.uint8))).items():
        (path,) = style.save_figure(draw(style="slides" if fmt == "svg" else "paper"), tmp_path / name, fmt)
        assert path.name == f"{name}.{fmt}" and path.stat().st_size > 1000


def test_figure_sizes_are_journal_columns():
    one = split.histogram_figure(HISTOGRAM, tolerance=1)
    two = split.kappa_matrices_figure({"all": KAPPA_ALL}, GROUPS)
    assert one.get_size_inches()[0] == pytest.approx(style.COLUMN_WIDTHS["one"])
    assert two.get_size_inches()[0] == pytest.approx(style.COLUMN_WIDTHS["two"])
    assert split.histogram_figure(HISTOGRAM, tolerance=1, width="two").get_size_inches()[0] == pytest.approx(7.2)
    assert to_rgba(style.condition_colour("base")) == (0.0, 0.0, 0.0, 1.0)


def test_a_zoo_is_drawn_as_filled_steps_and_clustered_matrices():
    n_models = 150
    k = np.arange(n_models + 1)
    flat = np.ones(n_models + 1)
    hist = pd.DataFrame({"n_correct": k, "observed": np.r_[40, flat[2:], 60], "binomial": flat, "beta_binomial": flat})
    ax = split.histogram_figure(hist, tolerance=1).axes[0]
    assert len(ax.patches) == 0  # no patch per bar: three filled steps, one per category
    fills = [to_hex(c.get_facecolor()[0]) for c in ax.collections]
    assert fills == [style.CATEGORY_COLOURS[c].lower() for c in style.CATEGORY_COLOURS]
    rng = np.random.default_rng(0)
    names = [f"m{i}" for i in range(45)]
    a = rng.uniform(0, 1, (45, 45))
    kappa = pd.DataFrame((a + a.T) / 2, index=names, columns=names)
    left = split.kappa_matrices_figure({"all": kappa}).axes[0]
    assert list(left.get_xticks()) == [] and left.get_xlabel() == "45 models, clustered"
    shown = left.images[0].get_array()
    assert sorted(np.asarray(shown).ravel()) == pytest.approx(sorted(kappa.to_numpy().ravel()))  # reordered, not changed


def test_learning_order_bins_images_by_accessibility():
    fig = dynamics.learning_order_figure(SCORES.sample(frac=1, random_state=0))  # the order of rows does not matter
    ax, share = fig.axes
    fig.canvas.draw()
    dots = ax.lines[0]
    np.testing.assert_allclose(dots.get_ydata()[:15], np.repeat([0.0, 1.0, 2.0], 5))
    assert np.isnan(dots.get_ydata()[15:]).all()  # the least accessible 5 bins are never learned
    assert [b.get_height() for b in share.patches] == [0.0] * 15 + [1.0] * 5
    assert _all_integers(_ticks(ax, "x")) and _all_integers(_ticks(ax, "y"))
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == [
        "learned epoch: median, quartiles", "never learned (right axis)"]
    with pytest.raises(ValueError, match="at least 20 images"):
        dynamics.learning_order_figure(SCORES.head(10))


def test_user_conditions_that_hash_alike_get_their_own_colours_everywhere():
    a, b = "cuda_nondeterministic", "optimizer"
    assert style.condition_colour(a) == style.condition_colour(b)  # the stable hash alone would clash
    groups = {"base": "base", "m1": a, "m2": b, "m3": "init_seed"}
    palette = style.palette_of(groups)
    assert palette[a] != palette[b] and palette["init_seed"] == style.condition_colour("init_seed")
    assert style.condition_palette([b, a, "base"]) == {k: palette[k] for k in ("base", a, b)}  # order-free
    swaps = SWAPS.rename(columns={"init_seed_1": "m1", "init_seed_2": "m2", "architecture": "m3"})
    lines = dynamics.swaps_figure(swaps, groups).axes[0].lines
    renamed = dict(zip(NAMES, groups, strict=True))
    kappa = _kappa({}).rename(index=renamed, columns=renamed)
    diamonds = split.kappa_by_condition_figure({"all": kappa}, groups).axes[0]
    by_label = {t.get_text(): to_hex(c.get_facecolor()[0])
                for t, c in zip(diamonds.get_xticklabels(), diamonds.collections[1::2], strict=True)}
    for model, condition in (("m1", a), ("m2", b)):
        line = lines[list(groups).index(model)]
        assert to_hex(line.get_color()) == by_label[condition] == palette[condition].lower()
