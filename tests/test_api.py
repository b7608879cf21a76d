"""The notebook API (`audit.api`, from `import audit`): each function against the rule it applies, counted by
hand, or against the `ddd-audit` command it stands beside."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import audit
from tests.conftest import ROOT, invoke_cli


def _split_by_hand(correct: np.ndarray, t: int) -> dict[str, int]:
    """trivial: n_correct >= M - t, impossible: n_correct <= t, inconclusive: the rest (meding2022 §3.1)."""
    n, m = correct.sum(axis=1), correct.shape[1]
    trivial, impossible = n >= m - t, n <= t
    return {"trivial": int(trivial.sum()), "inconclusive": int((~trivial & ~impossible).sum()),
            "impossible": int(impossible.sum())}


@pytest.fixture
def digits_copy(digits_audit, tmp_path):
    """A copy of the shared digits audit, for the tests that write into it."""
    return shutil.copytree(digits_audit, tmp_path / "digits")


# --------------------------------------------------------------------------- import audit stays light
def test_import_audit_is_light_and_the_api_loads_on_first_use():
    code = ("import sys, audit\n"
            "heavy = ('torch', 'streamlit', 'matplotlib', 'ray', 'audit.running.engine', 'audit.api')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "f = audit.run, audit.import_decisions, audit.load_report, audit.draw_figure, audit.export_subset\n"
            "print(sorted(m for m in heavy if m in sys.modules), all(map(callable, f)))\n"
            "print(audit.AuditConfig().dataset)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after, config = out.stdout.strip().splitlines()
    assert before == "[]"
    assert after == "['audit.api'] True"  # the API itself imports nothing heavy
    assert config == "fashion-mnist"
    with pytest.raises(AttributeError, match="no attribute 'runn'"):
        audit.runn  # noqa: B018


# --------------------------------------------------------------------------- run
SMALL = {"dataset": "digits", "variants": "minimal", "epochs": 1, "val_size": 150, "train_size": 300, "depth": "none",
         "learnability": False, "rsa_images": 0, "device": "cpu"}


@pytest.mark.slow
def test_run_audits_reports_and_resumes(tmp_path):
    out = tmp_path / "digits"
    result = audit.run(SMALL, out)
    planned = audit.plan(SMALL)
    assert result.n_images == len(planned.dataset.val)
    assert sorted(result.model_names) == sorted(j.name for j in planned.jobs)
    report = audit.load_report(result)
    assert report.split_counts == _split_by_hand(result.correct(), t=1)
    assert sum(report.split_counts.values()) == result.n_images
    assert json.loads((out / "report" / "summary.json").read_text())["split"]["counts"] == report.split_counts
    # the same call again resumes: every job is finished, so no decision file is written again
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "decisions").iterdir()}
    again = audit.run(audit.AuditConfig(**SMALL), out)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "decisions").iterdir()} == stamps
    assert audit.load_report(again).split_counts == report.split_counts


def test_run_names_the_fields_it_knows(tmp_path):
    with pytest.raises(TypeError, match=r"no field 'epoch'.*epochs"):
        audit.run({"dataset": "digits", "epoch": 1}, tmp_path / "x")
    with pytest.raises(TypeError, match="AuditConfig, a mapping"):
        audit.plan("digits")
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- import_decisions
def _decision_table(path):
    """Four models on six images of two classes; n_correct per image 4, 3, 2, 2, 1, 0."""
    n_correct = [4, 3, 2, 2, 1, 0]
    rows = []
    for i, k in enumerate(n_correct):
        label = ["cat", "dog"][i % 2]
        wrong = ["dog", "cat"][i % 2]
        for j, maker in enumerate(["m1", "m2", "m3", "m4"]):
            rows.append({"maker": maker, "image": f"img{i}", "label": label, "predicted": label if j < k else wrong})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_import_decisions_gives_the_split_counted_by_hand_and_the_cli_s(tmp_path, capsys):
    table = _decision_table(tmp_path / "decisions.csv")
    result = audit.import_decisions(table, tmp_path / "api")
    report = audit.load_report(result)
    # M = 4, t = 1: trivial n >= 3 (images 0, 1), impossible n <= 1 (4, 5), inconclusive n = 2 (2, 3)
    assert report.split_counts == {"trivial": 2, "inconclusive": 2, "impossible": 2}
    assert result.n_models == 4
    code, _ = invoke_cli(["import", table, "--out", tmp_path / "cli"], capsys)
    assert code == 0
    cli = json.loads((tmp_path / "cli" / "report" / "summary.json").read_text())
    assert cli["split"] == report.summary["split"]
    assert cli["error_consistency"] == report.summary["error_consistency"]


def test_import_decisions_refuses_a_split_without_a_table_source(tmp_path):
    table = _decision_table(tmp_path / "decisions.csv")
    with pytest.raises(ValueError, match="split and image_column are for images="):
        audit.import_decisions(table, tmp_path / "out", split="validation")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- load_report
def test_load_report_reads_the_written_report(digits_audit):
    result = audit.load(digits_audit)
    report = audit.load_report(digits_audit)
    assert report.summary == json.loads((digits_audit / "report" / "summary.json").read_text())
    assert report.split_counts == _split_by_hand(result.correct(), t=1)
    assert report.tables["histogram"]["observed"].sum() == result.n_images
    assert report.maps["all"].shape[1] == len(report.summary["dynamics"]["epochs"])
    assert str(report).startswith(f"Audit: {result.n_images} images, 10 classes, {result.n_models} models")


def test_load_report_builds_it_at_another_tolerance_and_when_missing(digits_copy):
    result = audit.load(digits_copy)
    strict = audit.load_report(digits_copy, tolerance=0)
    assert strict.split_counts == _split_by_hand(result.correct(), t=0)
    assert json.loads((digits_copy / "report" / "summary.json").read_text())["tolerance"] == 0
    (digits_copy / "report" / "summary.json").unlink()
    rebuilt = audit.load_report(digits_copy)  # missing: built at the default tolerance
    assert rebuilt.split_counts == _split_by_hand(result.correct(), t=1)


# --------------------------------------------------------------------------- figures
def _data_artists(axes) -> list[tuple[int, int, int, int]]:
    """Per Axes: how many lines, patches (bars), collections (meshes, dots, bands) and images it holds."""
    return [(len(a.lines), len(a.patches), len(a.collections), len(a.images)) for a in axes]


def _saved(fig, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "pdf" else None)
    return buffer.getvalue()


def test_the_digits_audit_draws_every_paper_figure(digits_audit):
    from audit.plots.paper import FIGURES

    assert audit.figure_names(digits_audit) == list(FIGURES)


@pytest.mark.parametrize("name", [
    "histogram", "kappa_by_condition", "error_consistency", "decision_maps", "swaps_per_epoch", "tp_agreement",
    "learning_order", "per_class_accuracy", "example_pairs"])
def test_draw_figure_into_an_axes_draws_the_whole_figure_as_vector_artists(digits_audit, name):
    from matplotlib.figure import Figure, SubFigure

    standalone = audit.draw_figure(name, digits_audit, width="two")
    assert isinstance(standalone, Figure)
    expected = _data_artists(standalone.axes)
    assert sum(map(sum, expected)) > 0

    target = Figure(figsize=(8, 7), dpi=100)  # no layout engine, as plt.figure() gives
    mine, ax = target.subplots(2, 1)
    mine.plot([0, 1], [0, 1])
    assert audit.draw_figure(name, digits_audit, ax=ax, width="two") is target
    assert ax not in target.axes and mine in target.axes  # ax gave its place up; the user's own axes stay
    sub = target.subfigs[-1]
    assert isinstance(sub, SubFigure)
    assert sub.bbox_relative.bounds == pytest.approx((0, 0, 1, 0.5), abs=0.05)  # in ax's place, the lower half
    assert target.get_layout_engine() is not None
    # every panel, colour bar and legend, with the same lines, bars, meshes and images as the figure alone
    assert len(sub.axes) == len(standalone.axes)
    assert _data_artists(sub.axes) == expected
    assert len(sub.legends) == len(standalone.legends)
    assert [a.get_title() for a in sub.axes] == [a.get_title() for a in standalone.axes]
    # saved, it is vector: its only raster images are those the figure alone has (a matrix, a photo), not a paste
    svg, alone_svg = _saved(target, "svg").decode(), _saved(standalone, "svg").decode()
    assert svg.count("<image") == alone_svg.count("<image")
    assert svg.count("<path") > alone_svg.count("<path") // 2 > 0
    pdf, alone_pdf = _saved(target, "pdf"), _saved(standalone, "pdf")
    assert pdf.count(b"/Subtype /Image") == alone_pdf.count(b"/Subtype /Image")
    if not any(images for *_, images in expected):
        assert "<image" not in svg and b"/Subtype /Image" not in pdf  # lines and bars only: nothing raster


def test_drawing_into_gives_its_parent_to_the_next_new_figure_only():
    from matplotlib.figure import Figure

    from audit.plots import style

    parent = Figure(figsize=(4, 3))
    with style.drawing_into(parent) as into:
        fig, (a, b) = style.new_figure("two", ncols=2)
        other, _ = style.new_figure()
    assert into is fig is parent and parent.axes == [a, b]
    assert other is not parent and tuple(other.get_size_inches()) == (style.COLUMN_WIDTHS["one"], style.panel_height())
    assert style.new_figure()[0] is not parent  # outside the block, figures are their own again
    assert parent.get_layout_engine() is not None


def test_draw_figure_takes_the_width_of_its_place_and_refuses_a_loose_axes(digits_audit):
    from matplotlib.figure import Figure

    target = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    left, right = target.subplots(1, 2)
    audit.draw_figure("histogram", digits_audit, ax=right)
    sub = target.subfigs[-1]
    assert sub.bbox.width / target.dpi == pytest.approx(3.0, rel=0.1)  # half of 6 inches
    assert target.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"  # the user's engine kept
    assert [a for a in target.axes if a is not left and a.figure is not sub] == []
    loose = target.add_axes((0.1, 0.1, 0.2, 0.2))
    with pytest.raises(ValueError, match="ax must be an Axes of a grid"):
        audit.draw_figure("histogram", digits_audit, ax=loose)
    assert loose in target.axes and len(target.subfigs) == 1  # nothing changed


def test_draw_figure_names_what_exists(digits_audit, tmp_path):
    with pytest.raises(ValueError, match="unknown figure 'histogramm'; the paper figures are histogram, "):
        audit.draw_figure("histogramm", digits_audit)
    imported = audit.import_decisions(_decision_table(tmp_path / "decisions.csv"), tmp_path / "zoo")
    with pytest.raises(ValueError, match="no 'decision_maps' figure .* it has histogram"):
        audit.draw_figure("decision_maps", imported)  # imported decisions have one epoch: no dynamics


def test_save_figures_writes_what_the_cli_writes(digits_audit, tmp_path, capsys):
    files = audit.save_figures(digits_audit, tmp_path / "api", formats="png,svg", only=["histogram", "swaps_per_epoch"])
    assert sorted(p.name for p in files) == ["histogram.png", "histogram.svg", "swaps_per_epoch.png",
                                             "swaps_per_epoch.svg"]
    code, _ = invoke_cli(["figures", digits_audit, "--out", tmp_path / "cli", "--format", "png,svg", "--only",
                          "histogram,swaps_per_epoch"], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == sorted(p.name for p in files)


# --------------------------------------------------------------------------- export_subset
def test_export_subset_writes_the_category_and_its_card(digits_audit, tmp_path, capsys):
    images = audit.load(digits_audit).images
    card = audit.export_subset(digits_audit, "inconclusive", tmp_path / "api", format="csv")
    expected = int((images["category"] == "inconclusive").sum())
    assert card["n_images"] == expected > 0
    assert card["counts"]["by_category"] == {"trivial": 0, "inconclusive": expected, "impossible": 0}
    assert json.loads((tmp_path / "api" / "card.json").read_text())["n_images"] == expected
    assert card["command"].startswith("audit.export_subset(")
    code, _ = invoke_cli(["export", digits_audit, "--subset", "inconclusive", "--format", "csv", "--out",
                          tmp_path / "cli"], capsys)
    assert code == 0
    cli = json.loads((tmp_path / "cli" / "card.json").read_text())
    assert cli["counts"] == card["counts"] and cli["rule"] == card["rule"]


def test_export_subset_as_png_files_and_its_refusals(digits_audit, tmp_path):
    card = audit.export_subset(digits_audit, "n_correct == 0", tmp_path / "folder", format="imagefolder")
    assert len(list((tmp_path / "folder").rglob("*.png"))) == card["n_images"] > 0
    with pytest.raises(ValueError, match="format must be one of csv, parquet, imagefolder, list, got 'xlsx'"):
        audit.export_subset(digits_audit, "trivial", tmp_path / "x", format="xlsx")
    with pytest.raises(ValueError, match="copy needs format='imagefolder'"):
        audit.export_subset(digits_audit, "trivial", tmp_path / "y", copy=True)
