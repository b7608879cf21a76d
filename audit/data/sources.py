"""Dataset sources: each turns a dataset name into labelled train and validation splits.

A split holds either decoded uint8 images (small array datasets) or file paths
(ImageFolder and ImageNet-style trees, decoded later by the decode cache).
Sources read local files first and fall back to torchvision's real downloads.
Nothing here trains, predicts or prints. Each loader registers with `@register_dataset`
(audit.data.registry), and `load_dataset` and `list_datasets` are importable from here too,
as are `Dataset`, `Split` and `DatasetError` (audit.data.base).
"""

from __future__ import annotations

import gzip
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from audit.data.base import IMAGE_EXTENSIONS, Dataset, DatasetError, Split, check_image
from audit.data.registry import list_datasets, load_dataset, register_dataset  # noqa: F401  (importable from here)

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def skipped_files_notes(skipped: list[dict], classes: list[str], val_labels: np.ndarray) -> list[str]:
    """Say how many files could not be decoded, and which classes lost every validation image."""
    from audit.data.links import is_link_skip

    if not skipped:
        return []
    links = [f for f in skipped if is_link_skip(f)]
    skipped = [f for f in skipped if not is_link_skip(f)]
    notes = []
    if links:
        notes.append(f"skipped {len(links)} symbolic {'link' if len(links) == 1 else 'links'} that "
                     "leave the dataset folder (--follow-symlinks audits them); manifest.json lists them under "
                     "dataset.skipped")
    if skipped:
        by_split = {s: sum(1 for f in skipped if f.get("split") == s) for s in ("val", "train")}
        parts = ", ".join(f"{n} {s}" for s, n in by_split.items() if n)
        notes.append(f"skipped {len(skipped)} {'file' if len(skipped) == 1 else 'files'} that could not be "
                     f"decoded ({parts}); manifest.json lists them under dataset.skipped")
    empty = [c for i, c in enumerate(classes) if not np.any(np.asarray(val_labels) == i)]
    if empty:
        notes.append(f"no readable validation image in {', '.join(empty)}: "
                     f"{'that class is' if len(empty) == 1 else 'those classes are'} not audited")
    return notes


# --------------------------------------------------------------------------- IDX (MNIST family)
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as used by MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path} is not an IDX file")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[data[2]]
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {arr.size} values")
    return arr.reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def _idx_dataset(folder: Path, name: str, classes: list[str], origin: str) -> Dataset | None:
    files = {}
    for key, stem in {
        "train_x": "train-images-idx3-ubyte",
        "train_y": "train-labels-idx1-ubyte",
        "val_x": "t10k-images-idx3-ubyte",
        "val_y": "t10k-labels-idx1-ubyte",
    }.items():
        p = _find_idx(folder, stem)
        if p is None:
            return None
        files[key] = p
    return Dataset(
        name=name,
        classes=classes,
        train=Split(read_idx(files["train_y"]), images=read_idx(files["train_x"])[..., None]),
        val=Split(read_idx(files["val_y"]), images=read_idx(files["val_x"])[..., None]),
        origin=origin,
    )


def _torchvision_mnist(cls_name: str, root: Path, download: bool) -> Path:
    """Use torchvision's real download; return the folder holding the raw IDX files."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    cls(root=str(root), train=True, download=download)
    return root / cls_name / "raw"


def _mnist_like(name: str, tv_name: str, classes: list[str], data_root: Path | None, download: bool,
                system_dir: Path | None = None) -> Dataset:
    tried = []
    candidates = []
    if data_root is not None:
        candidates += [data_root, data_root / tv_name / "raw"]
    if system_dir is not None:
        candidates.append(system_dir)
    for folder in candidates:
        ds = _idx_dataset(folder, name, classes, origin=str(folder)) if folder.is_dir() else None
        if ds is not None:
            return ds
        tried.append(str(folder))
    root = data_root or _default_download_root()
    if download:
        try:
            raw = _torchvision_mnist(tv_name, root, download=True)
            ds = _idx_dataset(raw, name, classes, origin=f"torchvision download into {root}")
            if ds is not None:
                return ds
        except Exception as exc:  # network errors come in many types
            tried.append(f"torchvision download into {root} ({type(exc).__name__}: {exc})")
    hint = " install the Debian package dataset-fashion-mnist, or" if system_dir is not None else ""
    raise DatasetError(
        f"{name}: no IDX files found (looked in: {'; '.join(tried) or 'nowhere'}). To fix:{hint} "
        f"pass --data-root DIR holding the four IDX files, or run once with internet so torchvision can download them"
    )


def _default_download_root() -> Path:
    return Path(os.environ.get("DDD_AUDIT_DATA", Path.home() / ".cache" / "ddd-audit" / "data"))


@register_dataset("fashion-mnist")
def load_fashion_mnist(data_root: Path | None = None, download: bool = True) -> Dataset:
    """Fashion-MNIST: the Debian package's IDX files when present, else torchvision's download."""
    return _mnist_like("fashion-mnist", "FashionMNIST", FASHION_MNIST_CLASSES, data_root, download,
                       system_dir=FASHION_MNIST_SYSTEM_DIR)


@register_dataset("mnist")
def load_mnist(data_root: Path | None = None, download: bool = True) -> Dataset:
    """MNIST from IDX files under --data-root, else torchvision's download."""
    return _mnist_like("mnist", "MNIST", [str(i) for i in range(10)], data_root, download)


# --------------------------------------------------------------------------- CIFAR
def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.asarray(entry[label_key], dtype=np.int64)


def _cifar(name: str, data_root: Path | None, download: bool) -> Dataset:
    if name == "cifar10":
        folder_name, train_files, val_files, label_key, meta = (
            "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta")
    else:
        folder_name, train_files, val_files, label_key, meta = (
            "cifar-100-python", ["train"], ["test"], "fine_labels", "meta")
    root = data_root or _default_download_root()
    folder = root / folder_name if (root / folder_name).is_dir() else root
    if not all((folder / f).exists() for f in train_files + val_files):
        if not download:
            raise DatasetError(f"{name}: {folder_name}/ not found under {root}; pass --data-root DIR that holds it")
        try:
            import torchvision.datasets as tvd

            (tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100)(root=str(root), train=True, download=True)
        except Exception as exc:
            raise DatasetError(
                f"{name}: {folder_name}/ not found under {root} and torchvision's download failed "
                f"({type(exc).__name__}); pass --data-root DIR that holds {folder_name}/"
            ) from None
        folder = root / folder_name

    def read(files):
        parts = [_read_cifar_batch(folder / f, label_key) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    tx, ty = read(train_files)
    vx, vy = read(val_files)
    classes = CIFAR10_CLASSES
    if (folder / meta).exists():
        with open(folder / meta, "rb") as f:
            m = pickle.load(f, encoding="latin1")
        classes = m.get("label_names") or m.get("fine_label_names") or classes
    return Dataset(name=name, classes=list(classes), train=Split(ty, images=tx), val=Split(vy, images=vx),
                   origin=str(folder))


@register_dataset("cifar10")
def load_cifar10(data_root: Path | None = None, download: bool = True) -> Dataset:
    """CIFAR-10 from the python pickle batches under --data-root, else torchvision's download."""
    return _cifar("cifar10", data_root, download)


@register_dataset("cifar100")
def load_cifar100(data_root: Path | None = None, download: bool = True) -> Dataset:
    """CIFAR-100 (fine labels) from the python pickles under --data-root, else torchvision's download."""
    return _cifar("cifar100", data_root, download)


# --------------------------------------------------------------------------- generated and bundled
@register_dataset("gaussian")
def load_gaussian(
    data_root: Path | None = None,
    download: bool = True,
    *,
    n_classes: int = 100,
    n_train_per_class: int = 300,
    n_val_per_class: int = 500,
    image_size: int = 16,
    random_state: int = 0,
) -> Dataset:
    """The Gaussian-noise control dataset (meding2022 §2, A.4–A.5).

    Pixel-wise uncorrelated noise in each RGB channel; class i (1-based) has
    mean 128 and standard deviation sigma = i, clipped to [0, 255] and rounded.
    The paper used 20,000 train and 50 (or 500) test images per class. The
    defaults here (300 train, 500 test per class, 16 x 16 px) fit a few minutes
    of CPU training; 500 test images per class, as in A.5, keep the per-class
    accuracies precise enough to compare with eq. (1). Trained variants see the
    pixels through the "symlog" input transform (audit.running.train.INPUT_TRANSFORMS).
    """
    if n_classes < 2 or n_train_per_class < 1 or n_val_per_class < 1 or image_size < 1:
        raise DatasetError("gaussian needs n_classes >= 2 and positive sizes")
    rng = np.random.default_rng(random_state)

    def make(per_class):
        labels = np.repeat(np.arange(n_classes), per_class)
        sigma = (labels + 1).astype(np.float32)[:, None, None, None]
        noise = rng.standard_normal((len(labels), image_size, image_size, 3), dtype=np.float32)
        return np.clip(np.rint(128.0 + sigma * noise), 0, 255).astype(np.uint8), labels

    tx, ty = make(n_train_per_class)
    vx, vy = make(n_val_per_class)
    return Dataset(
        name="gaussian",
        classes=[f"sigma={i + 1}" for i in range(n_classes)],
        train=Split(ty, images=tx),
        val=Split(vy, images=vx),
        origin=f"generated (seed {random_state})",
        input_transform="symlog",
    )


@register_dataset("digits")
def load_digits(data_root: Path | None = None, download: bool = True, *, random_state: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits, split 2:1 into train and val with a fixed seed (for fast tests)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(random_state).permutation(len(labels))
    n_val = len(labels) // 3
    val, train = order[:n_val], order[n_val:]
    return Dataset(
        name="digits",
        classes=[str(i) for i in range(10)],
        train=Split(labels[train], images=images[train]),
        val=Split(labels[val], images=images[val]),
        origin="sklearn.datasets.load_digits",
    )


# --------------------------------------------------------------------------- ImageFolder
def _scan_split(folder: Path, classes: list[str] | None, *, root: Path | None = None, follow_symlinks: bool = False,
                skipped: list[dict] | None = None) -> tuple[list[str], list[str], list[int]]:
    from audit.data.links import walk_images  # the one symlink policy (docs/security.md)

    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = classes or found
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for c in found:
        if c not in index:
            raise DatasetError(f"{folder}/{c} is a class that the train split does not have")
        for path in walk_images(folder / c, root or folder.parent, follow_symlinks=follow_symlinks,
                                skipped=skipped, split=folder.name):
            paths.append(path)
            labels.append(index[c])
    return classes, paths, labels


@register_dataset(prefix="imagefolder:")
def load_imagefolder(root: str | Path, *, verify: bool = True, workers: int = 8,
                     follow_symlinks: bool = False) -> Dataset:
    """An ImageFolder tree: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg.

    A val/ folder alone is allowed (for audits with pretrained models only).
    Files that do not decode are skipped and listed in `Dataset.skipped`, and so are images behind
    symbolic links that leave ROOT unless `follow_symlinks` (audit.data.links).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"imagefolder: {root} does not exist or is not a folder")
    val_dir = root / "val"
    if not val_dir.is_dir():
        raise DatasetError(f"imagefolder: {root} has no val/ folder; expected ROOT/val/<class>/<image> (and ROOT/train/)")
    train_dir = root / "train"
    classes = None
    train = None
    skipped: list[dict] = []
    if train_dir.is_dir():
        classes, tpaths, tlabels = _scan_split(train_dir, None, root=root, follow_symlinks=follow_symlinks,
                                               skipped=skipped)
    vclasses, vpaths, vlabels = _scan_split(val_dir, classes, root=root, follow_symlinks=follow_symlinks,
                                            skipped=skipped)
    classes = classes or vclasses
    if not vpaths:
        raise DatasetError(f"imagefolder: {val_dir} holds no images (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    if len(classes) < 2:
        raise DatasetError(f"imagefolder: {root} has only one class ({classes[0]!r}); an audit needs at least two")

    def keep(paths, labels, split):
        if not verify:
            return paths, labels
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(pool.map(check_image, paths))
        good_p, good_l = [], []
        for p, lab, why in zip(paths, labels, reasons, strict=True):
            if why is None:
                good_p.append(p)
                good_l.append(lab)
            else:
                skipped.append({"path": p, "split": split, "reason": why})
        return good_p, good_l

    vpaths, vlabels = keep(vpaths, vlabels, "val")
    if not vpaths:
        raise DatasetError(f"imagefolder: none of the images in {val_dir} could be decoded")
    if train_dir.is_dir():
        tpaths, tlabels = keep(tpaths, tlabels, "train")
        if tpaths:
            train = Split(np.array(tlabels), paths=tpaths)
    return Dataset(
        name=f"imagefolder:{root}",
        classes=list(classes),
        val=Split(np.array(vlabels), paths=vpaths),
        train=train,
        skipped=skipped,
        origin=str(root),
        root=str(root.resolve()),
    )
