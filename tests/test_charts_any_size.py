"""Charts that read at any size: the app's Altair specs and the report's matplotlib figures, drawn for 2, 4, 15
and 1,000 models and for 60 to 50,000 images, keep square cells of at least 20 px, whole ticks on counts that end
at the real count, titles with the real numbers, and tick labels that do not overlap."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from audit.plots import similarity, split
from audit_app import _charts, _frames

SIZES = (2, 4, 15, 1000)


def _models(n: int) -> list[str]:
    return [f"init_seed_{i}" for i in range(n)]


def _matrix(n: int, seed: int = 0) -> pd.DataFrame:
    a = np.random.default_rng(seed).uniform(-1, 1, (n, n))
    m = (a + a.T) / 2
    np.fill_diagonal(m, 1.0)
    names = _models(n)
    return pd.DataFrame(m, index=pd.Index(names, name="model"), columns=names)


# --------------------------------------------------------------------------- Altair (the app)
@pytest.mark.parametrize("n", SIZES)
def test_a_matrix_has_square_cells_of_at_least_20_px_or_is_an_image(n):
    matrix = _matrix(n)
    if n > _charts.MATRIX_MAX_ROWS:
        picture = _charts.matrix_picture(matrix.to_numpy(), cmap="RdBu", domain=(-1, 1))
        k = picture.shape[0] // n
        assert picture.shape == (n * k, n * k, 3) and picture.dtype == np.uint8
        assert k >= 1 and n * k >= 600 or k == 1  # each pair at least one whole pixel
        # the cell of one pair is one colour: the matrix is scaled by repetition, not blurred
        assert np.all(picture[:k, :k] == picture[0, 0])
        return
    long = _frames.matrix_long_form(matrix)
    spec = _charts.matrix_chart(long, list(matrix.index), title=f"RSA between {n} models", domain=(-1, 1)).to_dict()
    step_h, step_w = spec["height"]["step"], spec["width"]["step"]
    assert step_h == step_w >= _charts.MIN_CELL  # square, and the height is rows x at least 20 px
    assert step_h * n >= 20 * n
    assert spec["encoding"]["y"]["axis"]["labelOverlap"] is False  # every model keeps its label
    assert spec["encoding"]["y"]["sort"] == list(matrix.index)
    assert spec["encoding"]["x"]["scale"]["domain"] == list(matrix.index)
    assert f"{n} models" in spec["title"]


def test_a_matrix_of_a_few_rows_grows_to_a_readable_size_but_not_beyond():
    assert _charts.cell_size(2) == _charts.MAX_CELL
    assert _charts.cell_size(8) == 40 and _charts.cell_size(15) == 21 and _charts.cell_size(40) == _charts.MIN_CELL
    assert all(_charts.MIN_CELL <= _charts.cell_size(n) <= _charts.MAX_CELL for n in range(1, 200))


def test_a_confusion_matrix_keeps_every_class_as_a_column():
    long = pd.DataFrame({"true": ["a", "b"], "predicted": ["b", "c"], "share": [1.0, 1.0]})
    spec = _charts.matrix_chart(long, ["a", "b"], columns=["a", "b", "c", "d"], x="predicted", y="true",
                                value="share", title="t").to_dict()
    assert spec["encoding"]["x"]["scale"]["domain"] == ["a", "b", "c", "d"]  # "d", never predicted, still shown
    assert spec["encoding"]["y"]["scale"]["domain"] == ["a", "b"]


def _curve(n_models: int) -> pd.DataFrame:
    """A stability.csv as the report writes it: resampled up to n_models, the fit beyond to 4 x n_models."""
    n = np.arange(min(3, n_models), 4 * n_models + 1)
    seen = n <= n_models
    share = 0.9 - 0.1 * n / n.max()
    frame = pd.DataFrame({"n_models": n, "observed": seen})
    for c, v in (("trivial", share), ("impossible", (1 - share) / 2), ("inconclusive", (1 - share) / 2)):
        frame[f"{c}_mean"] = np.where(seen, v, np.nan)
        frame[f"{c}_low"], frame[f"{c}_high"] = frame[f"{c}_mean"] - 0.01, frame[f"{c}_mean"] + 0.01
        if c != "inconclusive":
            frame[f"{c}_fit"] = v
    return frame


@pytest.mark.parametrize("n", SIZES)
def test_the_stability_axis_counts_whole_models_up_to_the_audits(n):
    long = _frames.stability_long_form(_curve(n))
    spec = _charts.stability_chart(long, n).to_dict()
    x = spec["layer"][0]["encoding"]["x"]
    assert x["scale"]["domain"][1] == n and x["scale"]["nice"] is False
    ticks = x["axis"]["values"]
    assert all(isinstance(t, int) for t in ticks) and ticks[-1] == n and len(ticks) <= 13
    assert x["axis"]["format"] == ",d" and x["axis"]["tickMinStep"] == 1
    shown = pd.DataFrame(spec["datasets"][spec["data"]["name"]])
    assert shown["n_models"].max() == n  # nothing beyond the audit's models is drawn ...
    projection = _charts.stability_projection(long, n)
    assert f"at {4 * n:,} models" in projection  # ... it is stated instead
    assert f"audit's {n:,} model" in spec["title"]


@pytest.mark.parametrize(("n_images", "said"), [(60, "all 60 images"), (599, "all 599 images"),
                                                (50_000, "a sample of 5,000 of 50,000 images")])
def test_the_cartography_title_states_the_real_number_of_images(n_images, said):
    rng = np.random.default_rng(0)
    shown = min(n_images, 5000)
    points = pd.DataFrame({"variability": rng.uniform(0, 0.3, shown), "confidence": rng.uniform(0, 1, shown),
                           "category": rng.choice(["trivial", "inconclusive", "impossible"], shown)})
    spec = _charts.cartography_chart(points, n_images).to_dict()
    assert spec["title"].endswith(said)


@pytest.mark.parametrize("n", SIZES)
def test_an_axis_of_models_has_a_dozen_whole_upright_labels_ending_at_the_count(n):
    axis = _charts.models_axis(n, "models correct").to_dict()
    assert axis["values"][0] == 0 and axis["values"][-1] == n and len(axis["values"]) <= 13
    assert all(isinstance(v, int) for v in axis["values"]) and axis["labelAngle"] == 0
    assert np.all(np.diff(axis["values"]) > 0)


def test_count_axes_have_whole_ticks():
    axis = _charts.count_axis("images").to_dict()
    assert axis["format"] == ",d" and axis["tickMinStep"] == 1
    assert _charts.count_scale(599).to_dict() == {"domain": [0, 599], "nice": False}


def test_a_table_reads_with_human_names_and_no_none():
    table = pd.DataFrame({"category": ["trivial", "impossible"], "n_images": [568, 14],
                          "mean_prediction_depth": [0.1479, np.nan], "note": ["x", None], "n_defined": [5.0, np.nan]})
    shown = _charts.readable_table(table)
    assert list(shown.columns) == ["category", "images", "mean depth", "note", "images with a depth"]
    cells = shown.astype(str).to_numpy().ravel().tolist()
    assert "None" not in cells and "nan" not in cells
    assert shown["mean depth"].tolist() == ["0.148", "—"] and shown["images with a depth"].tolist() == ["5", "—"]
    assert shown["images"].tolist() == [568, 14]  # a column without gaps stays numeric


# --------------------------------------------------------------------------- matplotlib (the report's figures)
def _tick_boxes(fig, ax, axis: str):
    renderer = fig.canvas.get_renderer()
    labels = getattr(ax, f"get_{axis}ticklabels")()
    return [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]


def _no_overlaps(fig) -> None:
    fig.canvas.draw()
    for ax, axis in itertools.product(fig.axes, ("x", "y")):
        boxes = _tick_boxes(fig, ax, axis)
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), f"tick labels overlap on {axis} of {ax.get_title()!r}: {a} and {b}"


@pytest.mark.parametrize("n", (2, 4, 15, 40, 60))
def test_kappa_matrices_label_each_model_without_overlap(n):
    matrices = {"all": _matrix(n), "inconclusive": _matrix(n, seed=1)}
    fig = split.kappa_matrices_figure(matrices, {m: "init_seed" for m in _models(n)})
    _no_overlaps(fig)
    left = fig.axes[0]
    labelled = [t.get_text() for t in left.get_yticklabels()]
    assert labelled == _models(n) or (labelled == [] and left.get_xlabel().startswith(f"{n} models"))
    if n <= 15:
        assert labelled == _models(n)  # a small audit names every model
    assert left.images[0].get_array().shape == (n, n)  # one square cell per pair


@pytest.mark.parametrize("n", (2, 4, 15, 40))
def test_representation_figure_labels_do_not_overlap(n):
    names = _models(n)
    matrices = {(m, "all"): (_matrix(n).abs()) for m in ("rsa", "cka")}
    vs = pd.DataFrame([{"model": m, "measure": meas, "images": s, "value": 0.5}
                       for m in names[1:] for meas in ("RSA", "CKA") for s in ("all", "inconclusive")])
    fig = similarity.representation_figure(matrices, vs, {m: "init_seed" for m in names}, names[0])
    _no_overlaps(fig)
    assert f"of {n} models" in fig.axes[0].get_title()
    if n <= 15:
        assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names


@pytest.mark.parametrize("n_classes", (2, 10, 40, 1000))
def test_confusion_figure_labels_do_not_overlap(n_classes):
    rng = np.random.default_rng(0)
    counts = {"all": rng.integers(0, 5, (n_classes, n_classes)), "impossible": rng.integers(0, 2, (n_classes, n_classes))}
    fig = similarity.confusion_figure(counts, [f"class {i}" for i in range(n_classes)])
    _no_overlaps(fig)
    assert f"({int(counts['all'].sum()):,} decisions)" in fig.axes[0].get_title()


@pytest.mark.parametrize("n", SIZES)
def test_the_histogram_counts_whole_models_up_to_the_audits(n):
    k = np.arange(n + 1)
    observed = np.r_[20, np.ones(n - 1), 50] if n > 1 else np.array([20.0, 50.0])
    hist = pd.DataFrame({"n_correct": k, "observed": observed, "binomial": np.ones(n + 1),
                         "beta_binomial": np.ones(n + 1)})
    fig = split.histogram_figure(hist, tolerance=(n - 1) // 2 and 1)
    _no_overlaps(fig)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert all(float(t).is_integer() for t in ticks) and max(ticks) <= n
    assert hi < n + 1 and f"of {n})" in ax.get_xlabel()


# --------------------------------------------------------------------------- the report's deeper figures
def _visible_ticks(ax, axis: str = "x") -> list[float]:
    lo, hi = sorted(getattr(ax, f"get_{axis}lim")())
    return [float(t) for t in getattr(ax, f"get_{axis}ticks")() if lo <= t <= hi]


@pytest.mark.parametrize("n", SIZES)
def test_the_stability_figure_counts_whole_models_up_to_the_audits_and_states_the_projection(n):
    from audit.report.training_scores import _fig_stability

    curve = _curve(n)
    curve["kappa_mean"] = np.where(curve["observed"], 0.3, np.nan)
    curve["kappa_low"], curve["kappa_high"] = curve["kappa_mean"] - 0.05, curve["kappa_mean"] + 0.05
    fig = _fig_stability(curve, n)
    _no_overlaps(fig)
    for ax in fig.axes:
        ticks = _visible_ticks(ax)
        assert all(t.is_integer() for t in ticks) and max(ticks) == n and len(ticks) <= 9
        assert max(ax.get_xlim()) < n + 1  # the axis ends at the audit's models ...
        for line in ax.get_lines():
            assert np.nanmax(np.asarray(line.get_xdata(), float)) <= n  # ... and nothing is drawn beyond them
    # ... the fit out to 4 x n is stated in words instead, with its own numbers
    projection = fig.get_supxlabel()
    top = curve.iloc[-1]
    assert f"at {4 * n:,} models: trivial {top['trivial_fit']:.1%}, impossible {top['impossible_fit']:.1%}" in projection
    assert f"audit's {n:,} model" in fig.axes[0].get_title()


def test_count_ticks_are_round_whole_numbers_from_the_first_count_to_the_last():
    from audit.plots import style

    fig, ax = style.new_figure()
    assert style.count_ticks(ax, 3, 4) == [3, 4] and ax.get_xlim() == (3, 4)
    assert style.count_ticks(ax, 3, 15) == [4, 6, 8, 10, 12, 15]
    assert style.count_ticks(ax, 3, 1000) == [3, 150, 300, 450, 600, 750, 1000]
    assert style.count_ticks(ax, 1, 7, axis="y") == [1, 2, 3, 4, 5, 6, 7] and ax.get_ylim() == (1, 7)
    assert style.count_ticks(ax, 2, 2) == [2] and ax.get_xlim() == (1.5, 2.5)


@pytest.mark.parametrize("n", SIZES)
def test_the_training_scores_figure_labels_every_score_without_overlap(n):
    from audit.report.training_scores import SCORE_LABELS, _fig_training_scores

    labels = list(SCORE_LABELS.values())
    rho = _matrix(len(labels)).set_axis(labels, axis=0).set_axis(labels, axis=1)
    rng = np.random.default_rng(n)
    points = pd.DataFrame({"variability": rng.uniform(0, 0.3, 599), "confidence": rng.uniform(0, 1, 599),
                           "category": rng.choice(["trivial", "inconclusive", "impossible"], 599)})
    fig = _fig_training_scores(points, rho, n, 599)
    _no_overlaps(fig)
    cartography, matrix = fig.axes[:2]
    assert f"{n:,} model" in cartography.get_title() and "599 images" in cartography.get_title()
    assert [t.get_text() for t in matrix.get_yticklabels()] == labels  # every score named, in its row
    assert [t.get_text() for t in matrix.get_xticklabels()] == labels
    assert matrix.images[0].get_array().shape == (len(labels), len(labels))
    # the labels fit their rows: each box is no taller than the cell it names
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    cell = matrix.get_window_extent(renderer).height / len(labels)
    assert all(t.get_window_extent(renderer).height <= cell for t in matrix.get_yticklabels())


def test_the_cartography_title_says_when_it_shows_a_sample():
    from audit.report.training_scores import SCORE_LABELS, _fig_training_scores

    labels = list(SCORE_LABELS.values())[:3]
    rho = _matrix(3).set_axis(labels, axis=0).set_axis(labels, axis=1)
    points = pd.DataFrame({"variability": [0.1] * 4, "confidence": [0.5] * 4, "category": ["trivial"] * 4})
    fig = _fig_training_scores(points, rho, 4, 50_000)
    assert fig.axes[0].get_title().endswith("a sample of 4 of 50,000 images")
