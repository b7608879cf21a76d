"""model-vs-human's own raw data (tests/data/model-vs-human: two of its 17 datasets, untouched) read by
`ddd-audit import`, checked against values computed here by model-vs-human's documented rule: the image key
of `get_short_imagename`, correct = `object_response == category`, and error consistency per condition on
the trials both makers answered (`ErrorConsistency` in modelvshuman/plotting/analyses.py)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import audit
import audit.report
from audit.curation.importers import ImportDataError, read_model_vs_human, write_imported_audit
from audit.curation.importers.readers import short_imagename
from audit.metrics.makers import masked_error_consistency
from tests.conftest import ROOT

RAW = ROOT / "tests" / "data" / "model-vs-human" / "raw-data"
DATASETS = ("colour", "cue-conflict")


def mvh_trials(folder: Path) -> pd.DataFrame:
    """Every trial as model-vs-human reads it: lower-cased headers, the short image name, conditions as text;
    a dataset whose conditions are only empty or 0 is one condition."""
    frames = []
    for f in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(f)
        frame.columns = [c.lower() for c in frame.columns]
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    df["condition"] = df["condition"].map(str)  # as the pandas of model-vs-human did: NaN -> "nan"
    if set(df["condition"]) <= {"nan", "0", "0.0"}:  # pandas reads 0 beside empty cells as 0.0
        df["condition"] = "one"
    df["image_id"] = df["imagename"].map(_get_short_imagename)
    df["is_correct"] = df["object_response"] == df["category"]
    return df


def _get_short_imagename(imagename: str) -> str:
    """model-vs-human's rule, written out here from its docstring and quick tests."""
    splits = imagename.split("_")
    name = splits[-2:]
    return name[0] + "_" + name[1] if len(splits) > 1 and name[0].startswith("n0") else splits[-1]


def mvh_kappa(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """`ErrorConsistency.analysis` on the trials both makers answered."""
    both = a.merge(b, on="image_id", suffixes=("_1", "_2"))
    p1, p2 = both["is_correct_1"].mean(), both["is_correct_2"].mean()
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    observed = (both["is_correct_1"] == both["is_correct_2"]).mean()
    return 1.0 if observed == 1.0 else (observed - expected) / (1 - expected)


@pytest.fixture(scope="module", params=DATASETS)
def imported(request, tmp_path_factory):
    folder = RAW / request.param
    out = write_imported_audit(read_model_vs_human(folder), tmp_path_factory.mktemp(request.param) / "audit")
    return request.param, mvh_trials(folder), audit.load(out)


def test_short_imagename_follows_model_vs_human():
    assert short_imagename("0000_cl_s01_bw_boat_40_n02951358_5952.JPEG") == "n02951358_5952.JPEG"
    assert short_imagename("airplane1-bicycle2.png") == "airplane1-bicycle2.png"
    assert short_imagename("0001_s5n_s01_0_bird_00_bird3-bird2.png") == "bird3-bird2.png"


def test_every_maker_and_trial_is_read(imported):
    name, trials, result = imported
    makers = sorted(trials["subj"].unique())
    assert sorted(result.model_names + result.human_names) == makers
    humans = sorted(m for m in makers if m.startswith("subject-"))
    assert result.human_names == humans
    assert len(humans) == (10 if name == "cue-conflict" else 4)  # cue-conflict keeps its 10 humans
    decided = result.human_decisions()["decided"]
    per_human = trials[trials["subj"].str.startswith("subject-")].groupby("subj").size()
    np.testing.assert_array_equal(decided.sum(axis=0), per_human.loc[result.human_names].to_numpy())
    assert "na" not in result.class_names and len(result.class_names) == 16


def test_split_per_condition_matches_the_rule(imported):
    _, trials, result = imported
    models = trials[~trials["subj"].str.startswith("subject-")]
    n_right = models.groupby(["condition", "image_id"])["is_correct"].sum()
    n_models = models["subj"].nunique()
    conditions = result.images["condition"].replace("", "one")
    ours = pd.Series(result.correct().sum(axis=1), index=pd.MultiIndex.from_arrays(
        [conditions, result.images["image_key"]], names=["condition", "image_id"]))
    n_right = n_right.loc[ours.index]
    np.testing.assert_array_equal(ours.to_numpy(), n_right.to_numpy())
    for tolerance in (0, 1):  # the split of meding2022 §3.1-3.2: trivial n >= M - t, impossible n <= t
        audit.report.build_report(result, tolerance=tolerance, n_bootstrap=2)
        images = pd.read_parquet(result.path / "images.parquet")
        expected = np.where(n_right.to_numpy() >= n_models - tolerance, "trivial",
                            np.where(n_right.to_numpy() <= tolerance, "impossible", "inconclusive"))
        np.testing.assert_array_equal(images["category"].to_numpy(), expected)


def test_kappa_of_every_pair_per_condition_matches_error_consistency(imported):
    _, trials, result = imported
    names = result.model_names + result.human_names
    humans = result.human_decisions()
    correct = np.concatenate([result.correct(), humans["correct"]], axis=1)
    decided = np.concatenate([np.ones((result.n_images, result.n_models), bool), humans["decided"]], axis=1)
    conditions = result.images["condition"].replace("", "one").to_numpy()
    checked = 0
    for cond in np.unique(conditions):
        rows = conditions == cond
        kappa, n_shared = masked_error_consistency(correct[rows], decided[rows])
        per_maker = {m: g for m, g in trials[trials["condition"] == cond].groupby("subj")}
        for i, j in itertools.combinations(range(len(names)), 2):
            want = mvh_kappa(per_maker[names[i]], per_maker[names[j]])
            assert kappa[i, j] == pytest.approx(want, abs=1e-12), (cond, names[i], names[j])
            checked += 1
    assert checked == len(np.unique(conditions)) * len(names) * (len(names) - 1) // 2


def test_human_response_times_are_seconds(imported):
    _, _, result = imported
    rt = result.human_decisions()["rt"]
    medians = np.nanmedian(rt, axis=0)
    assert ((medians > 0.5) & (medians < 1.5)).all(), medians


def test_no_answer_is_a_wrong_decision_counted_per_maker(imported):
    _, trials, result = imported
    humans = result.human_decisions()
    for j, name in enumerate(result.human_names):
        mine = trials[trials["subj"] == name]
        n_na = int((mine["object_response"] == "na").sum())
        record = json.loads((result.path / "humans" / f"{name}.json").read_text())
        assert record["n_no_answer"] == n_na
        assert humans["correct"][:, j].sum() == int(mine["is_correct"].sum())
    notes = " ".join(result.manifest["notes"])
    assert "outside the 16 classes (na x" in notes


def test_makers_with_no_shared_unit_stop_the_import_and_are_named(tmp_path):
    folder = tmp_path / "cue-conflict"
    shutil.copytree(RAW / "cue-conflict", folder)
    f = folder / "cue-conflict_subject-03_session_1.csv"
    frame = pd.read_csv(f)
    frame["condition"] = 5  # now a condition no model has
    frame.to_csv(f, index=False)
    with pytest.raises(ImportDataError, match=r"subject-03.*decided none.*conditions differ"):
        write_imported_audit(read_model_vs_human(folder), tmp_path / "audit")
    assert not (tmp_path / "audit").exists()


def test_cli_imports_the_real_folder(tmp_path):
    out = tmp_path / "audit"
    run = subprocess.run([sys.executable, "-m", "audit", "import", str(RAW / "cue-conflict"), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "subject-04: 37 answers outside the 16 classes (na x37) counted as wrong" in run.stdout + run.stderr
    assert "Humans (10;" in run.stdout
