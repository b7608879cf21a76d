"""The figures' shared style: fixed colours per condition, journal widths, integer ticks, saving in each format."""

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from audit.models.variants import PAPER_CONDITIONS
from audit.plots import style


def _rgb_distance(a: str, b: str) -> float:
    return float(np.abs(np.subtract(to_rgb(a), to_rgb(b))).sum())


def test_every_paper_condition_has_its_own_colour():
    names = [*PAPER_CONDITIONS, "pretrained", "scored", "imported", "human"]
    colours = style.condition_colours(names)
    assert len(set(colours)) == len(names)  # no two conditions share a colour
    assert style.condition_colour("humans") == style.condition_colour("human")
    # all pairs differ visibly (sum of RGB differences), not only in their hex string
    pairs = [(a, b) for i, a in enumerate(colours) for b in colours[i + 1:]]
    assert min(_rgb_distance(a, b) for a, b in pairs) > 0.15


def test_a_users_condition_keeps_its_colour():
    first = style.condition_colour("my_augmentation")
    assert first == style.condition_colour("my_augmentation")
    assert first in style.EXTRA_COLOURS


def test_widths_are_journal_columns():
    fig, ax = style.new_figure("one")
    assert fig.get_size_inches()[0] == pytest.approx(3.5)
    fig, axes = style.new_figure("two", 3, ncols=2)
    assert tuple(fig.get_size_inches()) == pytest.approx((7.2, 3.0)) and len(axes) == 2
    with pytest.raises(ValueError, match="width must be one of"):
        style.new_figure("three")
    fig, ax = style.new_figure("one", style="slides")  # a slide is 16:9 whatever the column asked for
    assert tuple(fig.get_size_inches()) == pytest.approx((10.0, 5.0))


def test_integer_ticks_on_counts():
    fig, ax = style.new_figure("one")
    ax.plot([0, 1, 2, 3], [0.1, 0.5, 0.2, 0.9])
    ax.set_xlim(-0.5, 3.5)
    style.integer_ticks(ax, "x")
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if -0.5 <= t <= 3.5]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_save_figure_writes_each_format(tmp_path):
    fig, ax = style.new_figure("one")
    ax.plot([0, 1], [0, 1])
    written = style.save_figure(fig, tmp_path / "sub" / "line", "pdf,svg,png")
    assert [p.name for p in written] == ["line.pdf", "line.svg", "line.png"]
    assert written[0].read_bytes().startswith(b"%PDF")
    assert b"<svg" in written[1].read_bytes()[:2000]
    from PIL import Image

    with Image.open(written[2]) as im:
        dpi = im.info.get("dpi")
    assert dpi is not None and round(dpi[0]) == style.PNG_DPI
    assert not list((tmp_path / "sub").glob(".*tmp"))
    with pytest.raises(ValueError, match="formats must be among"):
        style.save_figure(fig, tmp_path / "x", "jpg")


def test_styled_draws_under_the_style():
    @style.styled
    def draw(*, style: str = "paper"):
        import matplotlib

        return matplotlib.rcParams["font.size"]

    assert draw() == style.STYLE_PARAMS["paper"]["font.size"]
    assert draw(style="slides") == style.STYLE_PARAMS["slides"]["font.size"]
    with pytest.raises(ValueError, match="style must be one of"):
        draw(style="poster")
