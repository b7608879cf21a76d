"""What every dataset source builds: `Dataset` and its `Split`s, `DatasetError`, and the image-file checks.

The sources (`audit.data.sources`, `audit.data.imagenet`) and the decoders import
these; nothing here reads a dataset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")


class DatasetError(ValueError):
    """The dataset cannot be found or read; the message says how to fix it."""


@dataclass
class Split:
    """One split of a dataset.

    `images` (uint8, shape (n_images, H, W, C)) and/or `paths` or `records` is set:
    file datasets keep their paths (pretrained models decode them at their own
    resolution) and may also carry a small decoded copy for trained variants;
    table and shard datasets keep `records` (`audit.data.table_records.ImageRecords`),
    which read each image's bytes from its source.
    """

    labels: np.ndarray
    images: np.ndarray | None = None
    paths: list[str] | None = None
    records: object | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images is None and self.paths is None and self.records is None:
            raise ValueError("a split holds images, paths or records")
        n = (len(self.images) if self.images is not None else len(self.paths) if self.paths is not None
             else len(self.records))
        if n != len(self.labels):
            raise ValueError(f"split has {n} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sources(self) -> list[str]:
        """A per-image source string: the path, the source's own key, or the index into the array."""
        if self.paths is not None:
            return list(self.paths)
        if self.records is not None:
            return list(self.records.keys)
        return [f"#{i}" for i in range(len(self))]

    def subset(self, index: np.ndarray) -> Split:
        index = np.asarray(index)
        return Split(
            self.labels[index],
            images=self.images[index] if self.images is not None else None,
            paths=[self.paths[i] for i in index] if self.paths is not None else None,
            records=self.records.subset(index) if self.records is not None else None,
        )


@dataclass
class Dataset:
    """A labelled dataset with a validation split and, optionally, a training split."""

    name: str
    classes: list[str]
    val: Split
    train: Split | None = None
    skipped: list[dict] = field(default_factory=list)
    origin: str = ""
    #: The folder that holds the image files (file datasets); readers open no image outside it.
    root: str | None = None
    #: How trained variants see the pixels: "linear" or "symlog" (see audit.running.train.INPUT_TRANSFORMS)
    input_transform: str = "linear"
    #: How to reopen the images of a table or shard source (`audit.data.table_sources.open_reader`).
    reader: dict | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        """A SHA-256 over labels and image bytes (or paths), identifying the data audited."""
        h = hashlib.sha256(self.name.encode())
        for split in (self.val, self.train):
            if split is None:
                h.update(b"-")
                continue
            h.update(split.labels.tobytes())
            if split.paths is not None:
                h.update("\n".join(split.paths).encode())
            elif split.records is not None:
                h.update("\n".join(split.records.keys).encode())
            else:
                h.update(np.ascontiguousarray(split.images).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "origin": self.origin,
            "root": self.root,
            "classes": self.classes,
            "n_classes": self.n_classes,
            "n_val": len(self.val),
            "n_train": len(self.train) if self.train is not None else 0,
            "fingerprint": self.fingerprint(),
            "skipped": self.skipped,
            **({"reader": self.reader} if self.reader else {}),
        }


def check_image(path: str) -> str | None:
    """Return None when the file decodes, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))
            img.load()
        return None
    except Exception as exc:  # PIL raises many types for corrupt files
        return f"{type(exc).__name__}: {exc}"
