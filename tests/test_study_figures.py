"""Results in meding2022 §3.4's form and as figures: nine simulated observers with the paper's
accuracies (81.36% mean, 71.81-88.59%, SD 6.29% over 149 trials) through `study analyze`."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from human_study.analysis import analyze, clopper_pearson_interval
from human_study.design import DesignConfig
from human_study.figures import FIGURES, consistency_matrix, study_figures
from human_study.folder import create_study, open_study_dir
from tests.study_fixtures import PAPER_N_CORRECT, answer_like_the_paper, make_study_audit

pytestmark = pytest.mark.slow

N_TRIALS = 149
N_CORRECT = PAPER_N_CORRECT  # 81.36% mean, 71.81-88.59%, SD 6.29% of 149 trials


def kappa_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """Geirhos et al. 2020 (meding2022 §2): (c_obs - c_exp) / (1 - c_exp)."""
    c_obs = np.mean(a == b)
    p1, p2 = a.mean(), b.mean()
    c_exp = p1 * p2 + (1 - p1) * (1 - p2)
    return (c_obs - c_exp) / (1 - c_exp)


@pytest.fixture(scope="module")
def nine(tmp_path_factory):
    audit = make_study_audit(tmp_path_factory.mktemp("nine") / "audit")
    made = create_study(
        audit, "nine", config=DesignConfig(n_trials=N_TRIALS, n_practice=0, size=16, seed=3), n_observers=9
    )
    store, study = open_study_dir(made.folder)
    with store:
        correct_by_trial = answer_like_the_paper(store, study, made.observer_codes)
        frame = store.admin(study.id, made.admin_token).responses_frame()
    return made, frame, correct_by_trial


def test_analyze_prints_the_paper_summary_and_writes_figures(nine, tmp_path):
    from human_study.cli import study_app

    made, _, correct = nine
    out = tmp_path / "figures"
    result = CliRunner().invoke(
        study_app,
        ["analyze", "--study-dir", str(made.folder), "--token", made.admin_token, "--figures", str(out)],
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert "9 observers: mean accuracy 81.36% (range 71.81\u201388.59%, SD 6.29%)" in text
    kappas = np.array([kappa_by_hand(correct[a], correct[b]) for a, b in itertools.combinations(sorted(correct), 2)])
    expected = (
        f"36 pairs of observers: mean error consistency {kappas.mean():.4f} "
        f"(range {kappas.min():.4f}\u2013{kappas.max():.4f}, SD {kappas.std(ddof=1):.4f})"
    )
    assert expected in text, text
    assert "odds ratio from trial 1 to trial 149" in text
    for name in FIGURES:
        png = out / f"nine_{name}.png"
        assert (out / f"nine_{name}.pdf").stat().st_size > 1000
        with Image.open(png) as image:
            assert image.width > 500 and image.height > 300
    assert re.search(r"Wrote 8 figure files", text)


def test_figures_show_the_intervals_the_chance_line_and_the_kappa_matrix(nine):
    _, frame, correct = nine
    result = analyze(frame, n_numbers=N_TRIALS, block=20)
    figures = study_figures(result, frame)
    ax = figures["accuracy"].axes[0]
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in ax.get_lines())  # the 50% line
    bars = ax.collections[0].get_segments()  # one vertical segment per observer: its CP interval
    for segment, k in zip(bars, N_CORRECT, strict=True):
        assert (segment[0][1], segment[1][1]) == pytest.approx(clopper_pearson_interval(k, N_TRIALS))
    matrix = consistency_matrix(result)
    assert matrix.shape == (9, 9) and np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T)
    assert matrix.loc["subject-01", "subject-09"] == pytest.approx(
        kappa_by_hand(correct["subject-01"], correct["subject-09"])
    )
    learning = figures["learning"].axes[0]
    assert learning.get_xlim()[1] == pytest.approx(N_TRIALS + 0.5)  # blocks end at trial 149
    assert len(figures["response_times"].axes[0].patches) > 0


def test_legends_sit_outside_the_data_and_counts_are_whole_numbers(nine):
    _, frame, _ = nine
    figures = study_figures(analyze(frame), frame)
    for name, fig in figures.items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:  # above the axes: nothing of it over the data
                assert legend.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1 - 1, name
    rt_axis = figures["response_times"].axes[0]
    ticks = [t for t in rt_axis.get_yticks() if rt_axis.get_ylim()[0] <= t <= rt_axis.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
