"""ImageNet-1k validation sets: synset-named folders, or the flat official folder with a ground-truth file.

Class indices follow timm's ImageNet-1k order (sorted WordNet ids from timm's bundled
`ImageNetInfo`; nothing is downloaded). Only file lists and labels are built here;
decoding belongs to the decode cache. `read_ground_truth` lists the accepted formats.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from audit.data.base import IMAGE_EXTENSIONS, Dataset, DatasetError, Split, check_image
from audit.data.registry import register_dataset

WNID = re.compile(r"^n\d{8}$")
GROUND_TRUTH_NAMES = (
    "ILSVRC2012_validation_ground_truth.txt",
    "LOC_val_solution.csv",
    "val.txt",
    "ground_truth.txt",
    "val_labels.txt",
    "labels.txt",
)


@lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k WordNet ids in class-index order (timm's bundled list)."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_names())


@lru_cache(maxsize=1)
def imagenet_synset_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(imagenet_synsets())}


def imagenet_description(index: int) -> str:
    """A short readable name for an ImageNet-1k class index, e.g. 281 -> 'tabby, tabby cat'."""
    from timm.data import ImageNetInfo

    return ImageNetInfo().index_to_description(index)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _synset_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and WNID.match(d.name))


# --------------------------------------------------------------------------- synset folders
def _scan_synset_split(folder: Path, classes: list[str] | None) -> tuple[list[str], list[str], list[int]]:
    found = _synset_dirs(folder)
    index1k = imagenet_synset_index()
    unknown = [w for w in found if w not in index1k]
    if unknown:
        raise DatasetError(
            f"imagenet: {folder}/{unknown[0]} is not an ImageNet-1k synset "
            f"({len(unknown)} such folders); use imagefolder:PATH for other class sets"
        )
    classes = classes or found
    pos = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for w in found:
        if w not in pos:
            raise DatasetError(f"imagenet: {folder}/{w} is a class that the train split does not have")
        for f in sorted((folder / w).rglob("*")):
            if f.is_file() and _is_image(f.name):
                paths.append(str(f))
                labels.append(pos[w])
    return classes, paths, labels


# --------------------------------------------------------------------------- ground-truth files
def read_devkit_meta(path: str | Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id, from the devkit's `meta.mat` (leaf synsets only, as torchvision does)."""
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(path), squeeze_me=True)["synsets"]
    except Exception as exc:  # scipy raises several types for a bad file
        raise DatasetError(
            f"imagenet: cannot read devkit meta file {path} ({type(exc).__name__}: {exc})"
        ) from None
    out = {}
    for s in np.atleast_1d(synsets):
        if int(s["num_children"]) == 0:
            out[int(s["ILSVRC2012_ID"])] = str(s["WNID"])
    return out


def _find_meta(gt_path: Path) -> Path | None:
    for cand in (
        gt_path.parent / "meta.mat",
        gt_path.parent.parent / "data" / "meta.mat",
        gt_path.parent / "data" / "meta.mat",
    ):
        if cand.is_file():
            return cand
    return None


def _label_to_index(token: str, where: str) -> int:
    """A WordNet id or a 0-based sorted-synset index -> ImageNet-1k index."""
    index1k = imagenet_synset_index()
    if WNID.match(token):
        if token not in index1k:
            raise DatasetError(f"imagenet: {where}: {token} is not an ImageNet-1k synset")
        return index1k[token]
    try:
        value = int(token)
    except ValueError:
        raise DatasetError(
            f"imagenet: {where}: expected a WordNet id or a class index, found {token!r}"
        ) from None
    if not 0 <= value < 1000:
        raise DatasetError(f"imagenet: {where}: class index {value} is outside 0..999")
    return value


def read_ground_truth(path: str | Path, files: list[str], *, meta: str | Path | None = None) -> np.ndarray:
    """Labels (ImageNet-1k indices, shape (n_images,)) for `files` (sorted names) from a ground-truth file.

    Accepted formats:

    - one label per line, in sorted file-name order: a WordNet id (`n01751748`), or the
      devkit's ILSVRC2012_ID (1..1000, `ILSVRC2012_validation_ground_truth.txt`), which is
      translated through the devkit's `meta.mat` (found next to the file or in `../data/`, or
      passed as `meta=`): the devkit's ids are *not* timm's class indices;
    - two columns `FILE LABEL` (spaces or a comma), rows in any order, as in Caffe's `val.txt`:
      LABEL is a WordNet id or a 0-based index in sorted-synset (timm) order;
    - Kaggle's `LOC_val_solution.csv` (`ImageId,PredictionString`; the first token of
      PredictionString is the WordNet id).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"imagenet: ground-truth file {path} does not exist")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise DatasetError(f"imagenet: ground-truth file {path} is empty")
    rows = [
        re.split(r"[,\s]+", ln, maxsplit=1) if ("," in ln or " " in ln or "\t" in ln) else [ln]
        for ln in lines
    ]
    if all(len(r) == 1 for r in rows):
        return _one_label_per_line([r[0] for r in rows], path, files, meta)
    if rows[0][0].lower() in ("imageid", "image", "file", "filename", "path") or not _looks_like_label(
        rows[0][1]
    ):
        rows = rows[1:]  # a header
    by_name: dict[str, int] = {}
    for i, r in enumerate(rows):
        if len(r) != 2:
            raise DatasetError(f"imagenet: {path} line {i + 1}: expected FILE LABEL, found {' '.join(r)!r}")
        name, label = r[0], r[1].split()[0]
        by_name[Path(name).name] = _label_to_index(label, f"{path.name} line {i + 1}")
    labels = []
    for f in files:
        base = Path(f).name
        lab = by_name.get(base, by_name.get(Path(base).stem))
        if lab is None:
            raise DatasetError(
                f"imagenet: {path} has no label for {base} ({len(by_name)} labels in the file)"
            )
        labels.append(lab)
    return np.asarray(labels, dtype=np.int64)


def _looks_like_label(token: str) -> bool:
    first = token.split()[0] if token.split() else ""
    return bool(WNID.match(first)) or first.isdigit()


def _one_label_per_line(tokens: list[str], path: Path, files: list[str], meta) -> np.ndarray:
    if len(tokens) != len(files):
        raise DatasetError(
            f"imagenet: {path} has {len(tokens)} labels but the folder has {len(files)} images; "
            "one label per line, in sorted file-name order, is expected"
        )
    if all(WNID.match(t) for t in tokens):
        return np.asarray([_label_to_index(t, path.name) for t in tokens], dtype=np.int64)
    if not all(t.isdigit() for t in tokens):
        bad = next(t for t in tokens if not (t.isdigit() or WNID.match(t)))
        raise DatasetError(
            f"imagenet: {path}: expected a WordNet id or an ILSVRC2012_ID per line, found {bad!r}"
        )
    meta = Path(meta) if meta is not None else _find_meta(path)
    if meta is None:
        raise DatasetError(
            f"imagenet: {path} holds the devkit's ILSVRC2012_IDs, which are not timm's class indices; put the "
            "devkit's meta.mat next to it (or pass meta=PATH), or give a file of WordNet ids or FILE LABEL pairs"
        )
    id_to_wnid = read_devkit_meta(meta)
    index1k = imagenet_synset_index()
    out = []
    for i, t in enumerate(tokens):
        wnid = id_to_wnid.get(int(t))
        if wnid is None or wnid not in index1k:
            raise DatasetError(
                f"imagenet: {path} line {i + 1}: ILSVRC2012_ID {t} is not a 1k class in {meta}"
            )
        out.append(index1k[wnid])
    return np.asarray(out, dtype=np.int64)


def _find_ground_truth(folder: Path) -> Path | None:
    for base in (folder, folder.parent):
        for name in GROUND_TRUTH_NAMES:
            if (base / name).is_file():
                return base / name
        for devkit in sorted(base.glob("ILSVRC2012_devkit*/data/ILSVRC2012_validation_ground_truth.txt")):
            return devkit
    return None


# --------------------------------------------------------------------------- loader
def _verify(paths: list[str], labels: list[int], split: str, skipped: list[dict], workers: int):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(check_image, paths))
    keep = [i for i, why in enumerate(reasons) if why is None]
    skipped.extend({"path": paths[i], "split": split, "reason": why} for i, why in enumerate(reasons) if why)
    return [paths[i] for i in keep], [labels[i] for i in keep]


@register_dataset(prefix="imagenet:")
def load_imagenet(
    path: str | Path,
    *,
    ground_truth: str | Path | None = None,
    meta: str | Path | None = None,
    verify: bool = True,
    workers: int = 8,
) -> Dataset:
    """An ImageNet-1k style validation set, labelled with ImageNet-1k synsets.

    Layouts:

    - synset folders: PATH/<wnid>/*.JPEG, or PATH/val/<wnid>/ (with an optional
      PATH/train/<wnid>/). The classes are the synsets present, sorted; when all
      1,000 are present they are exactly ImageNet-1k's classes in index order.
      Subsets (ImageNet-R, -A, a few classes) keep only their own synsets.
    - flat: PATH/*.JPEG (the official validation folder) plus a ground-truth file
      (see the module docstring). The classes are all 1,000 synsets.

    Files that do not decode are skipped and listed in `Dataset.skipped`.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"imagenet: {root} does not exist or is not a folder")
    skipped: list[dict] = []
    val_dir = root / "val" if (root / "val").is_dir() and _synset_dirs(root / "val") else root
    if _synset_dirs(val_dir):
        train_dir = root / "train"
        classes, train = None, None
        if val_dir != root and train_dir.is_dir() and _synset_dirs(train_dir):
            classes, tpaths, tlabels = _scan_synset_split(train_dir, None)
        classes, vpaths, vlabels = _scan_synset_split(val_dir, classes)
        if not vpaths:
            raise DatasetError(f"imagenet: the synset folders in {val_dir} hold no images")
        if verify:
            vpaths, vlabels = _verify(vpaths, vlabels, "val", skipped, workers)
        if classes is not None and val_dir != root and train_dir.is_dir() and _synset_dirs(train_dir):
            if verify:
                tpaths, tlabels = _verify(tpaths, tlabels, "train", skipped, workers)
            train = Split(np.asarray(tlabels), paths=tpaths) if tpaths else None
        if not vpaths:
            raise DatasetError(f"imagenet: none of the images in {val_dir} could be decoded")
        layout = "synset folders"
    else:
        files = sorted(f.name for f in root.iterdir() if f.is_file() and _is_image(f.name))
        if not files:
            raise DatasetError(f"imagenet: {root} holds neither synset folders (n01440764/, ...) nor images")
        gt = Path(ground_truth).expanduser() if ground_truth is not None else _find_ground_truth(root)
        if gt is None:
            raise DatasetError(
                f"imagenet: {root} is a flat folder of {len(files)} images but no ground-truth file was found; "
                f"put one of {', '.join(GROUND_TRUTH_NAMES[:3])} next to it or pass ground_truth=FILE"
            )
        labels = read_ground_truth(gt, files, meta=meta)
        vpaths = [str(root / f) for f in files]
        vlabels = list(labels)
        if verify:
            vpaths, vlabels = _verify(vpaths, vlabels, "val", skipped, workers)
        classes, train = list(imagenet_synsets()), None
        layout = f"flat, labels from {gt.name}"
    return Dataset(
        name=f"imagenet:{root}",
        classes=list(classes),
        val=Split(np.asarray(vlabels, dtype=np.int64), paths=vpaths),
        train=train,
        skipped=skipped,
        origin=f"{root} ({layout})",
        root=str(Path(root).resolve()),
    )
