"""The label review loop: export the label issues, fill in relabel.csv, and audit again with the corrected
labels (`run --relabel`, `import --relabel`); the manifest records the file, its hash and the counts.

The run is a real (one-epoch) digits audit; the labels, the decisions' correctness and the manifest
are checked against the relabel file by hand.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from audit.curation.relabel import read_relabel, relabel_dataset, relabel_imported
from audit.store import AuditError, load
from tests.conftest import cli_exit_code
from tests.conftest import invoke_cli as invoke


def _hard_images(result, *, exclude, n: int) -> pd.DataFrame:
    """Further review rows, as label_issues.csv has them: the images fewest models get right, with the
    models' majority prediction as the suggested label (well-trained models flag few label issues)."""
    final = result.predicted()
    votes = np.array([np.bincount(row, minlength=result.n_classes).argmax() for row in final])
    images = result.images.assign(vote=votes)
    images = images[~images["image_id"].astype(str).isin(set(exclude)) & (images["vote"] != images["label"])]
    images = images.sort_values(["n_correct", "image_id"]).head(n)
    names = result.class_names
    return pd.DataFrame({"image_id": images["image_id"].astype(str), "image": [f"#{i}" for i in images["image_id"]],
                         "given_label": [names[c] for c in images["label"]],
                         "suggested_label": [names[c] for c in images["vote"]]})


@pytest.fixture(scope="module")
def reviewed(digits_audit, tmp_path_factory) -> dict:
    """The digits audit's label review list, exported, and a relabel.csv filled in for its first 6 rows:
    4 by class name (the suggested label), 1 by class index, 1 that keeps the given label."""
    root = tmp_path_factory.mktemp("review")
    assert cli_exit_code(["export", digits_audit, "--subset", "label-issues", "--out", root / "review"]) == 0
    review = pd.read_csv(root / "review" / "label_issues.csv", dtype=str, keep_default_na=False)
    template = pd.read_csv(root / "review" / "relabel.csv", dtype=str, keep_default_na=False)
    assert len(review) >= 1 and list(template["image"]) == list(review["image"])
    review = pd.concat([review, _hard_images(load(digits_audit), exclude=review["image_id"], n=6)], ignore_index=True)
    template = pd.DataFrame({"image": review["image"], "new_label": ""})  # a reviewer may name any image
    changed = review[review["suggested_label"] != review["given_label"]].head(5)
    kept = review[~review["image_id"].isin(changed["image_id"])].head(1)
    fill = dict(zip(changed["image"], changed["suggested_label"], strict=True))
    last = changed["image"].iloc[-1]
    fill[last] = str(load(digits_audit).class_names.index(fill[last]))  # a class index works too
    fill[kept["image"].iloc[0]] = kept["given_label"].iloc[0]
    template["new_label"] = template["image"].map(fill).fillna("")
    path = root / "relabel.csv"
    template.to_csv(path, index=False)
    new_labels = {int(i): int(load(digits_audit).class_names.index(lab))
                  for i, lab in zip(changed["image_id"], changed["suggested_label"], strict=True)}
    return {"path": path, "new": new_labels, "kept": int(kept["image_id"].iloc[0]), "n_rows": len(fill)}


def test_run_relabel_audits_with_the_corrected_labels(digits_audit, reviewed, tmp_path, capsys):
    out = tmp_path / "relabelled"
    code, text = invoke(["run", "--dataset", "digits", "--variants", "minimal", "--epochs", "1", "--device", "cpu",
                         "--depth", "none", "--no-learnability", "--relabel", reviewed["path"], "--out", out], capsys)
    assert code == 0, text
    assert "relabelled 5 of the 6 validation images named in relabel.csv" in text
    before, after = load(digits_audit), load(out)
    expected = before.labels.copy()
    for i, label in reviewed["new"].items():
        expected[i] = label
    np.testing.assert_array_equal(after.labels, expected)  # these and no other labels changed
    assert after.labels[reviewed["kept"]] == before.labels[reviewed["kept"]]
    names = after.class_names
    assert list(after.images["class_name"]) == [names[c] for c in expected]
    # correctness is judged against the new labels
    np.testing.assert_array_equal(after.correct(), after.predicted() == expected[:, None])
    record = after.manifest["relabel"]
    assert record == {"file": "relabel.csv", "sha256": hashlib.sha256(reviewed["path"].read_bytes()).hexdigest(),
                      "n_images": 6, "n_changed": 5}
    assert after.manifest["config"]["relabel"] == str(reviewed["path"])
    assert after.manifest["dataset"]["fingerprint"] != before.manifest["dataset"]["fingerprint"]
    # the dataset of the audit's config is the relabelled one (as `ddd-audit score` checks it)
    from audit.running.engine import AuditConfig, audited_dataset

    again = audited_dataset(AuditConfig(**after.manifest["config"]))
    assert again.fingerprint() == after.manifest["dataset"]["fingerprint"]
    # an export of the relabelled audit carries the record in its card
    code, text = invoke(["export", out, "--subset", "n_correct >= 0", "--out", tmp_path / "all"], capsys)
    assert code == 0, text
    card = json.loads((tmp_path / "all" / "card.json").read_text())
    assert card["source_audit"]["relabel"] == record
    assert card["counts"]["by_class"] == {c: int(np.sum(expected == k)) for k, c in enumerate(names)}


def test_relabel_of_an_unknown_image_or_class_stops_the_run(digits_audit, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,new_label\n#5,3\nno-such-image,4\n")
    code, text = invoke(["run", "--dataset", "digits", "--variants", "minimal", "--relabel", bad,
                         "--out", tmp_path / "never"], capsys)
    assert code == 2 and text.startswith("error:") and len(text.splitlines()) == 1, text
    assert "'no-such-image'" in text and not (tmp_path / "never").exists()


@pytest.mark.parametrize("text, needle", [
    ("picture,label\n#1,3\n", "needs the columns image,new_label; it has picture,label"),
    ("image,new_label\n#1,\n#2,\n", "gives no new_label in any row"),
    ("image,new_label\n#1,3\n#1,4\n", "names image '#1' twice"),
    ("image,new_label\n,3\n", "has a new_label but no image"),
    ("image,new_label\n#1,eleven\n", "new_label 'eleven' of image '#1' is not a class"),
    ("image,new_label\n#1,10\n", "is not a class (name or index 0..9)"),
    ("image,new_label\n#1,3\n1,4\n", "names the same image twice in different ways"),
])
def test_bad_relabel_files_are_named(tmp_path, text, needle):
    from audit.data.sources import load_digits

    path = tmp_path / "relabel.csv"
    path.write_text(text)
    with pytest.raises(AuditError) as err:
        relabel_dataset(load_digits(), read_relabel(path))
    assert needle in str(err.value)
    with pytest.raises(AuditError, match="does not exist"):
        read_relabel(tmp_path / "missing.csv")


def test_an_image_by_id_source_or_file(tmp_path):
    from PIL import Image

    from audit.data.sources import load_imagefolder

    root = tmp_path / "data"
    for c in ("cat", "dog"):
        (root / "val" / c).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (4, 4), (k * 90, 0, 0)).save(root / "val" / c / f"{k}.png")
    ds = load_imagefolder(root)
    path = tmp_path / "relabel.csv"
    absolute = ds.val.sources[3]
    path.write_text(f"image,new_label\n0,dog\nval/cat/1.png,dog\n{absolute},0\n")
    relabelled, record = relabel_dataset(ds, read_relabel(path))
    assert list(ds.val.labels) == [0, 0, 1, 1]
    assert list(relabelled.val.labels) == [1, 1, 1, 0]
    assert record["n_images"] == 3 and record["n_changed"] == 3
    assert relabelled.train is ds.train and relabelled.val.paths == ds.val.paths


def test_relabel_imported_decisions(tmp_path):
    from audit.curation.importers import read_decisions_source

    table = tmp_path / "decisions.csv"
    rows = [(m, img, lab, pred, 0.9) for m, preds in (("a", "cdc"), ("b", "cdd"))
            for img, lab, pred in zip(("x", "y", "z"), ("cat", "dog", "dog"), preds, strict=True)]
    pd.DataFrame(rows, columns=["maker", "image", "label", "predicted", "true_prob"]).replace(
        {"c": "cat", "d": "dog"}).to_csv(table, index=False)
    decisions = read_decisions_source(table)
    relabel = tmp_path / "relabel.csv"
    relabel.write_text("image,new_label\ny,cat\nz,dog\n")
    out, record = relabel_imported(decisions, read_relabel(relabel))
    assert record["n_images"] == 2 and record["n_changed"] == 1
    labels = out.table.drop_duplicates("image").set_index("image")["label"]
    cat = list(decisions.classes).index("cat")
    assert labels["y"] == cat and labels["x"] == cat
    assert out.table.loc[out.table["image"] == "y", "true_prob"].isna().all()  # no longer the true class's
    assert out.table.loc[out.table["image"] == "x", "true_prob"].eq(0.9).all()
    assert "relabelled 1 of the 2 images named in relabel.csv" in out.notes
    assert decisions.table.drop_duplicates("image").set_index("image")["label"]["y"] != cat  # a new object
    bad = tmp_path / "bad.csv"
    bad.write_text("image,new_label\n0,cat\n")  # imported images are named by their key, not an id
    with pytest.raises(AuditError, match="not among the audited images"):
        relabel_imported(decisions, read_relabel(bad))


def test_relabelled_prediction_files_write_an_audit_that_records_it(tmp_path):
    from audit.curation.importers import read_decisions_source, write_imported_audit
    from audit.curation.relabel import record_relabel

    folder = tmp_path / "zoo"
    folder.mkdir()
    for model, preds in (("a", ["cat", "dog", "cat", "dog"]), ("b", ["cat", "cat", "dog", "dog"]),
                         ("c", ["dog", "dog", "cat", "dog"])):
        pd.DataFrame({"image": ["w", "x", "y", "z"], "label": ["cat", "cat", "dog", "dog"], "predicted": preds,
                      "true_prob": 0.8}).to_csv(folder / f"{model}.csv", index=False)
    decisions = read_decisions_source(folder)
    relabel = tmp_path / "relabel.csv"
    relabel.write_text("image,new_label\nx,dog\ny,dog\n")
    relabelled, record = relabel_imported(decisions, read_relabel(relabel))
    assert record["n_images"] == 2 and record["n_changed"] == 1
    out = write_imported_audit(relabelled, tmp_path / "audit")
    record_relabel(out, record)
    result = load(out)
    by_key = dict(zip(result.images["image_key"], result.images["class_name"], strict=True))
    assert by_key == {"w": "cat", "x": "dog", "y": "dog", "z": "dog"}
    pred = result.predicted()
    np.testing.assert_array_equal(result.correct(), pred == result.labels[:, None])
    x = list(result.images["image_key"]).index("x")
    assert np.isnan(result.true_prob()[x]).all() and (result.true_prob()[0] == np.float32(0.8)).all()
    assert result.manifest["relabel"]["sha256"] == hashlib.sha256(relabel.read_bytes()).hexdigest()


def test_import_relabel_from_the_command_line(tmp_path, capsys):
    table = tmp_path / "decisions.csv"
    rows = [(m, img, lab, pred) for m, preds in (("a", "cdcd"), ("b", "ccdd"), ("c", "cddd"))
            for img, lab, pred in zip("wxyz", "ccdd", preds, strict=True)]
    frame = pd.DataFrame(rows, columns=["maker", "image", "label", "predicted"])
    frame[["label", "predicted"]] = frame[["label", "predicted"]].replace({"c": "cat", "d": "dog"})
    frame.to_csv(table, index=False)
    relabel = tmp_path / "relabel.csv"
    relabel.write_text("image,new_label\nx,dog\nz,\n")
    code, text = invoke(["import", table, "--out", tmp_path / "audit", "--relabel", relabel], capsys)
    assert code == 0, text
    assert "relabelled 1 of the 1 images named in relabel.csv" in text
    result = load(tmp_path / "audit")
    assert dict(zip(result.images["image_key"], result.images["class_name"], strict=True)) == {
        "w": "cat", "x": "dog", "y": "dog", "z": "dog"}
    assert result.manifest["relabel"] == {"file": "relabel.csv", "n_images": 1, "n_changed": 1,
                                          "sha256": hashlib.sha256(relabel.read_bytes()).hexdigest()}
    np.testing.assert_array_equal(result.correct(), result.predicted() == result.labels[:, None])
