"""The records of a table or shard source (audit.data.table_sources): an image's encoded bytes by position,
or many streamed in the source's own order, from Arrow files, Parquet files or tar shards; the checks that
every image decodes and every label names a class; the choice of image and label columns.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from audit.data.base import Dataset, DatasetError, Split

PREFIXES = ("hf", "parquet", "wds")
#: Image extensions read from WebDataset samples, in the order tried.
WDS_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
#: Split names tried, in order, when --split is not given.
VAL_SPLITS = ("validation", "val", "valid", "test")
TRAIN_SPLIT = "train"
#: Rows read from a table at a time when streaming.
BATCH_ROWS = 256
OPTIONS = ("split", "train_split", "image_column", "label_column", "classes", "verify", "workers")


def _needs(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise DatasetError(f"reading this dataset needs the package {module.split('.')[0]}; install the "
                           "sources extra: pip install 'ddd-audit[sources]'") from None


# --------------------------------------------------------------------------- records
class ImageRecords:
    """A split's encoded images, left in their source and read by position.

    `keys[i]` is image i's key in the source (row index or WebDataset `__key__`); `rows[i]` is its
    position in the backend's order. Picklable: backends reopen their files lazily.
    """

    def __init__(self, backend, rows, keys: list[str]):
        self.backend = backend
        self.rows = np.asarray(rows, dtype=np.int64)
        self.keys = list(keys)

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index) -> ImageRecords:
        index = np.asarray(index, dtype=np.int64)
        return ImageRecords(self.backend, self.rows[index], [self.keys[i] for i in index])

    def read(self, i: int) -> bytes:
        """The encoded bytes of image i."""
        return self.backend.read_row(int(self.rows[i]))

    def open(self, i: int):
        """Image i as an RGB PIL image, decoded as the source's own library decodes it."""
        return self.backend.to_pil(self.read(i))

    def stream(self, index=None) -> Iterator[tuple[int, bytes]]:
        """(j, bytes) for each position j of `index` (default: every image), in the source's own order."""
        index = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        rows = self.rows[index]
        order = np.argsort(rows, kind="stable")
        for k, data in enumerate(self.backend.stream_rows(rows[order])):
            yield int(order[k]), data

    def identity(self) -> str:
        """What identifies the source's content cheaply (files, sizes, modification times)."""
        return self.backend.identity()


def _file_identity(files: list[str]) -> str:
    parts = []
    for f in files:
        try:
            st = os.stat(f)
            parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f)
    return "\n".join(parts)


def _to_pil(data: bytes, exif_transpose: bool):
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(data))
    img.load()
    if exif_transpose and img.getexif().get(Image.ExifTags.Base.Orientation) is not None:
        img = ImageOps.exif_transpose(img)  # as datasets' Image feature decodes
    return img.convert("RGB")


def _cell_bytes(value) -> bytes | None:
    """An image cell's bytes: binary, or datasets' {'bytes', 'path'} struct (a local path read when no bytes)."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        path = value.get("path")
        if path and os.path.isfile(path):
            with open(path, "rb") as f:
                return f.read()
        return None
    raise TypeError(f"an image cell holds {type(value).__name__}, not bytes")


class _ArrowBackend:
    """Rows of a dataset saved by `datasets` (memory-mapped Arrow files), one image column."""

    exif = True

    def __init__(self, path: str, split: str | None, column: str):
        self.path, self.split, self.column = path, split, column
        self._ds = None

    def __getstate__(self):
        return {**self.__dict__, "_ds": None}

    @property
    def ds(self):
        if self._ds is None:
            ds = _needs("datasets").load_from_disk(self.path)
            ds = ds[self.split] if self.split is not None else ds
            self._ds = ds.select_columns([self.column]).with_format("arrow")
        return self._ds

    def _cells(self, rows) -> list:
        return self.ds[[int(r) for r in rows]].column(0).to_pylist()

    def read_row(self, row: int) -> bytes:
        return _cell_bytes(self._cells([row])[0])

    def stream_rows(self, rows: np.ndarray) -> Iterator[bytes]:
        """Read the Arrow files as streams, a record batch at a time (not memory-mapped, so the pages of
        images already decoded do not stay in the process's memory)."""
        import pyarrow as pa

        k, first = 0, 0
        for file in [f["filename"] for f in self.ds.cache_files]:
            if k >= len(rows):
                return
            with pa.OSFile(file) as source:
                for batch in pa.ipc.open_stream(source):
                    n = batch.num_rows
                    if k < len(rows) and rows[k] < first + n:
                        column = batch.column(batch.schema.get_field_index(self.column))
                        while k < len(rows) and rows[k] < first + n:
                            yield _cell_bytes(column[int(rows[k] - first)].as_py())
                            k += 1
                    first += n
        if k < len(rows):
            raise DatasetError(f"hf:{self.path}: row {int(rows[k])} is past the dataset's end ({first} rows)")

    def to_pil(self, data: bytes):
        return _to_pil(data, self.exif)

    def identity(self) -> str:
        ds = self.ds
        return _file_identity([f["filename"] for f in ds.cache_files])


class _ParquetBackend:
    """Rows of Parquet files, in the files' order, one image column; read a batch at a time."""

    exif = True

    def __init__(self, files: list[str], column: str, row_counts: list[int]):
        self.files, self.column = list(files), column
        self.starts = np.concatenate([[0], np.cumsum(row_counts)]).astype(np.int64)
        self._last = None  # (file index, first row, cells) of the last batch read at random

    def __getstate__(self):
        return {**self.__dict__, "_last": None}

    def _batches(self, f: int, batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, list]]:
        import pyarrow.parquet as pq

        first = int(self.starts[f])
        with pq.ParquetFile(self.files[f]) as pf:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=[self.column]):
                cells = batch.column(0).to_pylist()
                yield first, cells
                first += len(cells)

    def read_row(self, row: int) -> bytes:
        f = int(np.searchsorted(self.starts, row, side="right") - 1)
        last = self._last
        if last is None or last[0] != f or not last[1] <= row < last[1] + len(last[2]):
            for first, cells in self._batches(f):
                if first <= row < first + len(cells):
                    last = self._last = (f, first, cells)
                    break
        return _cell_bytes(last[2][row - last[1]])

    def stream_rows(self, rows: np.ndarray) -> Iterator[bytes]:
        k = 0
        for f in range(len(self.files)):
            if k >= len(rows):
                return
            if rows[k] >= self.starts[f + 1]:
                continue
            for first, cells in self._batches(f):
                while k < len(rows) and rows[k] < first + len(cells):
                    yield _cell_bytes(cells[rows[k] - first])
                    k += 1
                if k >= len(rows) or rows[k] >= self.starts[f + 1]:
                    break

    def to_pil(self, data: bytes):
        return _to_pil(data, self.exif)

    def identity(self) -> str:
        return _file_identity(self.files)


class _TarBackend:
    """Members of WebDataset tar shards, read by their offset inside the (decompressed) shard."""

    exif = False  # webdataset's image decoder opens and converts, nothing more

    def __init__(self, shards: list[str], shard: np.ndarray, offset: np.ndarray, size: np.ndarray):
        self.shards = list(shards)
        self.shard, self.offset, self.size = shard, offset, size

    @staticmethod
    def _open(path: str):
        if path.endswith((".gz", ".tgz")):
            import gzip

            return gzip.open(path, "rb")
        return open(path, "rb")

    def read_row(self, row: int) -> bytes:
        with self._open(self.shards[self.shard[row]]) as f:
            f.seek(int(self.offset[row]))
            return f.read(int(self.size[row]))

    def stream_rows(self, rows: np.ndarray) -> Iterator[bytes]:
        f, current = None, -1
        try:
            for row in rows:
                if self.shard[row] != current:
                    if f is not None:
                        f.close()
                    current = int(self.shard[row])
                    f = self._open(self.shards[current])
                f.seek(int(self.offset[row]))
                yield f.read(int(self.size[row]))
        finally:
            if f is not None:
                f.close()

    def to_pil(self, data: bytes):
        return _to_pil(data, self.exif)

    def identity(self) -> str:
        return _file_identity(self.shards)


# --------------------------------------------------------------------------- checks
def _check_bytes(data: bytes | None) -> str | None:
    """None when the bytes decode as an image, else the reason (as `check_image` for files)."""
    from PIL import Image

    if data is None:
        return "no image bytes (and no readable file at its path)"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (64, 64))
            img.load()
        return None
    except Exception as exc:  # PIL raises many types for corrupt data
        return f"{type(exc).__name__}: {exc}"


def _verified(records: ImageRecords, labels: np.ndarray, split: str, skipped: list[dict], workers: int,
              verify: bool) -> tuple[ImageRecords, np.ndarray]:
    """The records whose bytes decode; the others are listed in `skipped` (streamed, a batch at a time)."""
    if not verify:
        return records, labels
    reasons: list[str | None] = [None] * len(records)
    batch: list[tuple[int, bytes]] = []

    def check(items):
        return [(j, _check_bytes(data)) for j, data in items]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = []
        for item in records.stream():
            batch.append(item)
            if len(batch) == BATCH_ROWS:
                futures.append(pool.submit(check, batch))
                batch = []
                if len(futures) > 2 * workers:  # bounded: a few batches of bytes in flight
                    for j, why in futures.pop(0).result():
                        reasons[j] = why
        if batch:
            futures.append(pool.submit(check, batch))
        for fut in futures:
            for j, why in fut.result():
                reasons[j] = why
    keep = np.array([i for i, why in enumerate(reasons) if why is None], dtype=np.int64)
    skipped.extend({"path": records.keys[i], "split": split, "reason": why}
                   for i, why in enumerate(reasons) if why is not None)
    return records.subset(keep), labels[keep]


def read_classes_file(path: str | os.PathLike) -> list[str]:
    """Class names, one per line, in index order (blank lines ignored)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"--classes {p} is not a file")
    names = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise DatasetError(f"--classes {p} names {len(names)} class(es); an audit needs at least two")
    if len(set(names)) != len(names):
        raise DatasetError(f"--classes {p} names a class twice")
    return names


def _label_indices(values: list, classes: list[str] | None, where: str, column: str) -> tuple[np.ndarray, list[str]]:
    """Labels as class indices: integers (need `classes`) or class names (sorted when no `classes`)."""
    if any(v is None for v in values):
        n = sum(v is None for v in values)
        raise DatasetError(f"{where}: {n} row(s) have no label in {column!r}; a split without labels cannot be "
                           "audited")
    if all(isinstance(v, str) for v in values):
        names = classes or sorted(set(values))
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise DatasetError(f"{where}: label {unknown[0]!r} is not in --classes ({len(names)} classes)")
        return np.array([index[v] for v in values], dtype=np.int64), list(names)
    try:
        labels = np.asarray([int(v) for v in values], dtype=np.int64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {column!r} holds neither class indices nor class names") from None
    if (labels < 0).any():
        raise DatasetError(f"{where}: {int((labels < 0).sum())} row(s) have no label ({column!r} = -1); a split "
                           "without labels cannot be audited")
    if classes is None:
        raise DatasetError(f"{where}: {column!r} is not a ClassLabel, so its class names are unknown; give "
                           "--classes FILE (one name per line, in index order)")
    if labels.max() >= len(classes):
        raise DatasetError(f"{where}: label {int(labels.max())} is outside --classes ({len(classes)} classes)")
    return labels, list(classes)


def _finish(name: str, origin: str, classes: list[str], val, train, skipped: list[dict], reader: dict,
            where: str) -> Dataset:
    (vrec, vlab), tr = val, train
    if not len(vrec):
        raise DatasetError(f"{where}: none of the validation images could be decoded")
    if len(classes) < 2:
        raise DatasetError(f"{where}: only one class ({classes[0]!r}); an audit needs at least two")
    train_split = Split(tr[1], records=tr[0]) if tr is not None and len(tr[0]) else None
    return Dataset(name=name, classes=classes, val=Split(vlab, records=vrec), train=train_split, skipped=skipped,
                   origin=origin, reader=reader)


def _pick_columns(features: dict, image_column: str | None, label_column: str | None, where: str,
                  is_image, is_label) -> tuple[str, str]:
    names = list(features)
    shown = ", ".join(names)
    for given, what in ((image_column, "--image-column"), (label_column, "--label-column")):
        if given is not None and given not in features:
            raise DatasetError(f"{where}: no column {given!r} ({what}); columns: {shown}")
    image = image_column or next((c for c in names if is_image(features[c])), None)
    if image is None:
        raise DatasetError(f"{where}: no Image or image-bytes column; name it with --image-column (columns: {shown})")
    if not is_image(features[image]):
        raise DatasetError(f"{where}: column {image!r} holds {features[image]}, not images; columns: {shown}")
    label = label_column or next((c for c in names if is_label(features[c])), None)
    if label is None:
        raise DatasetError(f"{where}: no ClassLabel column; name the label column with --label-column "
                           f"(columns: {shown})")
    return image, label


def _is_image_feature(f) -> bool:
    ds = _needs("datasets")
    if isinstance(f, ds.Image):
        return True
    if isinstance(f, ds.Value):
        return f.dtype in ("binary", "large_binary")
    return isinstance(f, dict) and "bytes" in f


def _is_class_label(f) -> bool:
    return isinstance(f, _needs("datasets").ClassLabel)


def _classes_from(feature, classes_file: str | None) -> list[str] | None:
    if classes_file:
        return read_classes_file(classes_file)
    if _is_class_label(feature):
        return list(feature.names)
    return None
