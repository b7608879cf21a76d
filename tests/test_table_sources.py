"""hf:, parquet: and wds: datasets: the same 200 Fashion-MNIST images read from an ImageFolder, a saved
`datasets` dataset, Parquet files and WebDataset shards give the same labels, pixels and decisions, keep
their source's keys, and bad input ends in a one-line error with nothing written."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.data import DatasetError, load_dataset
from tests.conftest import invoke_cli as invoke
from tests.table_fixtures import (
    fashion_mnist_images,
    hf_split,
    write_all,
    write_hf,
    write_parquet,
    write_raw_tar,
    write_wds,
)

pytest.importorskip("datasets")
pytest.importorskip("webdataset")


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> dict:
    return write_all(tmp_path_factory.mktemp("sources"))


def specs(src: dict) -> dict[str, tuple[str, dict]]:
    return {
        "imagefolder": (f"imagefolder:{src['folder']}", {}),
        "hf": (f"hf:{src['hf']}", {}),
        "parquet": (f"parquet:{src['parquet_val']}", {"train_split": src["parquet_train"]}),
        "wds": (f"wds:{src['wds_val']}", {"train_split": src["wds_train"], "classes": str(src["classes"])}),
    }


def fixture_index(name: str, source: str) -> int:
    """Which of the fixture's validation images a recorded source names (its own key, joined back)."""
    if name == "imagefolder":
        return int(Path(source).stem.removeprefix("img"))
    if name in ("hf", "parquet"):
        return int(source)  # the row index
    return int(source.removeprefix("img"))  # the WebDataset __key__


def test_each_source_reads_the_same_images_with_their_own_keys(src):
    for name, (spec, options) in specs(src).items():
        ds = load_dataset(spec, **options)
        assert ds.classes == src["names"], name
        assert (len(ds.val), len(ds.train)) == (200, 100), name
        idx = [fixture_index(name, s) for s in ds.val.sources]
        assert sorted(idx) == list(range(200)), name
        assert np.array_equal(ds.val.labels, src["labels"][idx]), name
        if name != "imagefolder":
            assert ds.val.records.read(7) == src["encoded"][idx[7]], name  # the bytes as stored
            assert ds.describe()["reader"]["kind"] == name
    wds = load_dataset(*specs(src)["wds"][:1], **specs(src)["wds"][1])
    assert wds.val.sources[:2] == ["img00000", "img00001"]


def test_decode_cache_gives_the_folders_pixels(src):
    from audit.data.decode_cache import DecodeCache, Preprocessing

    prep = Preprocessing(input_size=(3, 40, 40), crop_pct=0.875, crop_mode="center", interpolation="bilinear",
                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    cache = DecodeCache(workers=2)
    decoded = {}
    for name, (spec, options) in specs(src).items():
        ds = load_dataset(spec, **options)
        images = cache.get(ds.val, prep).images
        order = np.argsort([fixture_index(name, s) for s in ds.val.sources])
        decoded[name] = images[order]
        sub = np.arange(3, 200, 7)  # a subset streams too, in the index's own order
        assert np.array_equal(cache.get(ds.val, prep, index=sub).images, images[sub]), name
    for name in ("hf", "parquet", "wds"):
        assert np.array_equal(decoded[name], decoded["imagefolder"]), name


def test_val_subset_and_pickling_keep_keys(src):
    import pickle

    ds = load_dataset(f"hf:{src['hf']}")
    sub = ds.val.subset(np.array([5, 2, 9]))
    assert sub.sources == ["5", "2", "9"]
    again = pickle.loads(pickle.dumps(sub))  # what a worker process receives
    assert again.records.read(1) == src["encoded"][2]


def test_hub_cache_folder_reads_as_datasets_finds_its_splits(tmp_path):
    encoded, _, labels, names = fashion_mnist_images(30, seed=1)
    repo = tmp_path / "hub" / "datasets--someone--fmnist-mini"
    snap = repo / "snapshots" / "0123abcd"
    write_parquet(snap / "data", "validation", encoded[:20], labels[:20], names, n_files=1)
    write_parquet(snap / "data", "train", encoded[20:], labels[20:], names, n_files=1)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    ds = load_dataset(f"hf:{repo}")
    assert (len(ds.val), len(ds.train), ds.classes) == (20, 10, names)
    assert np.array_equal(ds.val.labels, labels[:20])
    assert ds.val.records.read(3) == encoded[3]
    assert load_dataset(f"hf:{repo}", split="train", train_split="validation").val.labels.tolist() == \
        labels[20:].tolist()


def test_undecodable_image_is_skipped_and_counted(tmp_path):
    from audit.data.sources import skipped_files_notes

    encoded, exts, labels, names = fashion_mnist_images(12, seed=2)
    broken = list(encoded)
    broken[4] = b"not an image at all"
    write_hf(tmp_path / "hf", {"validation": (broken, labels, names)})
    ds = load_dataset(f"hf:{tmp_path / 'hf'}")
    assert len(ds.val) == 11 and "4" not in ds.val.sources
    assert [(s["path"], s["split"]) for s in ds.skipped] == [("4", "validation")]
    assert "skipped 1 file" in skipped_files_notes(ds.skipped, ds.classes, ds.val.labels)[0]
    keys = [f"k{i}" for i in range(12)]
    pattern = write_wds(tmp_path / "wds", "val", broken, exts, labels, keys, n_shards=1)
    ds = load_dataset(f"wds:{pattern}", classes=str(_classes(tmp_path, names)))
    assert len(ds.val) == 11 and [s["path"] for s in ds.skipped] == ["k4"]


def _classes(folder: Path, names) -> Path:
    p = folder / "classes.txt"
    p.write_text("\n".join(names) + "\n")
    return p


def test_string_labels_in_json_name_the_classes(tmp_path):
    import webdataset as wds

    encoded, _, labels, names = fashion_mnist_images(10, seed=3)
    with wds.TarWriter(str(tmp_path / "s-000000.tar")) as sink:
        for i, data in enumerate(encoded):
            sink.write({"__key__": f"a/{i:03d}", "png": data, "json": {"name": names[labels[i]]}})
    ds = load_dataset(f"wds:{tmp_path}/s-000000.tar", image_column="png", label_column="name")
    assert ds.classes == sorted({names[v] for v in labels})
    assert [ds.classes[v] for v in ds.val.labels] == [names[v] for v in labels]
    assert ds.val.sources[0] == "a/000"  # webdataset's key keeps the folder inside the tar


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("bad_sources")
    encoded, exts, labels, names = fashion_mnist_images(8, seed=4)
    pq.write_table(pa.table({"png": pa.array(encoded, pa.binary()), "y": pa.array(labels, pa.int64())}),
                   root / "plain.parquet")
    write_raw_tar(root / "nolabels-000000.tar", {f"{i:03d}.png": d for i, d in enumerate(encoded[:3])})
    empty = hf_split(encoded[:2], labels[:2], names).select([])
    import datasets

    datasets.DatasetDict({"validation": empty, "train": hf_split(encoded, labels, names)}).save_to_disk(
        str(root / "empty"))
    (root / "models--someone--net" / "snapshots").mkdir(parents=True)
    (root / "plain-folder").mkdir()
    write_hf(root / "hf", {"validation": (encoded, labels, names)})
    return {"root": root, "names": names}


BAD = [
    ("missing column", lambda b: [f"hf:{b['root'] / 'hf'}", "--image-column", "picture"],
     "no column 'picture' (--image-column); columns: image, label"),
    ("not a class label", lambda b: [f"parquet:{b['root'] / 'plain.parquet'}", "--label-column", "y"],
     "'y' is not a ClassLabel, so its class names are unknown; give --classes FILE"),
    ("no labels in a shard", lambda b: [f"wds:{b['root'] / 'nolabels-000000.tar'}"],
     "nolabels-000000.tar has no labels: sample '000' has neither .cls nor .json"),
    ("empty split", lambda b: [f"hf:{b['root'] / 'empty'}"], "split 'validation' is empty"),
    ("a model's hub cache", lambda b: [f"hf:{b['root'] / 'models--someone--net'}"],
     "is the Hub cache of a model, not of a dataset"),
    ("not a dataset", lambda b: [f"hf:{b['root'] / 'plain-folder'}"],
     "is not a dataset: neither a folder written by save_to_disk"),
    ("unknown split", lambda b: [f"hf:{b['root'] / 'hf'}", "--split", "dev"], "no split 'dev'; splits: validation"),
    ("no parquet file", lambda b: [f"parquet:{b['root'] / 'nothing-*.parquet'}"], "no file matches"),
    ("split flag on a built-in dataset", lambda b: ["digits", "--split", "val"],
     "--split is for hf:PATH, parquet:GLOB and wds:PATTERN datasets"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, bad, tmp_path, capsys):
    _, args, expected = case
    dataset, *rest = args(bad)
    out = tmp_path / "run"
    code, text = invoke(["run", "--dataset", dataset, *rest, "--variants", "none", "--models", "efficientnet_lite0",
                         "--out", out], capsys)
    assert code == 2, text
    assert expected in text, text
    assert len(text.splitlines()) == 1, text
    assert not out.exists()


def test_classes_file_names_integer_labels(bad, tmp_path):
    ds = load_dataset(f"parquet:{bad['root'] / 'plain.parquet'}", label_column="y",
                      classes=str(_classes(tmp_path, bad["names"])))
    assert ds.classes == bad["names"] and len(ds.val) == 8
    with pytest.raises(DatasetError, match="is outside --classes"):
        two = tmp_path / "two.txt"
        two.write_text("a\nb\n")
        load_dataset(f"parquet:{bad['root'] / 'plain.parquet'}", label_column="y", classes=str(two))


# --------------------------------------------------------------------------- end to end, with a real model
def _decisions_by_image(out: Path, name: str) -> dict[int, tuple[int, int]]:
    from audit import load

    result = load(out)
    predicted = result.predicted()[:, 0]
    return {fixture_index(name, s): (int(p), int(lab))
            for s, p, lab in zip(result.images["source"].astype(str), predicted, result.images["label"],
                                 strict=True)}


@pytest.mark.slow
def test_run_gives_identical_decisions_from_each_source(src, tmp_path, capsys):
    runs = {}
    for name, (spec, options) in specs(src).items():
        flags = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]
        out = tmp_path / name
        code, text = invoke(["run", "--dataset", spec, *flags, "--variants", "none", "--models",
                             "efficientnet_lite0@64", "--depth", "none", "--rsa-images", "0", "--out", out], capsys)
        assert code == 0, text
        runs[name] = _decisions_by_image(out, name)
    assert len(runs["imagefolder"]) == 200
    for name in ("hf", "parquet", "wds"):
        assert runs[name] == runs["imagefolder"], name
    accuracy = np.mean([p == lab for p, lab in runs["imagefolder"].values()])
    assert accuracy > 0.6  # the linear probe on 100 training images, well above 4 classes' chance

    from audit import load

    for name in ("hf", "parquet", "wds"):  # the app's and a study's reader: the image behind each key
        result = load(tmp_path / name)
        for i in (0, 57, 199):
            k = fixture_index(name, str(result.images["source"][i]))
            expected = np.asarray(Image.open(io.BytesIO(src["encoded"][k])).convert("RGB"))
            assert np.array_equal(np.asarray(result.image(i)), expected), (name, i)

    # export: rows keep the key; an ImageFolder export writes the images as PNG
    code, text = invoke(["export", tmp_path / "wds", "--subset", "impossible", "--format", "imagefolder", "--out",
                         tmp_path / "exp"], capsys)
    assert code == 0, text
    pngs = sorted((tmp_path / "exp").rglob("*.png"))
    wrong = [k for k, (p, lab) in runs["wds"].items() if p != lab]
    assert len(pngs) == len(wrong) > 0
    code, text = invoke(["export", tmp_path / "wds", "--subset", "impossible", "--format", "csv", "--out",
                         tmp_path / "rows"], capsys)
    assert code == 0, text
    rows = pd.read_csv(tmp_path / "rows" / "images.csv")
    assert sorted(fixture_index("wds", s) for s in rows["source"]) == sorted(wrong)

    # score: a new model on the audit's images, read again from the shards
    code, text = invoke(["score", tmp_path / "hf", "--models", "efficientnet_lite1@64"], capsys)
    assert code == 0, text
    assert "efficientnet_lite1-64px" in load(tmp_path / "hf").scored_names


@pytest.mark.slow
def test_study_from_a_shard_audit(src, tmp_path, capsys):
    code, text = invoke(["run", "--dataset", specs(src)["wds"][0], "--classes", src["classes"], "--variants", "none",
                         "--models", "efficientnet_lite0@64,efficientnet_lite1@64", "--label-map",
                         _label_map(tmp_path, src["names"]), "--depth", "none", "--rsa-images", "0", "--out",
                         tmp_path / "audit"], capsys)
    assert code == 0, text
    # two models are too few for a split worth observers' time: --allow-incomplete, as this is about the images
    code, text = invoke(["study", "create", "--audit", tmp_path / "audit", "--name", "pilot", "--trials", "4",
                         "--practice", "0", "--base-url", "http://localhost:8501", "--allow-incomplete"], capsys)
    assert code == 0, text
    stimuli = sorted((tmp_path / "audit" / "studies" / "pilot").rglob("*.png"))
    assert len(stimuli) >= 8


def _label_map(folder: Path, names) -> Path:
    """ImageNet classes for the four Fashion-MNIST classes: purse, sweatshirt, running shoe, jean."""
    index = {"Bag": 748, "Pullover": 841, "Sneaker": 770, "Trouser": 608}
    p = folder / "label_map.csv"
    p.write_text("".join(f"{n},{index[n]}\n" for n in names))
    return p


def test_import_with_images_from_shards(src, tmp_path, capsys):
    from audit import load

    keys = src["keys"][:40]
    labels = [src["names"][v] for v in src["labels"][:40]]
    rng = np.random.default_rng(0)
    rows = [{"maker": m, "image": k, "label": lab,
             "predicted": lab if rng.random() < 0.7 else src["names"][(src["names"].index(lab) + 1) % 4]}
            for m in ("net_a", "net_b", "net_c") for k, lab in zip(keys, labels, strict=True)]
    table = tmp_path / "decisions.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    code, text = invoke(["import", table, "--images", f"wds:{src['wds_val']}", "--out", tmp_path / "imp"], capsys)
    assert code == 0, text
    result = load(tmp_path / "imp")
    i = int(np.flatnonzero(result.images["image_key"].astype(str) == "img00013")[0])
    expected = np.asarray(Image.open(io.BytesIO(src["encoded"][13])).convert("RGB"))
    assert np.array_equal(np.asarray(result.image(i)), expected)

    for row in rows:  # every maker decides an image whose key the shards do not have
        row["image"] = "img99999" if row["image"] == keys[0] else row["image"]
    pd.DataFrame(rows).to_csv(table, index=False)
    code, text = invoke(["import", table, "--images", f"wds:{src['wds_val']}", "--out", tmp_path / "imp2"], capsys)
    assert code == 2 and "'img99999'" in text and len(text.splitlines()) == 1, text
    assert not (tmp_path / "imp2").exists()
