"""Every dataset source on small data built in the test (or shipped by a package)."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from audit.data.sources import (
    FASHION_MNIST_SYSTEM_DIR,
    DatasetError,
    load_dataset,
    read_idx,
)


def write_idx(path, array: np.ndarray, gz: bool = True):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_idx_folder(folder, n_train=20, n_val=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_val, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_val),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, gz=gz)
    return arrays


def test_idx_roundtrip(tmp_path):
    arrays = make_idx_folder(tmp_path, gz=False)
    got = read_idx(tmp_path / "t10k-images-idx3-ubyte")
    np.testing.assert_array_equal(got, arrays["t10k-images-idx3-ubyte"])


def test_truncated_idx_is_an_error(tmp_path):
    make_idx_folder(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(p)


@pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.exists(), reason="the Makefile installs dataset-fashion-mnist")
def test_fashion_mnist_from_debian_package():
    ds = load_dataset("fashion-mnist", download=False)
    assert len(ds.train) == 60000 and len(ds.val) == 10000
    assert ds.val.images.shape == (10000, 28, 28, 1) and ds.val.images.dtype == np.uint8
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert np.bincount(ds.val.labels).tolist() == [1000] * 10  # the real test set is balanced


def test_fashion_mnist_from_data_root(tmp_path):
    arrays = make_idx_folder(tmp_path / "FashionMNIST" / "raw")
    ds = load_dataset("fashion-mnist", data_root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.val.labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.origin.endswith("raw")


def test_mnist_needs_files_or_download(tmp_path):
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("mnist", data_root=tmp_path, download=False)
    arrays = make_idx_folder(tmp_path / "MNIST" / "raw", gz=False)
    ds = load_dataset("mnist", data_root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.train.images[..., 0], arrays["train-images-idx3-ubyte"])


def test_mnist_download_failure_names_both_ways(tmp_path, monkeypatch):
    # torchvision's real download code, pointed at a closed local port so that it fails with or without internet
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", data_root=tmp_path, download=True)
    assert "--data-root" in str(err.value) and "torchvision" in str(err.value)


def write_cifar(root, name, n=12, seed=0):
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels"
        meta = ("batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        files, key = ["train", "test"], "fine_labels"
        meta = ("meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    folder.mkdir(parents=True)
    written = {}
    for f in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / f, "wb") as fh:
            pickle.dump({"data": data, key: labels}, fh)
        written[f] = (data, labels)
    with open(folder / meta[0], "wb") as fh:
        pickle.dump(meta[1], fh)
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_data_root(tmp_path, name):
    written = write_cifar(tmp_path, name)
    ds = load_dataset(name, data_root=tmp_path, download=False)
    test_file = "test_batch" if name == "cifar10" else "test"
    data, labels = written[test_file]
    assert ds.val.images.shape == (12, 32, 32, 3)
    # the pickles store channel planes (R, G, B) of 32x32; check one pixel by hand
    assert ds.val.images[3, 5, 7, 1] == data[3, 1024 + 5 * 32 + 7]
    assert ds.val.labels.tolist() == labels
    assert len(ds.train) == (60 if name == "cifar10" else 12)
    assert ds.classes[1] == ("c1" if name == "cifar10" else "f1")


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("cifar10", data_root=tmp_path, download=False)


def test_gaussian_is_deterministic_and_follows_sigma():
    a = load_dataset("gaussian", n_classes=10, n_train_per_class=5, n_val_per_class=20, image_size=16)
    b = load_dataset("gaussian", n_classes=10, n_train_per_class=5, n_val_per_class=20, image_size=16)
    np.testing.assert_array_equal(a.val.images, b.val.images)
    c = load_dataset("gaussian", n_classes=10, n_train_per_class=5, n_val_per_class=20, image_size=16, random_state=1)
    assert not np.array_equal(a.val.images, c.val.images)
    x = a.val.images.astype(float)
    for i in range(10):  # class i has mean 128 and sigma i + 1 (meding2022 A.5)
        pix = x[a.val.labels == i]
        assert abs(pix.mean() - 128) < 0.5
        assert abs(pix.std() - (i + 1)) < 0.05 * (i + 1) + 0.3


def test_digits():
    ds = load_dataset("digits")
    assert len(ds.val) + len(ds.train) == 1797
    assert ds.val.images.max() == 255 and ds.val.images.shape[1:] == (8, 8, 1)


def make_imagefolder(root, classes=("cat", "dog"), n=3, splits=("train", "val"), size=20):
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{c}_{i}.jpg")
    return root


def test_imagefolder_reads_and_skips_corrupt_files(tmp_path):
    root = make_imagefolder(tmp_path / "ds")
    (root / "val" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = root / "val" / "cat" / "cat_0.jpg"
    (root / "val" / "cat" / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    ds = load_dataset(f"imagefolder:{root}")
    assert ds.classes == ["cat", "dog"]
    assert len(ds.val) == 6 and len(ds.train) == 6
    skipped = sorted(s["path"].rsplit("/", 1)[1] for s in ds.skipped)
    assert skipped == ["broken.jpg", "truncated.jpg"]


def test_imagefolder_val_only(tmp_path):
    root = make_imagefolder(tmp_path / "ds", splits=("val",))
    ds = load_dataset(f"imagefolder:{root}")
    assert ds.train is None and len(ds.val) == 6


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: None, "does not exist"),
        (lambda r: (r / "train").mkdir(parents=True), "no val/"),
        (lambda r: (r / "val" / "a").mkdir(parents=True), "holds no images"),
        (lambda r: make_imagefolder(r, classes=("only",), splits=("val",)), "only one class"),
    ],
)
def test_imagefolder_bad_input(tmp_path, setup, message):
    root = tmp_path / "ds"
    setup(root)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"imagefolder:{root}")


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet21k")
    assert "fashion-mnist" in str(err.value) and "imagefolder:PATH" in str(err.value)
