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
            "heavy = ('torch', 'streamlit', 'matplotlib', 'ray', 'audit.engine', 'audit.api')\n"
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
SMALL = {"dataset": "digits", "variants": "minimal", "epochs": 1, "depth": "none", "learnability": False,
         "rsa_images": 0, "device": "cpu"}


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
def test_draw_figure_into_an_axes_and_on_its_own(digits_audit):
    from matplotlib.figure import Figure

    names = audit.figure_names(digits_audit)
    assert names[0] == "histogram" and "error_consistency" in names
    standalone = audit.draw_figure("error_consistency", digits_audit)
    assert isinstance(standalone, Figure) and len(standalone.axes) >= 2  # two κ matrices and a colour bar
    width, height = standalone.get_size_inches()

    target = Figure(figsize=(6, 4), dpi=100)
    ax = target.add_subplot()
    assert audit.draw_figure("error_consistency", digits_audit, ax=ax) is target
    (image,) = ax.images
    pixels = np.asarray(image.get_array())
    assert pixels.shape[2] == 4 and not ax.axison
    assert abs(pixels.shape[1] / pixels.shape[0] - width / height) < 0.01  # drawn at its own proportions
    assert pixels.shape[1] >= 2 * ax.get_position().width * 6 * 100 - 1  # at twice the axes' resolution
    assert pixels[..., :3].std() > 10  # not a blank image


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
