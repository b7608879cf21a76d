"""The Images page's curation parts (AppTest): "Export this selection", the majority prediction under
each image, and the image dialog's label issue, suggested label and cause of impossibility.

On the session's digits audit; the numbers are checked against the store and hand counts, and the
command the page shows is run to check that it writes the images the page selects.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from audit.store import load
from audit_app import _image_frames
from tests.conftest import cli_exit_code
from tests.test_app_pages import open_page, tables, texts


@pytest.fixture(autouse=True)
def _no_runs_folder(monkeypatch, tmp_path):
    """The app reads `--runs` from sys.argv: point it at an empty folder, not this checkout's runs/."""
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(tmp_path / "no-runs")])


def majority(result, i: int) -> str:
    votes = np.bincount(result.predicted()[i], minlength=result.n_classes)
    return result.class_names[int(votes.argmax())]


def run_command(command: str, out: Path) -> None:
    """Run the page's `ddd-audit export ...` line in this process, writing to `out`."""
    args = shlex.split(command)
    assert args[:2] == ["ddd-audit", "export"]
    args[args.index("--out") + 1] = str(out)
    assert cli_exit_code(args[1:]) == 0


def test_export_this_selection_gives_the_csv_and_the_imagefolder_command(digits_audit, tmp_path):
    import pandas as pd

    result = load(digits_audit)
    at = open_page(digits_audit, "images")
    at.multiselect(key="images_category").set_value(["impossible", "inconclusive"]).run()
    classes = result.class_names[:3]
    at.multiselect(key="images_class").set_value(classes).run()
    assert not at.exception
    assert at.get_by_key("images_download") is not None
    command = at.code[0].value
    assert "--format imagefolder" in command and "--tolerance 1" in command
    assert "category in" in command and "class_name in" in command
    shown = tables(at, "tp_agreement")[0]
    out = tmp_path / "selection"
    run_command(command, out)
    written = pd.read_csv(out / "index.csv")
    assert sorted(written["image_id"]) == sorted(shown["image_id"])  # the command writes what the page shows
    m = result.n_models
    n_right = result.correct().sum(axis=1)
    hand = np.flatnonzero((n_right < m - 1) & np.isin(result.labels, [0, 1, 2]))
    assert sorted(written["image_id"]) == list(hand)


def test_one_category_stays_a_subset_name_and_label_issues_a_query(digits_audit):
    at = open_page(digits_audit, "images")
    at.multiselect(key="images_category").set_value(["inconclusive"]).run()
    assert "--subset inconclusive " in at.code[0].value
    at.checkbox(key="images_label_issues").check().run()
    assert "is_label_issue == True" in at.code[0].value
    command = _image_frames.export_command("runs/x", 0, categories=["trivial", "inconclusive", "impossible"])
    assert "--subset 'n_correct >= 0'" in command and "--tolerance 0" in command


def test_gallery_captions_show_the_majority_prediction(digits_audit):
    result = load(digits_audit)
    at = open_page(digits_audit, "images")
    first = int(tables(at, "tp_agreement")[0]["image_id"].iloc[0])
    caption = f"#{first} · {result.class_names[result.labels[first]]} → {majority(result, first)}"
    assert caption in texts(at)


def test_dialog_shows_predictions_label_issue_and_cause(digits_audit):
    result = load(digits_audit)
    images = result.images
    flagged = images[images["is_label_issue"].astype(bool) & (images["impossible_cause"].fillna("") != "")]
    assert len(flagged), "the digits audit has no flagged impossible image with a cause"
    i = int(flagged["image_id"].iloc[0])
    at = open_page(digits_audit, "images")
    at.number_input(key="images_lookup").set_value(i).run()
    assert not at.exception
    text = texts(at) + "\n" + "\n".join(w.value for w in at.warning) + "\n".join(x.value for x in at.info)
    suggested = majority(result, i)
    label = result.class_names[result.labels[i]]
    votes = int((result.predicted()[i] == result.class_names.index(suggested)).sum())
    assert f"Label **{label}** · majority prediction **{suggested}** ({votes} of {result.n_models} models)" in text
    assert f"Suggested label: **{suggested}**" in text
    assert f"label quality {images.loc[i, 'label_quality']:.3f}" in text
    cause = images.loc[i, "impossible_cause"]
    assert f"Why impossible: {cause}" in text and _image_frames.CAUSE_TEXT[cause] in text
    decisions = tables(at, "confidence")[0]  # every model's prediction
    assert list(decisions["predicted"]) == [result.class_names[p] for p in result.predicted()[i]]
    # an image without a label issue says so
    clean = int(images.loc[~images["is_label_issue"].astype(bool), "image_id"].iloc[0])
    at.number_input(key="images_lookup").set_value(clean).run()
    assert "No label issue" in "\n".join(c.value for c in at.caption)
