"""A zoo's prediction files (one file per model: image, predicted, true_prob), and `--split-by all`, where
humans join the models in the split. Numbers are checked against values computed here from the files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import audit
from audit.curation.importers import (
    ImportDataError,
    read_decisions_source,
    read_long_table,
    read_prediction_files,
    write_imported_audit,
)
from audit.metrics.consistency import error_consistency
from tests.test_importers import write_mvh_folder

CLASSES = ["cat", "dog", "fox"]


def write_zoo(folder, *, n_images=30, n_models=4, seed=0, with_label=True, names=False, fmt="parquet",
              drop=None):
    """Per-model prediction files; `drop` = {model index: image indices that model did not predict}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, 3, n_images)
    images = np.array([f"img_{i:03d}.png" for i in range(n_images)], dtype=object)
    for m in range(n_models):
        right = rng.random(n_images) < 0.3 + 0.15 * m
        pred = np.where(right, labels, (labels + 1 + rng.integers(0, 2, n_images)) % 3)
        frame = pd.DataFrame({"image": images, "predicted": pred, "true_prob": rng.random(n_images)})
        if with_label:
            frame["label"] = labels
        if names:
            frame["predicted"] = [CLASSES[i] for i in frame["predicted"]]
            if with_label:
                frame["label"] = [CLASSES[i] for i in frame["label"]]
        if drop and m in drop:
            frame = frame.drop(index=drop[m])
        frame = frame.sample(frac=1.0, random_state=m)  # files need not share an order
        path = folder / f"model-{m}.{fmt}"
        frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    return folder, images, labels


def _correct_by_hand(folder, labels_of):
    out = {}
    for f in sorted(folder.iterdir()):
        frame = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)
        out[f.stem] = dict(zip(frame["image"], frame["predicted"].astype(str) == frame["image"].map(labels_of),
                               strict=True))
    return out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_prediction_files_become_an_audit(tmp_path, fmt):
    folder, images, labels = write_zoo(tmp_path / "zoo", fmt=fmt, drop={2: [3, 7]})
    decisions = read_decisions_source(folder)
    assert decisions.kind_of_source == "predictions"
    result = audit.load(write_imported_audit(decisions, tmp_path / "audit"))
    # the units are the images every model predicted: all but 3 and 7, sorted by name
    kept = [im for i, im in enumerate(images) if i not in (3, 7)]
    assert list(result.images["image_key"]) == sorted(kept)
    assert any("2 of 30 images were not predicted by every model" in n for n in result.manifest["notes"])
    truth = {im: str(lab) for im, lab in zip(images, labels, strict=True)}
    by_hand = _correct_by_hand(folder, truth)
    correct = result.correct()
    for j, name in enumerate(result.model_names):
        assert correct[:, j].tolist() == [by_hand[name][k] for k in result.images["image_key"]]
    # true_prob travels with its image
    tp = result.true_prob()[:, 0]
    frame = pd.read_parquet(folder / "model-0.parquet") if fmt == "parquet" else pd.read_csv(folder / "model-0.csv")
    expected = frame.set_index("image").loc[result.images["image_key"], "true_prob"].to_numpy(np.float32)
    np.testing.assert_allclose(tp, expected, rtol=1e-6)
    # the split by hand: n_correct over the four models, tolerance 1
    from audit.report import build_report

    summary = build_report(result)
    n_correct = correct.sum(axis=1)
    assert summary["split"]["counts"]["trivial"] == int((n_correct >= 3).sum())
    assert summary["split"]["counts"]["impossible"] == int((n_correct <= 1).sum())


def test_labels_file_and_class_names(tmp_path):
    folder, images, labels = write_zoo(tmp_path / "zoo", with_label=False, names=True)
    pd.DataFrame({"image": images, "label": [CLASSES[i] for i in labels]}).to_csv(tmp_path / "labels.csv",
                                                                                   index=False)
    decisions = read_prediction_files(folder, labels=tmp_path / "labels.csv", classes=CLASSES)
    result = audit.load(write_imported_audit(decisions, tmp_path / "audit"))
    assert result.class_names == CLASSES
    assert result.labels.tolist() == [int(labels[i]) for i in np.argsort(images)]
    # names found in the data, without --classes, are sorted: the same list here
    decisions = read_prediction_files(write_zoo(tmp_path / "zoo2", names=True)[0])
    assert decisions.classes == CLASSES


def test_many_models_are_read_file_by_file_with_progress(tmp_path):
    folder, _, _ = write_zoo(tmp_path / "zoo", n_models=12, n_images=50)
    seen = []
    decisions = read_prediction_files(folder, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (12, 12) and len(seen) == 12
    written = []
    write_imported_audit(decisions, tmp_path / "audit", progress=lambda d, t: written.append(d))
    assert written[-1] == 12
    assert len(audit.load(tmp_path / "audit").model_names) == 12


@pytest.mark.parametrize(("case", "needle"), [
    ("missing column", "lacks the column(s) predicted; found: image, true_prob, label; expected"),
    ("label conflict", "whose label differs from an earlier file's (img_000.png: {l2} here, {l0} in model-0.parquet"),
    ("duplicate image", "image 'img_001.png' appears twice"),
    ("outside classes", "outside the 3 classes of --classes"),
    ("probability", "column true_prob holds 1.5 in row 0; probabilities lie between 0 and 1"),
    ("not in labels", "images 'extra.png' are not in the labels file"),
    ("empty folder", "holds no prediction files"),
    ("one model", "the split needs at least two models, found 1"),
    ("csv and parquet", "holds model-0.csv and model-0.parquet; keep one file per model"),
])
def test_bad_prediction_files(tmp_path, case, needle):
    folder, images, labels = write_zoo(tmp_path / "zoo", n_models=2)
    first = pd.read_parquet(folder / "model-0.parquet")
    kwargs = {}
    if case == "missing column":
        first.drop(columns="predicted").to_parquet(folder / "model-1.parquet")
    elif case == "label conflict":
        second = pd.read_parquet(folder / "model-1.parquet")
        second.loc[second["image"] == "img_000.png", "label"] = (labels[0] + 2) % 3
        second.to_parquet(folder / "model-1.parquet")
    elif case == "duplicate image":
        pd.concat([first, first[first["image"] == "img_001.png"]]).to_parquet(folder / "model-1.parquet")
    elif case == "outside classes":
        first.assign(predicted=first["predicted"] + 5).to_parquet(folder / "model-1.parquet")
        kwargs["classes"] = CLASSES
    elif case == "probability":
        first.assign(true_prob=1.5).to_parquet(folder / "model-1.parquet")
    elif case == "not in labels":
        pd.DataFrame({"image": images, "label": labels}).to_csv(tmp_path / "labels.csv", index=False)
        extra = first.drop(columns="label").iloc[:1].assign(image="extra.png")
        pd.concat([first.drop(columns="label"), extra]).to_parquet(folder / "model-1.parquet")
        kwargs["labels"] = tmp_path / "labels.csv"
    elif case == "empty folder":
        for f in folder.iterdir():
            f.unlink()
    elif case == "one model":
        (folder / "model-1.parquet").unlink()
    elif case == "csv and parquet":
        first.to_csv(folder / "model-0.csv", index=False)
    with pytest.raises(ImportDataError, match=None) as err:
        decisions = read_prediction_files(folder, **kwargs)
        write_imported_audit(decisions, tmp_path / "audit")
    needle = needle.format(l0=labels[0], l2=(labels[0] + 2) % 3)
    assert needle in str(err.value), str(err.value)
    assert not (tmp_path / "audit").exists()  # nothing half-written


def test_split_by_all_puts_humans_in_the_split(tmp_path):
    """--split-by all: the split is over models and humans, on the units every one of them decided."""
    root = write_mvh_folder(tmp_path / "raw", seed=3)
    decisions = read_decisions_source(root)
    result = audit.load(write_imported_audit(decisions, tmp_path / "all", split_by="all"))
    assert sorted(result.model_names) == ["alexnet", "resnet50", "subject-01", "subject-02", "vgg16"]
    assert result.human_names == []
    assert result.manifest["config"]["split_by"] == "all"
    # subject-01 saw images 0-7, subject-02 images 4-11: together, images 4-7 under both conditions
    assert len(result.images) == 4 * 2
    assert any("humans and models together make the split" in n for n in result.manifest["notes"])
    # the same units and decisions as the models-only audit restricted to those units
    models_only = audit.load(write_imported_audit(read_decisions_source(root), tmp_path / "models"))
    keys = list(zip(result.images["image_key"], result.images["condition"], strict=True))
    all_keys = list(zip(models_only.images["image_key"], models_only.images["condition"], strict=True))
    rows = [all_keys.index(k) for k in keys]
    for name in ("alexnet", "resnet50", "vgg16"):
        j, k = result.model_names.index(name), models_only.model_names.index(name)
        assert result.correct()[:, j].tolist() == models_only.correct()[rows, k].tolist()
    # κ between the two humans on their shared units equals the κ of the decisions read back
    h = result.correct()
    i1, i2 = result.model_names.index("subject-01"), result.model_names.index("subject-02")
    humans = models_only.human_decisions()["correct"][rows]
    j1, j2 = models_only.human_names.index("subject-01"), models_only.human_names.index("subject-02")
    assert error_consistency(h[:, i1], h[:, i2]) == pytest.approx(
        error_consistency(humans[:, j1], humans[:, j2]), nan_ok=True)


def test_split_by_all_without_shared_units_is_refused(tmp_path):
    table = pd.DataFrame({"maker": ["a", "a", "b", "b", "h", "h"], "kind": ["model"] * 4 + ["human"] * 2,
                          "image": ["x", "y", "x", "y", "z", "w"], "label": [0, 1, 0, 1, 0, 1],
                          "predicted": [0, 1, 1, 1, 0, 0]})
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ImportDataError, match="no image .* was decided by every maker in the split"):
        write_imported_audit(read_long_table(tmp_path / "t.csv"), tmp_path / "audit", split_by="all")
    with pytest.raises(ImportDataError, match="--split-by must be one of models, all"):
        write_imported_audit(read_long_table(tmp_path / "t.csv"), tmp_path / "audit", split_by="humans")


def test_import_command_reads_prediction_files_with_split_by(tmp_path):
    from tests.conftest import run_cli

    folder, _, _ = write_zoo(tmp_path / "zoo")
    out = run_cli("import", str(folder), "--out", str(tmp_path / "audit"))
    assert out.returncode == 0, out.stderr
    assert "trivial" in out.stdout and "4 models" in out.stdout
    root = write_mvh_folder(tmp_path / "raw", seed=1)
    out = run_cli("import", str(root), "--out", str(tmp_path / "all"), "--split-by", "all")
    assert out.returncode == 0, out.stderr
    assert audit.load(tmp_path / "all").manifest["config"]["split_by"] == "all"
    bad = run_cli("import", str(root), "--out", str(tmp_path / "x"), "--split-by", "everyone")
    assert bad.returncode == 2 and "--split-by must be one of models, all" in bad.stderr
