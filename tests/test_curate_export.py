"""`ddd-audit export`: every subset and format on real audits, checked against the stored decisions.

Two audits: the session's digits audit (an array dataset: images.npy, exported as PNG files) and a
small ImageFolder audit of digit images written here (files: exported as links or copies). The
subsets are recomputed by hand from `AuditResult.correct()`, the ImageFolder trees are read back with
torchvision, and every bad input ends in a one-line error with nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.curation.export import REVIEW_COLUMNS, export_selection, select_images
from audit.report import build_report
from audit.store import AuditError, load
from tests.conftest import invoke_cli as invoke


def export(audit, out, capsys, *args) -> dict:
    code, text = invoke(["export", str(audit), "--out", str(out), *args], capsys)
    assert code == 0, text
    return json.loads((Path(out) / "card.json").read_text())


@pytest.fixture(scope="module")
def folder_audit(tmp_path_factory) -> Path:
    """A real audit of an ImageFolder tree: 3 classes of scikit-learn digits as PNG files, 12 val images each."""
    from sklearn.datasets import load_digits

    from audit.running.engine import AuditConfig, plan_audit, run_audit

    root = tmp_path_factory.mktemp("folder") / "data"
    digits = load_digits()
    for c in range(3):
        idx = np.flatnonzero(digits.target == c)
        for split, ids in (("val", idx[:12]), ("train", idx[12:52])):
            folder = root / split / f"digit {c}"
            folder.mkdir(parents=True)
            for i in ids:
                Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(folder / f"img_{i}.png")
    out = root.parent / "audit"
    plan = plan_audit(AuditConfig(dataset=f"imagefolder:{root}", variants="minimal", epochs=1, device="cpu",
                                  image_size=8, depth="none", learnability=False))
    run_audit(plan, out)
    build_report(load(out))
    return out


def by_hand(result, tolerance: int) -> dict[str, np.ndarray]:
    """The image ids of each category, from the decisions (meding2022 §3.1: counts and a tolerance)."""
    n_right = result.correct().sum(axis=1)
    m = result.n_models
    ids = result.image_ids
    return {"trivial": ids[n_right >= m - tolerance], "impossible": ids[n_right <= tolerance],
            "inconclusive": ids[(n_right > tolerance) & (n_right < m - tolerance)]}


# --------------------------------------------------------------------------- subsets
@pytest.mark.parametrize("tolerance", [0, 1])
def test_categories_are_the_split_at_the_tolerance(digits_audit, tmp_path, capsys, tolerance):
    result = load(digits_audit)
    expected = by_hand(result, tolerance)
    for category, ids in expected.items():
        if not len(ids):
            continue
        out = tmp_path / f"{category}_{tolerance}"
        card = export(digits_audit, out, capsys, "--subset", category, "--tolerance", tolerance)
        rows = pd.read_csv(out / "images.csv")
        np.testing.assert_array_equal(rows["image_id"], ids)
        assert set(rows["category"]) == {category}
        assert card["tolerance"] == {"asked": tolerance, "used": tolerance}
        assert card["counts"]["by_category"][category] == len(ids)


def test_query_selects_what_pandas_selects(digits_audit, tmp_path, capsys):
    images = load(digits_audit).images
    query = "n_correct >= 2 and label_quality < 0.3"
    expected = images[(images["n_correct"] >= 2) & (images["label_quality"] < 0.3)]["image_id"]
    assert len(expected), "the audit has no image for this query"
    card = export(digits_audit, tmp_path / "q", capsys, "--subset", query, "--format", "parquet")
    rows = pd.read_parquet(tmp_path / "q" / "images.parquet")
    np.testing.assert_array_equal(rows["image_id"], expected)
    assert card["rule"] == f"query over the images table: {query}"


# --------------------------------------------------------------------------- formats
def test_csv_and_parquet_hold_every_score(digits_audit, tmp_path, capsys):
    images = load(digits_audit).images
    export(digits_audit, tmp_path / "csv", capsys, "--subset", "impossible")
    export(digits_audit, tmp_path / "pq", capsys, "--subset", "impossible", "--format", "parquet")
    csv = pd.read_csv(tmp_path / "csv" / "images.csv", keep_default_na=False, na_values=[""])
    pq = pd.read_parquet(tmp_path / "pq" / "images.parquet")
    assert list(csv.columns) == list(pq.columns) == list(images.columns)  # every score, none lost
    np.testing.assert_array_equal(csv["image_id"], pq["image_id"])
    stored = images.set_index("image_id").loc[pq["image_id"]]
    np.testing.assert_allclose(pq["label_quality"], stored["label_quality"])
    np.testing.assert_allclose(csv["tp_agreement"], stored["tp_agreement"], rtol=1e-12)
    assert sorted((tmp_path / "csv").iterdir()) == [tmp_path / "csv" / n for n in ("README.md", "card.json",
                                                                                   "images.csv")]


def test_array_dataset_becomes_png_files_that_imagefolder_reads(digits_audit, tmp_path, capsys):
    from torchvision.datasets import ImageFolder

    result = load(digits_audit)
    out = tmp_path / "tree"
    card = export(digits_audit, out, capsys, "--subset", "inconclusive", "--format", "imagefolder")
    ids = by_hand(result, 1)["inconclusive"]
    data = ImageFolder(str(out))
    labels = result.labels[ids]
    present = sorted({result.class_names[c] for c in labels})
    assert data.classes == present
    counts = pd.Series([data.classes[t] for t in data.targets]).value_counts()
    for name in present:
        assert counts[name] == np.sum(labels == result.class_names.index(name)) == card["counts"]["by_class"][name]
    assert len(data) == len(ids)
    timm_data = pytest.importorskip("timm.data").ImageDataset(str(out))  # timm reads it as it is too
    assert len(timm_data) == len(ids) and sorted(timm_data.reader.class_to_idx) == present
    # each PNG holds the audit's own pixels
    first = sorted(ids)[0]
    png = next(out.rglob(f"{first:03d}.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(result.image(first)))
    assert png.parent.name == result.class_names[result.labels[first]]
    index = pd.read_csv(out / "index.csv")
    assert (out / index["file"]).map(Path.is_file).all()


def test_list_of_an_array_dataset_names_png_files(digits_audit, tmp_path, capsys):
    result = load(digits_audit)
    out = tmp_path / "list"
    export(digits_audit, out, capsys, "--subset", "trivial", "--format", "list")
    paths = (out / "images.txt").read_text().splitlines()
    assert len(paths) == len(by_hand(result, 1)["trivial"])
    assert all(Path(p).is_file() and Path(p).is_relative_to(out.resolve()) for p in paths)


def test_file_dataset_links_copies_and_lists(folder_audit, tmp_path, capsys):
    from torchvision.datasets import ImageFolder

    result = load(folder_audit)
    sources = {int(i): Path(s) for i, s in zip(result.image_ids, result.images["source"], strict=True)}
    links = tmp_path / "links"
    card = export(folder_audit, links, capsys, "--subset", "n_correct >= 0", "--format", "imagefolder")
    data = ImageFolder(str(links))
    assert data.classes == ["digit 0", "digit 1", "digit 2"] == result.class_names
    assert [data.classes[t] for t in data.targets].count("digit 1") == 12 == card["counts"]["by_class"]["digit 1"]
    files = [Path(p) for p, _ in data.samples]
    assert all(f.is_symlink() for f in files)
    index = pd.read_csv(links / "index.csv")
    for _, row in index.iterrows():
        assert (links / row["file"]).resolve() == sources[row["image_id"]].resolve()
    assert card["files"]["folders"]["digit 2"] == {"class_name": "digit 2", "label": 2}
    # copies: plain files with the same bytes
    copies = tmp_path / "copies"
    export(folder_audit, copies, capsys, "--subset", "n_correct >= 0", "--format", "imagefolder", "--copy")
    copied = [Path(p) for p, _ in ImageFolder(str(copies)).samples]
    assert len(copied) == 36 and not any(f.is_symlink() for f in copied)
    index = pd.read_csv(copies / "index.csv")
    assert (copies / index["file"].iloc[0]).read_bytes() == sources[index["image_id"].iloc[0]].read_bytes()
    # list: the audit's own files, one per line
    export(folder_audit, tmp_path / "list", capsys, "--subset", "n_correct >= 0", "--format", "list")
    listed = (tmp_path / "list" / "images.txt").read_text().splitlines()
    assert [Path(p) for p in listed] == [sources[i].resolve() for i in sorted(sources)]


# --------------------------------------------------------------------------- the card
def test_card_counts_equal_the_images_table(digits_audit, tmp_path, capsys):
    result = load(digits_audit)
    out = tmp_path / "card"
    card = export(digits_audit, out, capsys, "--subset", "n_correct <= 2", "--tolerance", "0")
    rows = result.images[result.images["n_correct"] <= 2]
    assert card["n_images"] == len(rows)
    assert card["counts"]["by_class"] == {c: int((rows["class_name"] == c).sum()) for c in result.class_names}
    m = result.n_models
    cats = np.where(rows["n_correct"] == m, "trivial", np.where(rows["n_correct"] == 0, "impossible", "inconclusive"))
    assert card["counts"]["by_category"] == {c: int((cats == c).sum()) for c in ("trivial", "inconclusive",
                                                                                 "impossible")}
    src = card["source_audit"]
    assert src["fingerprint"] == result.manifest["dataset"]["fingerprint"]
    assert src["path"] == str(digits_audit.resolve())
    assert [m_["name"] for m_ in card["models"]] == result.model_names
    assert card["models"][0]["accuracy"] == pytest.approx(result.correct()[:, 0].mean())
    assert card["tolerance"]["used"] == 0
    assert card["command"].startswith("ddd-audit export ") and "--tolerance 0" in card["command"]
    readme = (out / "README.md").read_text()
    assert card["rule"] in readme and f"`{src['fingerprint']}`" in readme
    assert f"| inconclusive | {card['counts']['by_category']['inconclusive']} |" in readme


# --------------------------------------------------------------------------- balanced
def test_balanced_draws_equal_bins_and_classes_as_far_as_they_go(digits_audit, tmp_path, capsys):
    result = load(digits_audit)
    m, n_classes = result.n_models, result.n_classes
    card = export(digits_audit, tmp_path / "b", capsys, "--subset", "balanced", "--seed", "3")
    rows = pd.read_csv(tmp_path / "b" / "images.csv")
    available = np.bincount(result.images["n_correct"], minlength=m + 1)
    per_bin = available[available > 0].min()
    drawn = np.bincount(rows["n_correct"], minlength=m + 1)
    np.testing.assert_array_equal(drawn, np.where(available > 0, per_bin, 0))  # equal numbers per bin
    assert card["counts"]["by_bin"] == {f"n_correct={k}": int(drawn[k]) for k in range(m + 1)}
    assert card["seed"] == 3
    for k in np.flatnonzero(available):
        # water-filling: a class gets all its images, or a share within one of every other such class
        have = np.bincount(result.images.loc[result.images["n_correct"] == k, "label"], minlength=n_classes)
        got = np.bincount(rows.loc[rows["n_correct"] == k, "label"], minlength=n_classes)
        assert (got <= have).all()
        full = got < have
        if full.any():
            assert got[full].max() - got[full].min() <= 1
            assert (got[~full] <= got[full].min()).all()
    assert rows["image_id"].is_unique
    # seeded: the same seed draws the same images, another seed others
    again = select_images(result, "balanced", seed=3).images["image_id"].to_numpy()
    np.testing.assert_array_equal(again, rows["image_id"])
    other = select_images(result, "balanced", seed=4).images["image_id"].to_numpy()
    assert not np.array_equal(other, again)


def test_balanced_over_mean_accuracy_bins_and_says_what_it_could_not(digits_audit):
    result = load(digits_audit)
    m = result.n_models
    sel = select_images(result, "balanced", bins=2, per_bin=10_000)
    accuracy = result.images["n_correct"].to_numpy() / m
    low = np.sum(accuracy < 0.5)
    high = np.sum(accuracy >= 0.5)
    n = min(low, high)
    assert list(sel.bins["n_drawn"]) == [n, n]
    picked = sel.images["n_correct"].to_numpy() / m
    assert np.sum(picked < 0.5) == np.sum(picked >= 0.5) == n
    assert any("--per-bin 10000 is more than the smallest bin" in note for note in sel.notes)
    assert any("could not be balanced" in note for note in sel.notes)  # digits' bins are far from even
    sel = select_images(result, "balanced", bins=m + 5)
    assert any("left out" in note for note in sel.notes)  # more bins than counts: some are empty


# --------------------------------------------------------------------------- label review
def test_label_review_list(digits_audit, tmp_path, capsys):
    result = load(digits_audit)
    images = result.images
    flagged = images[images["is_label_issue"].astype(bool)]
    assert len(flagged), "the digits audit flags no label issue"
    out = tmp_path / "review"
    card = export(digits_audit, out, capsys, "--subset", "label-issues", "--format", "csv")
    review = pd.read_csv(out / "label_issues.csv", keep_default_na=False,
                         dtype={"given_label": str, "suggested_label": str})
    assert tuple(review.columns) == REVIEW_COLUMNS
    assert sorted(review["image_id"]) == sorted(flagged["image_id"])
    assert review["label_quality"].is_monotonic_increasing
    predicted = result.predicted()
    names = result.class_names
    for _, row in review.head(20).iterrows():
        i = int(row["image_id"])
        votes = np.bincount(predicted[i], minlength=result.n_classes)
        assert row["suggested_label"] == names[int(votes.argmax())]  # the majority, lowest class on ties
        assert row["suggested_votes"] == f"{votes.max()}/{result.n_models}"
        assert row["given_label"] == names[result.labels[i]]
        assert row["n_correct"] == int(result.correct()[i].sum())
        assert row["image"] == images.loc[i, "source"]
        assert row["impossible_cause"] == (images.loc[i, "impossible_cause"] or "")
    template = pd.read_csv(out / "relabel.csv", keep_default_na=False)
    assert list(template.columns) == ["image", "new_label"] and (template["new_label"] == "").all()
    assert list(template["image"]) == list(review["image"])
    assert card["counts"]["by_class"] == {c: int((flagged["class_name"] == c).sum()) for c in names}


# --------------------------------------------------------------------------- bad input
def one_line_error(code: int, text: str, *needles: str) -> None:
    assert code == 2, text
    assert text.startswith("error:") and "Traceback" not in text, text
    assert len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


@pytest.mark.parametrize("subset, needles", [
    ("trivia", ("unknown subset 'trivia'", "n_correct", "label_quality", "label-issues")),
    ("n_correct >", ("does not parse", "n_correct, category")),
    ("n_corect > 2", ("unknown column", "n_corect", "n_correct, category")),
    ("n_correct + 1", ("not a condition", "n_correct")),
    ("n_correct > 99", ("selects no image",)),
])
def test_bad_subsets_are_one_line(digits_audit, tmp_path, capsys, subset, needles):
    out = tmp_path / "never"
    code, text = invoke(["export", digits_audit, "--subset", subset, "--out", out], capsys)
    one_line_error(code, text, *needles)
    assert not out.exists() and not list(tmp_path.iterdir())  # no folder, no temporary folder


@pytest.mark.parametrize("args, needle", [
    (["--format", "zip"], "--format must be one of csv, parquet, imagefolder, list"),
    (["--bins", "3"], "--bins and --per-bin need --subset balanced"),
    (["--copy"], "--copy needs --format imagefolder"),
])
def test_conflicting_options_explain_themselves(digits_audit, tmp_path, capsys, args, needle):
    code, text = invoke(["export", digits_audit, "--subset", "trivial", "--out", tmp_path / "x", *args], capsys)
    one_line_error(code, text, needle)


def test_bad_bins_and_an_audit_without_label_issues(digits_audit, folder_audit, tmp_path, capsys):
    code, text = invoke(["export", digits_audit, "--subset", "balanced", "--bins", "one", "--out", tmp_path / "x"],
                        capsys)
    one_line_error(code, text, "--bins takes n_correct")
    result = load(digits_audit)
    no_flags = result.images.drop(columns=["is_label_issue", "label_quality"])
    result.images = no_flags
    with pytest.raises(AuditError, match="has no label issues.*columns are image_id"):
        select_images(result, "label-issues")


def test_existing_output_is_refused_unless_force(digits_audit, tmp_path, capsys):
    out = tmp_path / "out"
    export(digits_audit, out, capsys, "--subset", "trivial")
    code, text = invoke(["export", digits_audit, "--subset", "impossible", "--out", out], capsys)
    one_line_error(code, text, "exists and is not empty", "--force")
    assert json.loads((out / "card.json").read_text())["subset"] == "trivial"  # untouched
    card = export(digits_audit, out, capsys, "--subset", "impossible", "--force")
    assert card["subset"] == "impossible" and json.loads((out / "card.json").read_text())["subset"] == "impossible"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the earlier export is gone, no leftovers
    # --force replaces an earlier export only, never a folder of other files
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, text = invoke(["export", digits_audit, "--subset", "trivial", "--out", other, "--force"], capsys)
    one_line_error(code, text, "no export wrote")
    assert (other / "notes.txt").read_text() == "mine"
    # an empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    export(digits_audit, empty, capsys, "--subset", "trivial")


def test_moved_image_files_are_named_before_anything_is_written(folder_audit, tmp_path, capsys):
    result = load(folder_audit)
    first = Path(result.images["source"].iloc[0])
    moved = first.with_suffix(".moved")
    first.rename(moved)
    try:
        for fmt in ("imagefolder", "list"):
            out = tmp_path / fmt
            code, text = invoke(["export", folder_audit, "--subset", "n_correct >= 0", "--format", fmt,
                                 "--out", out], capsys)
            one_line_error(code, text, str(first.resolve()), "missing")
            assert not out.exists()
        assert not list(tmp_path.iterdir())
        # the rows need no file
        export(folder_audit, tmp_path / "rows", capsys, "--subset", "n_correct >= 0", "--format", "csv")
    finally:
        moved.rename(first)


def test_a_failed_write_leaves_nothing(digits_audit, tmp_path, monkeypatch):
    result = load(digits_audit)
    selection = select_images(result, "trivial")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("audit.curation.export.card_markdown", broken)
    with pytest.raises(OSError):
        export_selection(result, selection, tmp_path / "x", fmt="imagefolder")
    assert not list(tmp_path.iterdir())
