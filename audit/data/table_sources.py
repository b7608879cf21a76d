"""Image datasets as their owners keep them: Hugging Face `datasets`, Parquet files and WebDataset shards.

`hf:PATH` reads a folder written by `datasets`' `save_to_disk` (or a Hub-cache folder of a dataset),
`parquet:GLOB` Parquet files with an image-bytes column, `wds:PATTERN` WebDataset tar shards
(`val-{000000..000063}.tar`). Each split keeps its images where they are: an `ImageRecords` reads
an image's encoded bytes by position, or streams many in the source's own order, so no source is
held whole in memory. Each image keeps the source's own key: the row index, or WebDataset's
`__key__`. Needs the `sources` extra (`datasets`, `webdataset`).
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

import numpy as np

from audit.data.base import Dataset, DatasetError
from audit.data.registry import register_dataset
from audit.data.table_records import (
    OPTIONS,
    PREFIXES,
    TRAIN_SPLIT,
    VAL_SPLITS,
    WDS_IMAGE_EXTENSIONS,
    ImageRecords,
    _ArrowBackend,
    _classes_from,
    _finish,
    _is_class_label,
    _is_image_feature,
    _label_indices,
    _needs,
    _ParquetBackend,
    _pick_columns,
    _TarBackend,
    _verified,
    read_classes_file,
)


# --------------------------------------------------------------------------- hf:PATH
def _hub_snapshot(path: Path) -> Path | None:
    """The snapshot folder of a Hub-cache folder (datasets--OWNER--NAME or one of its snapshots), else None."""
    repo = path
    if path.parent.name == "snapshots":
        return path if path.parent.parent.name.startswith("datasets--") else None
    if not repo.name.startswith("datasets--") or not (repo / "snapshots").is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file() and (repo / "snapshots" / ref.read_text().strip()).is_dir():
        return repo / "snapshots" / ref.read_text().strip()
    snaps = sorted((p for p in (repo / "snapshots").iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return snaps[-1] if snaps else None


def _empty_saved_splits(root: Path) -> list[str]:
    """The splits of a save_to_disk folder that hold no data file."""
    out = []
    for state in sorted([root / "state.json", *root.glob("*/state.json")]):
        try:
            if state.is_file() and not json.loads(state.read_text()).get("_data_files"):
                out.append(state.parent.name if state.parent != root else "")
        except ValueError:
            continue
    return out


def _pick_split(splits: list[str], split: str | None, where: str) -> str:
    if split is not None:
        if split not in splits:
            raise DatasetError(f"{where}: no split {split!r}; splits: {', '.join(splits)}")
        return split
    found = next((s for s in VAL_SPLITS if s in splits), None)
    if found is None:
        raise DatasetError(f"{where}: no validation split ({', '.join(VAL_SPLITS)}); pick one with --split "
                           f"(splits: {', '.join(splits)})")
    return found


def load_hf(path: str, *, split: str | None = None, train_split: str | None = None, image_column: str | None = None,
            label_column: str | None = None, classes: str | None = None, verify: bool = True,
            workers: int = 8) -> Dataset:
    """A dataset saved with `datasets`' `save_to_disk`, or a local Hub-cache folder of a dataset (Parquet files).

    The validation split is --split (default: validation, val, valid or test); the training split is
    --train-split (default: train, when there is one). Keys are row indices within the split.
    """
    where = f"hf:{path}"
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{where}: no such folder")
    hf = _needs("datasets")
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        try:
            obj = hf.load_from_disk(str(root))
        except Exception as exc:  # datasets raises many types for a damaged folder
            empty = _empty_saved_splits(root)
            if empty:  # datasets saves an empty split without data files and cannot load it back
                raise DatasetError(f"{where}: split {empty[0]!r} is empty") from None
            raise DatasetError(f"{where}: datasets.load_from_disk failed ({type(exc).__name__}: {exc})") from None
        parts = dict(obj) if isinstance(obj, hf.DatasetDict) else {"": obj}
        if "" in parts:
            if split not in (None, ""):
                raise DatasetError(f"{where} is a single split saved alone; leave out --split")
            vname, tname = "", None
            if train_split:
                raise DatasetError(f"{where} is a single split saved alone, so it has no --train-split")
        else:
            vname = _pick_split(list(parts), split, where)
            tname = train_split if train_split is not None else (TRAIN_SPLIT if TRAIN_SPLIT in parts else None)
            if tname is not None and tname not in parts:
                raise DatasetError(f"{where}: no split {tname!r} (--train-split); splits: {', '.join(parts)}")
            if tname == vname:
                tname = None
        features = parts[vname].features
        img, lab = _pick_columns(features, image_column, label_column, where, _is_image_feature, _is_class_label)
        names = _classes_from(features[lab], classes)
        skipped: list[dict] = []

        def build(name: str, split_name: str):
            ds = parts[name]
            w = f"{where} split {split_name!r}" if name else where
            if len(ds) == 0:
                raise DatasetError(f"{w} is empty")
            for col in (img, lab):
                if col not in ds.features:
                    raise DatasetError(f"{w}: no column {col!r}; columns: {', '.join(ds.features)}")
            values = ds.select_columns([lab]).with_format("arrow")[:].column(0).to_pylist()
            labels, found = _label_indices(values, names, w, lab)
            backend = _ArrowBackend(str(root.resolve()), name or None, img)
            rec = ImageRecords(backend, np.arange(len(ds)), [str(i) for i in range(len(ds))])
            return _verified(rec, labels, split_name, skipped, workers, verify), found

        (val, found) = build(vname, vname or "val")
        train = build(tname, "train")[0] if tname is not None else None
        reader = {"kind": "hf", "path": str(root.resolve()), "split": vname or None, "image_column": img}
        return _finish(f"hf:{path}" + (f"[{vname}]" if vname else ""), str(root.resolve()), found, val, train,
                       skipped, reader, where)
    if (root / "snapshots").is_dir() and root.name.startswith("models--"):
        raise DatasetError(f"{where} is the Hub cache of a model, not of a dataset")
    snapshot = _hub_snapshot(root)
    if snapshot is None:
        raise DatasetError(f"{where} is not a dataset: neither a folder written by save_to_disk "
                           "(dataset_dict.json or state.json) nor a Hub-cache folder of a dataset "
                           "(datasets--OWNER--NAME with snapshots/)")
    return _load_hub_snapshot(snapshot, where, split=split, train_split=train_split, image_column=image_column,
                              label_column=label_column, classes=classes, verify=verify, workers=workers)


def _load_hub_snapshot(snapshot: Path, where: str, *, split, train_split, **options) -> Dataset:
    """A Hub-cache snapshot: its splits found by datasets' own data-file patterns, read as Parquet."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        patterns = get_data_patterns(str(snapshot))
        files = DataFilesDict.from_patterns(patterns, base_path=str(snapshot))
    except Exception as exc:  # EmptyDatasetError and friends
        raise DatasetError(f"{where}: the Hub-cache snapshot holds no data files ({type(exc).__name__})") from None
    splits = {k: [str(f) for f in v] for k, v in files.items()}
    for name, fs in splits.items():
        odd = [f for f in fs if not f.endswith(".parquet")]
        if odd:
            raise DatasetError(f"{where}: split {name!r} is stored as {Path(odd[0]).suffix or odd[0]} files; hf: "
                               "reads Hub datasets stored as Parquet")
    vname = _pick_split(list(splits), split, where)
    tname = train_split if train_split is not None else (TRAIN_SPLIT if TRAIN_SPLIT in splits else None)
    if tname is not None and tname not in splits:
        raise DatasetError(f"{where}: no split {tname!r} (--train-split); splits: {', '.join(splits)}")
    ds = _load_parquet_files(splits[vname], splits[tname] if tname and tname != vname else None,
                             where=f"{where} split {vname!r}", name=f"hf:{where[3:]}[{vname}]", **options)
    ds.reader = {**ds.reader, "kind": "hf-hub", "path": str(snapshot), "split": vname}
    return ds


# --------------------------------------------------------------------------- parquet:GLOB
def _expand_glob(pattern: str, where: str) -> list[str]:
    files = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise DatasetError(f"{where}: no file matches {pattern!r}")
    return files


def _parquet_features(file: str, where: str):
    """The file's columns as `datasets` features (its 'huggingface' schema metadata when written by datasets)."""
    import pyarrow.parquet as pq

    hf = _needs("datasets")
    try:
        schema = pq.read_schema(file)
    except Exception as exc:  # ArrowInvalid for a file that is not Parquet
        raise DatasetError(f"{where}: {file} is not a Parquet file ({type(exc).__name__})") from None
    try:
        return hf.Features.from_arrow_schema(schema)
    except Exception:  # a type datasets has no feature for: keep the plain columns
        return {f.name: (hf.Value("binary") if str(f.type) in ("binary", "large_binary") else str(f.type))
                for f in schema}


def _load_parquet_files(val_files: list[str], train_files: list[str] | None, *, where: str, name: str,
                        image_column=None, label_column=None, classes=None, verify=True, workers=8) -> Dataset:
    import pyarrow.parquet as pq

    features = _parquet_features(val_files[0], where)
    img, lab = _pick_columns(features, image_column, label_column, where, _is_image_feature, _is_class_label)
    names = _classes_from(features[lab], classes)
    skipped: list[dict] = []

    def build(files: list[str], split_name: str):
        counts, values = [], []
        for f in files:
            with pq.ParquetFile(f) as pf:
                present = pf.schema_arrow.names
                for col in (img, lab):
                    if col not in present:
                        raise DatasetError(f"{where}: {f} has no column {col!r}; columns: {', '.join(present)}")
                counts.append(pf.metadata.num_rows)
                for batch in pf.iter_batches(batch_size=65536, columns=[lab]):
                    values.extend(batch.column(0).to_pylist())
        if not values:
            raise DatasetError(f"{where}: the {split_name} split is empty (0 rows in {len(files)} file(s))")
        labels, found = _label_indices(values, names, where, lab)
        rec = ImageRecords(_ParquetBackend(files, img, counts), np.arange(len(values)),
                           [str(i) for i in range(len(values))])
        return _verified(rec, labels, split_name, skipped, workers, verify), found

    val, found = build(val_files, "val")
    train = build(train_files, "train")[0] if train_files else None
    reader = {"kind": "parquet", "files": [str(Path(f).resolve()) for f in val_files], "image_column": img}
    return _finish(name, val_files[0] if len(val_files) == 1 else os.path.dirname(val_files[0]), found, val, train,
                   skipped, reader, where)


def load_parquet(pattern: str, *, split: str | None = None, train_split: str | None = None,
                 image_column: str | None = None, label_column: str | None = None, classes: str | None = None,
                 verify: bool = True, workers: int = 8) -> Dataset:
    """Parquet files matching GLOB (the validation images); --train-split GLOB names the training files.

    The image column holds bytes, or `datasets`' {'bytes', 'path'} structs. Keys are row indices over the
    files in sorted order.
    """
    where = f"parquet:{pattern}"
    if split is not None:
        raise DatasetError(f"{where}: the pattern names the validation files, so --split is not used; give "
                           "--train-split GLOB for the training files")
    val_files = _expand_glob(pattern, where)
    train_files = _expand_glob(train_split, f"--train-split {train_split}") if train_split else None
    return _load_parquet_files(val_files, train_files, where=where, name=where, image_column=image_column,
                               label_column=label_column, classes=classes, verify=verify, workers=workers)


# --------------------------------------------------------------------------- wds:PATTERN
_META = re.compile(r"__[^/]*__($|/)")


def expand_shards(pattern: str, where: str) -> list[str]:
    """The shard files of a brace pattern (`val-{000000..000063}.tar`), as webdataset expands it."""
    from braceexpand import braceexpand

    shards = [os.path.expanduser(s) for s in braceexpand(pattern)]
    missing = [s for s in shards if not os.path.isfile(s)]
    if missing:
        raise DatasetError(f"{where}: {len(missing)} of {len(shards)} shard(s) missing, e.g. {missing[0]}")
    return shards


def _scan_shard(path: str, image_ext: str | None, where: str) -> list[dict]:
    """The samples of one shard, grouped by key as webdataset groups them: key, image member, label files."""
    import tarfile

    from webdataset.tariterators import base_plus_ext

    samples: list[dict] = []
    current = None
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                name = info.name
                if not info.isreg() or _META.match(name) or ("/" not in name and name.startswith("__")
                                                            and name.endswith("__")):
                    continue
                key, ext = base_plus_ext(name)
                if key is None:
                    continue
                ext = ext.lower()
                if current is None or current["key"] != key:
                    current = {"key": key, "members": {}, "labels": {}}
                    samples.append(current)
                if ext in current["members"]:
                    raise DatasetError(f"{where}: {path}: {name} is a duplicate file name in sample {key!r}")
                current["members"][ext] = (info.offset_data, info.size)
                if ext in ("cls", "json"):
                    current["labels"][ext] = tar.extractfile(info).read()
    except tarfile.TarError as exc:
        raise DatasetError(f"{where}: {path} is not a readable tar file ({exc})") from None
    return samples


def _wds_label(sample: dict, field: str | None, where: str):
    labels = sample["labels"]
    if "cls" in labels and field is None:
        text = labels["cls"].decode("utf-8", "replace").strip()
        try:
            return int(text)
        except ValueError:
            return text
    if "json" in labels:
        try:
            meta = json.loads(labels["json"])
        except ValueError:
            raise DatasetError(f"{where}: sample {sample['key']!r} has a .json that is not JSON") from None
        key = field or "label"
        if not isinstance(meta, dict) or key not in meta:
            keys = ", ".join(meta) if isinstance(meta, dict) else type(meta).__name__
            raise DatasetError(f"{where}: sample {sample['key']!r}'s .json has no field {key!r} (--label-column); "
                               f"fields: {keys}")
        return meta[key]
    return None


def _load_wds_split(pattern: str, where: str, split_name: str, image_ext: str | None, label_field: str | None):
    shards = expand_shards(pattern, where)
    keys, values, shard, offset, size = [], [], [], [], []
    for s, path in enumerate(shards):
        for sample in _scan_shard(path, image_ext, where):
            members = sample["members"]
            ext = image_ext or next((e for e in WDS_IMAGE_EXTENSIONS if e in members), None)
            if ext is None or ext not in members:
                wanted = image_ext or "/".join(WDS_IMAGE_EXTENSIONS)
                raise DatasetError(f"{where}: sample {sample['key']!r} in {os.path.basename(path)} has no .{wanted} "
                                   f"image (it has: {', '.join('.' + e for e in members)})")
            label = _wds_label(sample, label_field, where)
            if label is None:
                raise DatasetError(f"{where}: {os.path.basename(path)} has no labels: sample {sample['key']!r} has "
                                   "neither .cls nor .json")
            keys.append(sample["key"])
            values.append(label)
            shard.append(s)
            offset.append(members[ext][0])
            size.append(members[ext][1])
    if not keys:
        raise DatasetError(f"{where}: the {split_name} shards hold no samples")
    seen: dict[str, int] = {}
    for k in keys:
        seen[k] = seen.get(k, 0) + 1
        if seen[k] > 1:
            raise DatasetError(f"{where}: the key {k!r} appears twice; keys must be unique to join back")
    backend = _TarBackend(shards, np.asarray(shard, np.int32), np.asarray(offset, np.int64), np.asarray(size, np.int64))
    return ImageRecords(backend, np.arange(len(keys)), keys), values, shards


def load_wds(pattern: str, *, split: str | None = None, train_split: str | None = None,
             image_column: str | None = None, label_column: str | None = None, classes: str | None = None,
             verify: bool = True, workers: int = 8) -> Dataset:
    """WebDataset shards matching a brace pattern: an image (.jpg/.jpeg/.png/.webp, or --image-column EXT)
    and a label (.cls: an integer as text; or a .json field, `label` unless --label-column) per sample.

    --train-split PATTERN names the training shards. Keys are WebDataset's `__key__`.
    """
    where = f"wds:{pattern}"
    if split is not None:
        raise DatasetError(f"{where}: the pattern names the validation shards, so --split is not used; give "
                           "--train-split PATTERN for the training shards")
    ext = image_column.lstrip(".").lower() if image_column else None
    names = read_classes_file(classes) if classes else None
    skipped: list[dict] = []
    rec, values, shards = _load_wds_split(pattern, where, "val", ext, label_column)
    labels, found = _label_indices(values, names, where, label_column or ".cls")
    val = _verified(rec, labels, "val", skipped, workers, verify)
    train = None
    if train_split:
        trec, tvalues, _ = _load_wds_split(train_split, f"--train-split {train_split}", "train", ext, label_column)
        tlabels, _ = _label_indices(tvalues, found, f"--train-split {train_split}", label_column or ".cls")
        train = _verified(trec, tlabels, "train", skipped, workers, verify)
    reader = {"kind": "wds", "pattern": os.path.abspath(os.path.expanduser(pattern)), "image_column": ext,
              "label_column": label_column}
    return _finish(where, os.path.dirname(shards[0]), found, val, train, skipped, reader, where)


# --------------------------------------------------------------------------- by prefix, and back from a manifest
def load_table_source(spec: str, **options) -> Dataset:
    """`hf:PATH`, `parquet:GLOB` or `wds:PATTERN` as a Dataset; options: split, train_split, image_column,
    label_column, classes."""
    prefix, _, rest = spec.partition(":")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise DatasetError(f"{prefix}: unknown option {unknown[0]!r}; options: {', '.join(OPTIONS[:5])}")
    if "verify" in options and isinstance(options["verify"], str):
        options["verify"] = options["verify"].lower() not in ("0", "false", "no")
    if "workers" in options:
        options["workers"] = int(options["workers"])
    if not rest:
        raise DatasetError(f"{spec!r}: give a path after {prefix}:")
    loader = {"hf": load_hf, "parquet": load_parquet, "wds": load_wds}[prefix]
    return loader(rest, **options)


@register_dataset(prefix="hf:")
def hf_source(path: str, **options) -> Dataset:
    """`hf:PATH` (`load_hf`), its options checked by `load_table_source`."""
    return load_table_source(f"hf:{path}", **options)


@register_dataset(prefix="parquet:", argument="GLOB")
def parquet_source(pattern: str, **options) -> Dataset:
    """`parquet:GLOB` (`load_parquet`), its options checked by `load_table_source`."""
    return load_table_source(f"parquet:{pattern}", **options)


@register_dataset(prefix="wds:", argument="PATTERN")
def wds_source(pattern: str, **options) -> Dataset:
    """`wds:PATTERN` (`load_wds`), its options checked by `load_table_source`."""
    return load_table_source(f"wds:{pattern}", **options)


def open_reader(reader: dict) -> ImageRecords:
    """Reopen the images of a manifest's `dataset.reader` (every image of the split, keyed by its own key)."""
    kind = reader.get("kind")
    if kind == "hf":
        backend = _ArrowBackend(reader["path"], reader.get("split"), reader["image_column"])
        n = len(backend.ds)
        return ImageRecords(backend, np.arange(n), [str(i) for i in range(n)])
    if kind in ("parquet", "hf-hub"):
        import pyarrow.parquet as pq

        files = reader["files"]
        counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        n = int(sum(counts))
        return ImageRecords(_ParquetBackend(files, reader["image_column"], counts), np.arange(n),
                            [str(i) for i in range(n)])
    if kind == "wds":
        where = f"wds:{reader['pattern']}"
        shards = expand_shards(reader["pattern"], where)
        keys, shard, offset, size = [], [], [], []
        for s, path in enumerate(shards):
            for sample in _scan_shard(path, reader.get("image_column"), where):
                members = sample["members"]
                ext = reader.get("image_column") or next((e for e in WDS_IMAGE_EXTENSIONS if e in members), None)
                if ext in members:
                    keys.append(sample["key"])
                    shard.append(s)
                    offset.append(members[ext][0])
                    size.append(members[ext][1])
        backend = _TarBackend(shards, np.asarray(shard, np.int32), np.asarray(offset, np.int64),
                              np.asarray(size, np.int64))
        return ImageRecords(backend, np.arange(len(keys)), keys)
    raise DatasetError(f"unknown image reader {kind!r} in the audit's manifest")


def records_by_key(reader: dict, keys: list[str]) -> ImageRecords:
    """The images of `keys` (in that order) from a manifest's reader; a key the source lacks is an error."""
    records = open_reader(reader)
    where = {k: i for i, k in enumerate(records.keys)}
    missing = [k for k in keys if k not in where]
    if missing:
        raise DatasetError(f"{len(missing)} image key(s) are not in the source, e.g. {missing[0]!r}; the source's "
                           f"keys look like {', '.join(map(repr, records.keys[:3]))}")
    return records.subset([where[k] for k in keys])


_OPENED: dict[str, tuple[ImageRecords, dict[str, int]]] = {}


def reader_image(reader: dict, key: str):
    """The image of `key` in a manifest's reader, as an RGB PIL image (the last few sources stay open)."""
    token = json.dumps(reader, sort_keys=True, default=str)
    opened = _OPENED.get(token)
    if opened is None:
        records = open_reader(reader)
        opened = (records, {k: i for i, k in enumerate(records.keys)})
        while len(_OPENED) >= 4:
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[token] = opened
    records, where = opened
    if key not in where:
        raise DatasetError(f"the image {key!r} is no longer in its source ({reader.get('kind')}); put the dataset "
                           "back as the audit read it")
    return records.open(where[key])


# --------------------------------------------------------------------------- imported decisions' images
def source_reader(spec: str, *, split: str | None = None, image_column: str | None = None) -> dict:
    """The reader of a source's images alone (no labels needed): what `import --images hf:...` records."""
    prefix, _, rest = spec.partition(":")
    where = spec
    if prefix not in PREFIXES or not rest:
        raise DatasetError(f"--images {spec}: give hf:PATH, parquet:GLOB or wds:PATTERN")
    if prefix == "wds":
        expand_shards(rest, where)
        ext = image_column.lstrip(".").lower() if image_column else None
        return {"kind": "wds", "pattern": os.path.abspath(os.path.expanduser(rest)), "image_column": ext,
                "label_column": None}
    if prefix == "parquet":
        files = _expand_glob(rest, where)
        features = _parquet_features(files[0], where)
        img, _ = _pick_columns(features, image_column, None, where, _is_image_feature, lambda f: True)
        return {"kind": "parquet", "files": [str(Path(f).resolve()) for f in files], "image_column": img}
    root = Path(rest).expanduser()
    hf = _needs("datasets")
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        obj = hf.load_from_disk(str(root))
        name = _pick_split(list(obj), split, where) if isinstance(obj, hf.DatasetDict) else None
        features = obj[name].features if name else obj.features
        img, _ = _pick_columns(features, image_column, None, where, _is_image_feature, lambda f: True)
        return {"kind": "hf", "path": str(root.resolve()), "split": name, "image_column": img}
    snapshot = _hub_snapshot(root) if root.is_dir() else None
    if snapshot is None:
        raise DatasetError(f"{where} is not a dataset: neither a folder written by save_to_disk nor a Hub-cache "
                           "folder of a dataset")
    from datasets.data_files import DataFilesDict, get_data_patterns

    splits = DataFilesDict.from_patterns(get_data_patterns(str(snapshot)), base_path=str(snapshot))
    name = _pick_split(list(splits), split, where)
    files = [str(f) for f in splits[name]]
    img, _ = _pick_columns(_parquet_features(files[0], where), image_column, None, where, _is_image_feature,
                           lambda f: True)
    return {"kind": "hf-hub", "path": str(snapshot), "split": name, "files": files, "image_column": img}
