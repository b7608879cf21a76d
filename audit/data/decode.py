"""Decoding image files into uint8 arrays, once, with parallel workers.

`decode_splits` turns the file paths of an ImageFolder into fixed-size arrays
for the trained variants. Pure data work: no models, no printing.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from audit.data.base import Dataset, Split


def decode_file(path: str, size: int) -> np.ndarray:
    """Decode one file to RGB, resize the shorter side to `size`, centre-crop to size x size."""
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (size * 2, size * 2))
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_paths(paths: list[str], size: int, *, workers: int = 8) -> np.ndarray:
    """Decode many files in parallel into an array of shape (n_images, size, size, 3)."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def work(i):
        out[i] = decode_file(paths[i], size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(paths))))
    return out


def decode_records(records, size: int, *, workers: int = 8) -> np.ndarray:
    """Decode a table or shard split (`ImageRecords`), streamed in its source's order, like `decode_paths`."""
    import io

    out = np.empty((len(records), size, size, 3), dtype=np.uint8)

    def work(items):
        for j, data in items:
            out[j] = decode_file(io.BytesIO(data), size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending, batch = [], []
        for item in records.stream():
            batch.append(item)
            if len(batch) == 64:
                pending.append(pool.submit(work, batch))
                batch = []
                while len(pending) > 4 * workers:
                    pending.pop(0).result()
        pending.append(pool.submit(work, batch))
        for fut in pending:
            fut.result()
    return out


def decode_splits(ds: Dataset, *, size: int = 32, workers: int = 8) -> Dataset:
    """Return `ds` with its file-based splits also decoded to uint8 arrays (the paths or records are kept)."""

    def dec(split: Split | None) -> Split | None:
        if split is None or split.images is not None:
            return split
        if split.records is not None:
            return Split(split.labels, images=decode_records(split.records, size, workers=workers),
                         records=split.records)
        return Split(split.labels, images=decode_paths(split.paths, size, workers=workers), paths=split.paths)

    return dataclasses.replace(ds, val=dec(ds.val), train=dec(ds.train))
