"""One set of encoded images written four ways: an ImageFolder tree, a `datasets` folder (save_to_disk),
Parquet files and WebDataset shards. Each writer uses the field's own library."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist_images(n: int, *, seed: int = 0, classes: tuple[int, ...] = (8, 2, 7, 1)):
    """`n` real Fashion-MNIST test images of `classes` (encoded alternately as PNG and JPEG) and their labels
    (indices into `classes`; the default classes are Bag, Pullover, Sneaker, Trouser: sorted, as ImageFolder
    sorts its class folders)."""
    from PIL import Image

    from audit.data.sources import FASHION_MNIST_CLASSES, read_idx

    x = read_idx(FMNIST / "t10k-images-idx3-ubyte.gz")
    y = read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz")
    pick = np.flatnonzero(np.isin(y, classes))
    pick = np.sort(np.random.default_rng(seed).choice(pick, n, replace=False))
    encoded, exts = [], []
    for k, i in enumerate(pick):
        buf = io.BytesIO()
        fmt = "PNG" if k % 2 == 0 else "JPEG"
        Image.fromarray(x[i]).convert("RGB").save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        encoded.append(buf.getvalue())
        exts.append("png" if fmt == "PNG" else "jpg")
    labels = np.array([classes.index(int(c)) for c in y[pick]], dtype=np.int64)
    names = [FASHION_MNIST_CLASSES[c].replace("/", "-") for c in classes]
    return encoded, exts, labels, names


def write_imagefolder(root: Path, split: str, encoded, exts, labels, names, keys) -> None:
    for data, ext, lab, key in zip(encoded, exts, labels, keys, strict=True):
        folder = root / split / names[lab]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{key}.{ext}").write_bytes(data)


def hf_split(encoded, labels, names):
    """A `datasets.Dataset` with an Image and a ClassLabel column (the image bytes as given)."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in encoded], "label": [int(v) for v in labels]},
        features=features)


def write_hf(folder: Path, splits: dict) -> None:
    """save_to_disk of a DatasetDict: {split: (encoded, labels, names)}."""
    import datasets

    datasets.DatasetDict({s: hf_split(*v) for s, v in splits.items()}).save_to_disk(str(folder))


def write_parquet(folder: Path, stem: str, encoded, labels, names, *, n_files: int = 2) -> list[Path]:
    """`datasets`' to_parquet: Image structs {'bytes', 'path'}, ClassLabel names in the schema metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = hf_split(encoded, labels, names)
    files = []
    for i in range(n_files):
        f = folder / f"{stem}-{i:05d}-of-{n_files:05d}.parquet"
        ds.shard(n_files, i, contiguous=True).to_parquet(str(f))
        files.append(f)
    return files


def write_wds(folder: Path, stem: str, encoded, exts, labels, keys, *, n_shards: int = 2,
              label: str = "cls") -> str:
    """WebDataset shards with webdataset's TarWriter; returns the brace pattern. `label`: cls or json."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(encoded) // n_shards)
    for s in range(n_shards):
        with wds.TarWriter(str(folder / f"{stem}-{s:06d}.tar")) as sink:
            for i in range(s * per, min(len(encoded), (s + 1) * per)):
                sample = {"__key__": keys[i], exts[i]: encoded[i]}
                if label == "cls":
                    sample["cls"] = int(labels[i])
                else:
                    sample["json"] = {"label": int(labels[i])}
                sink.write(sample)
    return str(folder / f"{stem}-{{{0:06d}..{n_shards - 1:06d}}}.tar")


def write_raw_tar(path: Path, members: dict[str, bytes]) -> None:
    """A tar file of the members given, as they are (for shards that break a rule)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_all(root: Path, n_val: int = 200, n_train: int = 100) -> dict:
    """The same images as an ImageFolder, a saved `datasets` dataset, Parquet files and WebDataset shards."""
    encoded, exts, labels, names = fashion_mnist_images(n_val + n_train)
    val = slice(0, n_val)
    train = slice(n_val, n_val + n_train)
    vkeys = [f"img{i:05d}" for i in range(n_val)]
    tkeys = [f"img{i:05d}" for i in range(n_val, n_val + n_train)]
    write_imagefolder(root / "folder", "val", encoded[val], exts[val], labels[val], names, vkeys)
    write_imagefolder(root / "folder", "train", encoded[train], exts[train], labels[train], names, tkeys)
    write_hf(root / "hf", {"validation": (encoded[val], labels[val], names),
                           "train": (encoded[train], labels[train], names)})
    write_parquet(root / "parquet", "validation", encoded[val], labels[val], names)
    write_parquet(root / "parquet", "train", encoded[train], labels[train], names)
    vpat = write_wds(root / "wds", "val", encoded[val], exts[val], labels[val], vkeys)
    tpat = write_wds(root / "wds", "train", encoded[train], exts[train], labels[train], tkeys)
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    return {"encoded": encoded[val], "labels": labels[val], "names": names, "keys": vkeys,
            "folder": root / "folder", "hf": root / "hf", "parquet_val": str(root / "parquet" / "validation-*.parquet"),
            "parquet_train": str(root / "parquet" / "train-*.parquet"), "wds_val": vpat, "wds_train": tpat,
            "classes": root / "classes.txt"}
