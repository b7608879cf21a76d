"""ImageNet layouts (synset folders, the flat official folder with each ground-truth format) and the
subset restriction, with the real efficientnet_lite0 weights on crops of scikit-image's photos."""

from __future__ import annotations

import numpy as np
import pytest

from audit.data.imagenet import imagenet_synsets, load_imagenet, read_ground_truth
from audit.data.sources import DatasetError, load_dataset
from audit.models.heads import HeadPlan, softmax
from audit.running.jobs import JobContext, pretrained_jobs
from tests.test_imagenet_photos import CAT_CLASSES, PHOTOS, crops, write_crops

N_PER_PHOTO = 4


@pytest.fixture(scope="module")
def synset_tree(tmp_path_factory):
    """ROOT/val/<wnid>/*.jpg for three synsets (a subset of ImageNet-1k), 4 crops each."""
    root = tmp_path_factory.mktemp("imagenet_synsets")
    for i, (name, (wnid, _)) in enumerate(sorted(PHOTOS.items())):
        write_crops(root / "val" / wnid, name, N_PER_PHOTO, seed=i)
    return root


@pytest.fixture(scope="module")
def flat_tree(tmp_path_factory):
    """The official flat layout: ILSVRC2012_val_%08d.JPEG, photos interleaved; returns (root, wnids in file order)."""
    root = tmp_path_factory.mktemp("imagenet_flat")
    (root / "val").mkdir()
    images, wnids = [], []
    for i, (name, (wnid, _)) in enumerate(sorted(PHOTOS.items())):
        for img in crops(name, 2, seed=10 + i):
            images.append(img)
            wnids.append(wnid)
    order = np.random.default_rng(0).permutation(len(images))
    for k, j in enumerate(order, start=1):
        images[j].save(root / "val" / f"ILSVRC2012_val_{k:08d}.JPEG", quality=90)
    return root / "val", [wnids[j] for j in order]


def test_synset_list_is_timms_sorted_1k():
    syn = imagenet_synsets()
    assert len(syn) == 1000 and list(syn) == sorted(syn)
    assert syn[281] == "n02123045" and syn[967] == "n07920052"


def test_synset_folders_load_as_a_sorted_subset(synset_tree):
    ds = load_dataset(f"imagenet:{synset_tree}")
    assert ds.classes == sorted(w for w, _ in PHOTOS.values())
    assert len(ds.val) == 3 * N_PER_PHOTO and ds.train is None and ds.skipped == []
    for path, label in zip(ds.val.paths, ds.val.labels, strict=True):
        assert f"/{ds.classes[label]}/" in path


def test_subset_restricts_the_logits(synset_tree):
    ds = load_imagenet(synset_tree)
    (job,) = pretrained_jobs(["efficientnet_lite0"], ds)
    assert job.head.kind == "subset"
    assert job.head.class_indices == tuple((i,) for _, i in sorted(PHOTOS.values()))  # 281, 657, 967
    out = job.run(JobContext(dataset=ds, device="cpu"))
    assert out.record["head"] == "subset"
    # every photo's crops are recognised once the decision is restricted to the three synsets,
    # although unrestricted lite0 calls the rocket a drilling platform (540), not a missile (657)
    assert out.record["accuracy"] == 1.0
    assert set(out.decisions["predicted"]) <= {0, 1, 2}


def test_subset_probabilities_are_the_softmax_of_the_restricted_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 1000))
    head = HeadPlan("subset", ((657,), (281,), (967,)))
    p = head.probabilities(logits)
    by_hand = np.exp(logits[:, [657, 281, 967]])
    np.testing.assert_allclose(p, by_hand / by_hand.sum(1, keepdims=True))
    np.testing.assert_allclose(HeadPlan("imagenet").probabilities(logits), softmax(logits))


def _write_gt(folder, fmt, files, wnids):
    idx = {w: i for i, w in enumerate(imagenet_synsets())}
    if fmt == "wnid_per_line":
        (folder / "ground_truth.txt").write_text("\n".join(wnids) + "\n")
        return folder / "ground_truth.txt"
    if fmt == "caffe_val_txt":  # FILE LABEL with 0-based sorted-synset indices, shuffled rows
        rows = [f"{f} {idx[w]}" for f, w in zip(files, wnids, strict=True)][::-1]
        (folder / "val.txt").write_text("\n".join(rows) + "\n")
        return folder / "val.txt"
    if fmt == "kaggle_csv":
        rows = ["ImageId,PredictionString"] + [f"{f.split('.')[0]},{w} 10 20 100 120 {w} 5 5 50 50"
                                               for f, w in zip(files, wnids, strict=True)]
        (folder / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
        return folder / "LOC_val_solution.csv"
    if fmt == "devkit_ids":  # ILSVRC2012_IDs in the devkit's own order, translated through meta.mat
        from scipy.io import savemat

        devkit = folder / "devkit" / "data"
        devkit.mkdir(parents=True)
        syn = list(imagenet_synsets())
        ids = {w: 1000 - i for i, w in enumerate(syn)}  # a different order than timm's, as in the real devkit
        dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
        recs = np.array([(ids[w], w, w, "", 0) for w in syn] + [(1001, "n00001740", "entity", "", 3)], dtype=dtype)
        savemat(devkit / "meta.mat", {"synsets": recs})
        gt = devkit / "ILSVRC2012_validation_ground_truth.txt"
        gt.write_text("\n".join(str(ids[w]) for w in wnids) + "\n")
        return gt
    raise ValueError(fmt)


@pytest.mark.parametrize("fmt", ["wnid_per_line", "caffe_val_txt", "kaggle_csv", "devkit_ids"])
def test_flat_layout_reads_each_ground_truth_format(flat_tree, tmp_path, fmt):
    src, wnids = flat_tree
    files = sorted(p.name for p in src.iterdir())
    gt = _write_gt(tmp_path, fmt, files, wnids)
    labels = read_ground_truth(gt, files)
    idx = {w: i for i, w in enumerate(imagenet_synsets())}
    np.testing.assert_array_equal(labels, [idx[w] for w in wnids])
    ds = load_imagenet(src, ground_truth=gt)
    assert ds.classes == list(imagenet_synsets())
    np.testing.assert_array_equal(ds.val.labels, labels)


def test_flat_layout_finds_its_ground_truth_and_classifies(flat_tree, tmp_path):
    import shutil

    src, wnids = flat_tree
    folder = tmp_path / "val"
    shutil.copytree(src, folder)
    files = sorted(p.name for p in folder.iterdir())
    _write_gt(tmp_path, "caffe_val_txt", files, wnids)  # val.txt next to the folder is found by itself
    ds = load_dataset(f"imagenet:{folder}")
    (job,) = pretrained_jobs(["efficientnet_lite0"], ds)
    assert job.head.kind == "imagenet"
    out = job.run(JobContext(dataset=ds, device="cpu"))
    pred = out.decisions.sort_values("image_id")["predicted"].to_numpy()
    for p, w in zip(pred, wnids, strict=True):
        if w == PHOTOS["chelsea"][0]:
            assert p in CAT_CLASSES
        if w == PHOTOS["coffee"][0]:
            assert p in (967, 968)
    assert out.record["accuracy"] == pytest.approx(np.mean(pred == ds.val.labels))
    # torch's resampler: the record says so, and these photos keep their classes
    fast = job.run(JobContext(dataset=ds, device="cpu", resizer="torch"))
    assert fast.record["resizer"] == "torch" and out.record["resizer"] == "pil"
    assert fast.record["preprocessing_key"] == out.record["preprocessing_key"] + "-torch"
    np.testing.assert_array_equal(fast.decisions.sort_values("image_id")["predicted"].to_numpy(), pred)


def test_flat_layout_errors(flat_tree, tmp_path):
    src, wnids = flat_tree
    files = sorted(p.name for p in src.iterdir())
    with pytest.raises(DatasetError, match="no ground-truth file"):
        load_imagenet(src)
    short = tmp_path / "short.txt"
    short.write_text("\n".join(wnids[:-1]) + "\n")
    with pytest.raises(DatasetError, match=f"{len(wnids) - 1} labels but the folder has {len(wnids)}"):
        load_imagenet(src, ground_truth=short)
    ids = tmp_path / "ids" / "ILSVRC2012_validation_ground_truth.txt"
    ids.parent.mkdir()
    ids.write_text("\n".join(str(i + 1) for i in range(len(files))) + "\n")
    with pytest.raises(DatasetError, match="meta.mat"):
        load_imagenet(src, ground_truth=ids)


def test_synset_folder_outside_imagenet_1k_is_refused(tmp_path):
    write_crops(tmp_path / "n99999999", "coffee", 1)
    with pytest.raises(DatasetError, match="not an ImageNet-1k synset"):
        load_imagenet(tmp_path)
