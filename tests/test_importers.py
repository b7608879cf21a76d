"""Importing decisions people already have: a long table, score arrays, and model-vs-human raw data
with human observers who each saw part of the images. Numbers are checked against values computed here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import audit
from audit.curation.importers import (
    ImportDataError,
    read_long_table,
    read_model_vs_human,
    read_score_arrays,
    write_imported_audit,
)
from audit.metrics.consistency import error_consistency

CLASSES = ["airplane", "bear", "cat"]


def _truth(n_images=12):
    return {f"{CLASSES[i % 3]}-{i:04d}.png": CLASSES[i % 3] for i in range(n_images)}


def write_mvh_folder(root, *, seed=0, conditions=("c0", "c1")):
    """A model-vs-human-style raw-data folder: 3 models on every image and condition, two humans on halves."""
    rng = np.random.default_rng(seed)
    truth = _truth()
    images = list(truth)
    root.mkdir(parents=True, exist_ok=True)
    makers = {"resnet50": images, "alexnet": images, "vgg16": images,
              "subject-01": images[:8], "subject-02": images[4:]}
    for maker, seen in makers.items():
        human = maker.startswith("subject")
        rows = []
        for t, im in enumerate(seen):
            for cond in conditions:
                resp = truth[im] if rng.random() < 0.7 else CLASSES[rng.integers(3)]
                rows.append({"subj": maker, "session": 1, "trial": t, "rt": 0.8 + t / 1000 if human else np.nan,
                             "object_response": resp, "category": truth[im], "condition": cond,
                             "imagename": f"{t:04d}_ske_{'s01' if human else 'dnn'}_{cond}_{truth[im]}_00_{im}"})
        sep = "-" if maker == "vgg16" else "_"  # both spellings occur in model-vs-human
        pd.DataFrame(rows).to_csv(root / f"sketch_{maker}_session{sep}1.csv", index=False)
    return root


def _by_hand(root):
    """Each maker's decisions read straight from the CSVs: {maker: {(key, condition): correct}}."""
    out = {}
    for f in sorted(root.glob("*.csv")):
        frame = pd.read_csv(f)
        maker = frame["subj"].iloc[0]
        key = frame["imagename"].str.rsplit("_", n=1).str[-1]
        out[maker] = dict(zip(zip(key, frame["condition"], strict=True),
                              frame["object_response"] == frame["category"], strict=True))
    return out


def test_model_vs_human_folder_becomes_an_audit(tmp_path):
    root = write_mvh_folder(tmp_path / "raw")
    decisions = read_model_vs_human(root)
    assert set(decisions.makers) == {"resnet50", "alexnet", "vgg16", "subject-01", "subject-02"}
    assert sorted(decisions.models()) == ["alexnet", "resnet50", "vgg16"]
    kinds = decisions.table.drop_duplicates("maker").set_index("maker")["kind"]
    assert kinds["subject-01"] == "human" and kinds["alexnet"] == "model"
    out = write_imported_audit(decisions, tmp_path / "audit")
    result = audit.load(out)
    assert sorted(result.model_names) == ["alexnet", "resnet50", "vgg16"]
    assert result.n_images == 24  # 12 images x 2 conditions
    hand = _by_hand(root)
    units = list(zip(result.images["image_key"], result.images["condition"], strict=True))
    correct = result.correct()
    for j, m in enumerate(result.model_names):
        np.testing.assert_array_equal(correct[:, j], [hand[m][u] for u in units])
    # the split over the three models, by hand: trivial >= 2 right, impossible <= 1 right (tolerance 1 of 3)
    n_right = np.array([sum(hand[m][u] for m in ("resnet50", "alexnet", "vgg16")) for u in units])
    from audit.report import build_report

    summary = build_report(result)
    assert summary["split"]["counts"]["trivial"] == int((n_right >= 2).sum())
    assert summary["split"]["counts"]["impossible"] == int((n_right <= 1).sum())
    # κ between two models on all images, by hand
    a = np.array([hand["resnet50"][u] for u in units])
    b = np.array([hand["alexnet"][u] for u in units])
    kappa = pd.read_csv(out / "report" / "error_consistency_all.csv", index_col=0)
    assert kappa.loc["resnet50", "alexnet"] == pytest.approx(error_consistency(a, b).kappa, abs=1e-9)
    # humans are stored beside the models, with the images they saw
    h1 = pd.read_parquet(out / "humans" / "subject-01.parquet")
    assert len(h1) == 16 and h1["rt"].between(0.8, 0.9).all()
    assert set(h1["image_id"]) < set(range(24))


def test_long_table_with_names_and_indices(tmp_path):
    rows = []
    truth = _truth(6)
    for m, hits in (("m1", [1, 1, 1, 0, 0, 1]), ("m2", [1, 0, 1, 0, 1, 1]), ("m3", [1, 1, 0, 0, 1, 1])):
        for (im, lab), hit in zip(truth.items(), hits, strict=True):
            pred = lab if hit else CLASSES[(CLASSES.index(lab) + 1) % 3]
            rows.append({"maker": m, "image": im, "label": lab, "predicted": pred, "top_prob": 0.9})
    path = tmp_path / "decisions.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    decisions = read_long_table(path)
    assert decisions.classes == CLASSES
    result = audit.load(write_imported_audit(decisions, tmp_path / "a"))
    n_right = dict(zip(truth, [3, 2, 2, 0, 2, 3], strict=True))
    np.testing.assert_array_equal(result.correct().sum(axis=1), [n_right[k] for k in result.images["image_key"]])
    # indices instead of names, with the class list given
    idx = pd.DataFrame(rows).assign(label=lambda f: f["label"].map(CLASSES.index),
                                    predicted=lambda f: f["predicted"].map(CLASSES.index))
    idx.to_parquet(tmp_path / "d.parquet")
    again = read_long_table(tmp_path / "d.parquet", classes=CLASSES)
    np.testing.assert_array_equal(again.table["predicted"], decisions.table["predicted"])


def test_score_arrays_logits_and_probabilities(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 50)
    folder = tmp_path / "scores"
    folder.mkdir()
    logits = rng.normal(size=(50, 4)) + 3 * np.eye(4)[labels]
    np.save(folder / "net_a.npy", logits)
    probs = np.exp(logits[:, ::-1]) / np.exp(logits[:, ::-1]).sum(1, keepdims=True)
    np.save(folder / "net_b.npy", probs)
    np.save(tmp_path / "labels.npy", labels)
    decisions = read_score_arrays(folder, tmp_path / "labels.npy")
    table = decisions.table.set_index("maker")
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(table.loc["net_a", "true_prob"], soft[np.arange(50), labels], rtol=1e-5)
    np.testing.assert_array_equal(table.loc["net_b", "predicted"], probs.argmax(1))
    np.testing.assert_allclose(table.loc["net_b", "top_prob"], probs.max(1), rtol=1e-5)
    result = audit.load(write_imported_audit(decisions, tmp_path / "a"))
    assert result.n_models == 2 and result.n_images == 50


@pytest.mark.parametrize("case, needle", [
    ("missing_column", "lacks the column(s) predicted"),
    ("label_conflict", "different labels"),
    ("duplicate", "decided the same image twice"),
    ("outside_classes", "not in the class list"),
    ("one_model", "at least two models"),
    ("bad_kind", "column kind"),
    ("file_name_clash", "would share the file name"),
])
def test_bad_long_tables(tmp_path, case, needle):
    base = pd.DataFrame({"maker": ["a", "a", "b", "b"], "image": ["x", "y", "x", "y"],
                         "label": ["cat", "bear", "cat", "bear"], "predicted": ["cat", "cat", "bear", "bear"]})
    classes = None
    if case == "missing_column":
        base = base.drop(columns="predicted")
    elif case == "label_conflict":
        base.loc[2, "label"] = "bear"
    elif case == "duplicate":
        base.loc[1, "image"] = "x"
    elif case == "outside_classes":
        classes = ["cat", "bear"]
        base.loc[0, "predicted"] = "airplane"
    elif case == "one_model":
        base["maker"] = "a"
        base["image"] = ["x", "y", "z", "w"]
        base["label"] = "cat"
    elif case == "bad_kind":
        base["kind"] = "robot"
    elif case == "file_name_clash":
        base["maker"] = ["net:a", "net:a", "net a", "net a"]
    path = tmp_path / "t.csv"
    base.to_csv(path, index=False)
    with pytest.raises(ImportDataError, match=needle.replace("(", r"\(").replace(")", r"\)")) as err:
        write_imported_audit(read_long_table(path, classes=classes), tmp_path / "out")
    assert len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_score_arrays_and_folders(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    np.save(tmp_path / "labels.npy", np.array([0, 1, 2]))
    with pytest.raises(ImportDataError, match="holds no score arrays"):
        read_score_arrays(folder, tmp_path / "labels.npy")
    np.save(folder / "a.npy", np.zeros((4, 3)))
    with pytest.raises(ImportDataError, match="has 4 rows but"):
        read_score_arrays(folder, tmp_path / "labels.npy")
    bad = np.zeros((3, 3))
    bad[1, 2] = np.nan
    np.save(folder / "a.npy", bad)
    with pytest.raises(ImportDataError, match="NaN or infinite scores \\(rows 1\\)"):
        read_score_arrays(folder, tmp_path / "labels.npy")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImportDataError, match="holds no .csv files"):
        read_model_vs_human(empty)
    (empty / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ImportDataError, match="does not follow model-vs-human's naming"):
        read_model_vs_human(empty)


def test_humans_beside_models_by_hand(tmp_path):
    from audit.report import ReportContent, build_report
    from audit.report.humans import human_report
    from audit.report.text import human_lines

    root = write_mvh_folder(tmp_path / "raw", seed=3)
    out = write_imported_audit(read_model_vs_human(root), tmp_path / "audit")
    result = audit.load(out)
    build_report(result)
    result = audit.load(out)
    categories = result.images["category"].to_numpy()
    report = ReportContent(summary={})
    human_report(result, categories, report, n_bootstrap=20)
    hand = _by_hand(root)
    units = list(zip(result.images["image_key"], result.images["condition"], strict=True))
    humans = ("subject-01", "subject-02")
    for cat in ("trivial", "impossible", "inconclusive"):
        seen = [(h, u) for h in humans for i, u in enumerate(units) if categories[i] == cat and u in hand[h]]
        entry = report.summary["humans"]["accuracy_by_category"][cat]
        assert entry["n"] == len(seen)
        assert entry["k"] == sum(bool(hand[h][u]) for h, u in seen)
    # human-model κ: the mean over every (human, model) pair of κ on the units the human saw
    pairs = []
    for h in humans:
        shared = [u for u in units if u in hand[h]]
        for m in result.model_names:
            pairs.append(error_consistency(np.array([hand[h][u] for u in shared]),
                                           np.array([hand[m][u] for u in shared])).kappa)
    got = report.summary["humans"]["error_consistency"]["all"]["human-model"]
    assert got["mean"] == pytest.approx(np.mean(pairs), abs=1e-9)
    assert got["ci95"][0] <= got["mean"] <= got["ci95"][1]
    by_condition = {r["condition"]: r for r in report.summary["humans"]["by_condition"]}
    assert set(by_condition) == {"c0", "c1"} and by_condition["c0"]["n_images"] == 12
    # κ human-model within one condition, by hand: the pairs on the c1 units each human saw
    pairs = []
    for h in humans:
        shared = [u for u in units if u in hand[h] and u[1] == "c1"]
        for m in result.model_names:
            pairs.append(error_consistency(np.array([hand[h][u] for u in shared]),
                                           np.array([hand[m][u] for u in shared])).kappa)
    assert by_condition["c1"]["kappa_human-model"] == pytest.approx(np.mean(pairs), abs=1e-9)
    text = "\n".join(human_lines(report.summary))
    assert "Humans (2;" in text and "condition c1:" in text and "human-model" in text


def test_import_then_report_from_the_command_line(tmp_path):
    from tests.conftest import run_cli

    root = write_mvh_folder(tmp_path / "raw", seed=5)
    out = tmp_path / "audit"
    res = run_cli("import", str(root), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "Humans (2;" in res.stdout and "condition c0:" in res.stdout and "human-model" in res.stdout
    rep = run_cli("report", str(out))
    assert rep.returncode == 0, rep.stderr
    assert "condition c1:" in rep.stdout
    assert (out / "report" / "split_by_condition.csv").exists()
    # the same --out again is refused without --force
    again = run_cli("import", str(root), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("args, needle", [
    (["{root}/nowhere.csv"], "nowhere.csv does not exist"),
    (["{scores}"], "--labels"),
    (["{table}", "--format", "xml"], "--format must be one of"),
    (["{table}", "--labels", "{table}"], "--labels is for score arrays"),
    (["{bad_table}"], "lacks the column(s) predicted"),
])
def test_import_bad_input_is_one_line(tmp_path, args, needle):
    from tests.conftest import run_cli

    scores = tmp_path / "scores"
    scores.mkdir()
    np.save(scores / "m.npy", np.zeros((2, 2)))
    table = tmp_path / "t.csv"
    pd.DataFrame({"maker": ["a"], "image": ["x"], "label": [0], "predicted": [0]}).to_csv(table, index=False)
    bad_table = tmp_path / "bad.csv"
    pd.DataFrame({"maker": ["a"], "image": ["x"], "label": [0]}).to_csv(bad_table, index=False)
    filled = [a.format(root=tmp_path, scores=scores, table=table, bad_table=bad_table) for a in args]
    res = run_cli("import", *filled, "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


def test_a_study_from_an_imported_audit_needs_its_images(tmp_path, capsys):
    from PIL import Image

    from tests.conftest import invoke_cli

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    rows = []
    for i in range(40):
        lab = ["cat", "dog"][i % 2]
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"img{i}.png")
        for m in range(5):
            right = i < 15 or (i >= 30 and rng.random() < 0.5)
            rows.append({"maker": f"m{m}", "image": f"img{i}.png", "label": lab,
                         "predicted": lab if right else ["dog", "cat"][i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    study = ["--name", "s", "--trials", "4", "--practice", "1", "--size", "16"]
    assert invoke_cli(["import", tmp_path / "d.csv", "--out", tmp_path / "bare"], capsys)[0] == 0
    code, text = invoke_cli(["study", "create", "--audit", tmp_path / "bare", *study], capsys)
    assert code != 0 and "--images ROOT" in text and "Traceback" not in text
    assert invoke_cli(["import", tmp_path / "d.csv", "--images", tmp_path / "imgs", "--out", tmp_path / "with"],
                      capsys)[0] == 0
    code, text = invoke_cli(["study", "create", "--audit", tmp_path / "with", *study], capsys)
    assert code == 0, text
    assert len(list((tmp_path / "with" / "studies" / "s").rglob("*.png"))) >= 10
