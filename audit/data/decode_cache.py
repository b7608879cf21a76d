"""The decode-once cache: images decoded and resized once per preprocessing, shared by all models.

A `Preprocessing` is a model's eval transform up to the uint8 crop (timm's
prefetcher form: resize, crop, no normalisation); models that share one share a
`DecodeCache` entry of shape (n_images, 3, H, W), in memory and optionally on
disk. Decoding runs in parallel threads. No models and no printing here.

`resizer="pil"` (the default) is timm's transform itself, pixel for pixel.
`resizer="torch"` decodes with PIL as well but resizes with torch's antialiased
uint8 kernels: the same geometry, about 1.7x faster decoding, and pixels within
a few grey levels of PIL's (benchmarks/bench_pretrained.py measures the decisions).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audit.data.base import DatasetError, Split
from audit.store import write_npy

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Preprocessing:
    """A model's evaluation preprocessing, as resolved by timm (`resolve_data_config`).

    `mean` and `std` are applied on the device after the cache; the other fields
    decide the decoded pixels and so form the cache `key`.
    """

    input_size: tuple[int, int, int]
    crop_pct: float
    crop_mode: str
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resizer: str = "pil"

    @classmethod
    def from_config(cls, cfg: dict, *, image_size: int | None = None, resizer: str = "pil") -> Preprocessing:
        """From a timm data config (`resolve_data_config(model=m)`); `image_size` overrides H and W."""
        if resizer not in RESIZERS:
            raise ValueError(f"resizer must be one of {', '.join(RESIZERS)}, got {resizer!r}")
        input_size = tuple(int(v) for v in cfg["input_size"])
        if image_size is not None:
            input_size = (input_size[0], int(image_size), int(image_size))
        return cls(
            input_size=input_size,
            crop_pct=float(cfg.get("crop_pct") or 0.875),
            crop_mode=str(cfg.get("crop_mode") or "center"),
            interpolation=str(cfg.get("interpolation") or "bilinear"),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            resizer=resizer,
        )

    @classmethod
    def from_model(cls, model, *, image_size: int | None = None, resizer: str = "pil") -> Preprocessing:
        from timm.data import resolve_data_config

        return cls.from_config(resolve_data_config(model=model), image_size=image_size, resizer=resizer)

    @property
    def key(self) -> str:
        """A file-name-safe key of everything that changes the decoded pixels."""
        _, h, w = self.input_size
        key = f"{h}x{w}-{self.crop_mode}{self.crop_pct:g}-{self.interpolation}"
        if self.crop_mode == "border":  # the padding is filled with the mean colour
            key += "-fill" + "_".join(f"{round(255 * m)}" for m in self.mean)
        if self.resizer != "pil":
            key += f"-{self.resizer}"
        return key

    def describe(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def transform(self):
        """timm's eval transform in prefetcher form: PIL image -> uint8 array (3, H, W)."""
        from timm.data import create_transform

        return create_transform(input_size=self.input_size, interpolation=self.interpolation,
                                crop_pct=self.crop_pct, crop_mode=self.crop_mode, mean=self.mean,
                                std=self.std, use_prefetcher=True)

    def decoder(self) -> Callable:
        """PIL image -> uint8 array (3, H, W): timm's transform, or the same geometry resized by torch."""
        tf = self.transform()
        if self.resizer == "pil":
            return tf
        steps = list(getattr(tf, "transforms", []))
        resize = steps[0] if steps else None
        crop = steps[1] if len(steps) > 1 else None
        if (type(resize).__name__ != "Resize" or type(crop).__name__ != "CenterCrop" or len(steps) != 3
                or resize.interpolation.value not in _TORCH_INTERPOLATIONS):
            raise ValueError(f"resizer {self.resizer!r} handles resize + center crop with bilinear or bicubic "
                             f"interpolation; this preprocessing is {tf}")
        return _TorchResize(resize.size, resize.interpolation.value, list(crop.size))

    def torch_transform(self):
        """The same preprocessing as a float tensor transform with normalisation (timm's validate.py form)."""
        from timm.data import create_transform

        return create_transform(input_size=self.input_size, interpolation=self.interpolation,
                                crop_pct=self.crop_pct, crop_mode=self.crop_mode, mean=self.mean, std=self.std)


RESIZERS = ("pil", "torch")
_TORCH_INTERPOLATIONS = ("bilinear", "bicubic")


class _TorchResize:
    """Resize (torchvision's size rule) and centre-crop a PIL image with torch's antialiased uint8 kernels."""

    def __init__(self, size, interpolation: str, crop: list[int]):
        from torchvision.transforms.v2 import InterpolationMode, functional

        self.size, self.interpolation, self.crop = size, InterpolationMode(interpolation), crop
        self._tf = functional

    def __call__(self, img) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
        x = self._tf.resize(x, self.size, interpolation=self.interpolation, antialias=True)
        return self._tf.center_crop(x, self.crop).numpy()


def split_image(split: Split, i: int):
    """Image `i` of a split as an RGB PIL image: decoded from its file, or built from the array.

    Grayscale arrays (C = 1) are replicated to three channels, as PIL's convert("RGB") does.
    """
    from PIL import Image

    if split.paths is not None:
        with Image.open(split.paths[i]) as img:
            return img.convert("RGB")
    if split.records is not None:
        return split.records.open(i)
    arr = np.asarray(split.images[i])
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr).convert("RGB")


def _split_fingerprint(split: Split) -> str:
    h = hashlib.sha256(np.ascontiguousarray(split.labels).tobytes())
    if split.paths is not None:
        h.update("\n".join(split.paths).encode())
        for p in (split.paths[0], split.paths[-1]):  # a cheap guard against files replaced in place
            try:
                st = os.stat(p)
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                pass
    elif split.records is not None:
        h.update("\n".join(split.records.keys).encode())
        h.update(split.records.identity().encode())  # a cheap guard against a source replaced in place
    else:
        h.update(str(split.images.shape).encode())
        h.update(np.ascontiguousarray(split.images).tobytes())
    return h.hexdigest()[:16]


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def decode_split(split: Split, prep: Preprocessing, *, index: np.ndarray | None = None,
                 workers: int | None = None, progress: ProgressFn | None = None) -> np.ndarray:
    """Decode (a subset of) a split with parallel threads into uint8, shape (n_images, 3, H, W)."""
    index = np.arange(len(split)) if index is None else np.asarray(index)
    _, h, w = prep.input_size
    out = np.empty((len(index), 3, h, w), dtype=np.uint8)
    workers = workers or default_workers()
    tf = prep.decoder()
    if split.records is not None:
        return _decode_records(split.records, tf, index, out, workers, progress)
    chunk = max(1, min(256, len(index) // (4 * max(1, workers)) or 1))

    def work(lo: int, hi: int) -> int:
        for j in range(lo, hi):
            try:
                out[j] = tf(split_image(split, int(index[j])))
            except OSError as exc:  # PIL's decode errors
                where = split.paths[int(index[j])] if split.paths is not None else f"#{int(index[j])}"
                raise DatasetError(f"cannot decode {where}: {exc}") from None
        return hi - lo

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(work, lo, min(lo + chunk, len(index))) for lo in range(0, len(index), chunk)]
        for fut in as_completed(futures):
            done += fut.result()
            if progress is not None:
                progress("decode", done, len(index))
    return out


def _decode_records(records, tf, index: np.ndarray, out: np.ndarray, workers: int,
                    progress: ProgressFn | None) -> np.ndarray:
    """Decode a table or shard split: its bytes streamed in the source's order, decoded in threads."""
    batch_size = 64
    done = 0

    def work(items) -> int:
        for j, data in items:
            try:
                out[j] = tf(records.backend.to_pil(data))
            except OSError as exc:  # PIL's decode errors
                raise DatasetError(f"cannot decode image {records.keys[int(index[j])]}: {exc}") from None
        return len(items)

    def finish(fut) -> None:
        nonlocal done
        done += fut.result()
        if progress is not None:
            progress("decode", done, len(index))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending, batch = [], []
        for item in records.stream(index):
            batch.append(item)
            if len(batch) == batch_size:
                pending.append(pool.submit(work, batch))
                batch = []
                while len(pending) > 4 * max(1, workers):  # a few batches of bytes in flight, no more
                    finish(pending.pop(0))
        if batch:
            pending.append(pool.submit(work, batch))
        for fut in pending:
            finish(fut)
    return out


@dataclass
class CacheEntry:
    images: np.ndarray
    seconds: float
    from_disk: bool


class DecodeCache:
    """Decoded uint8 images per (split, subset, preprocessing key), kept in memory and optionally on disk.

    Parameters
    ----------
    cache_dir : folder for `.npy` files that later runs (or other processes) reuse; None keeps memory only
    workers : decoding threads (default: the CPUs available)
    max_bytes : memory budget; the least recently used entries are dropped beyond it
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, workers: int | None = None,
                 max_bytes: int = 8 << 30):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = workers
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, CacheEntry] = OrderedDict()
        self._fingerprints: dict[int, tuple[object, str]] = {}
        self._lock = threading.Lock()
        self.stats = {"decoded": 0, "memory_hits": 0, "disk_hits": 0}

    def fingerprint(self, split: Split) -> str:
        cached = self._fingerprints.get(id(split))
        if cached is not None and cached[0] is split:
            return cached[1]
        fp = _split_fingerprint(split)
        self._fingerprints[id(split)] = (split, fp)
        return fp

    def get(self, split: Split, prep: Preprocessing, *, index: np.ndarray | None = None,
            progress: ProgressFn | None = None) -> CacheEntry:
        """The decoded images of `split` (rows `index`, default all) under `prep`.

        `entry.seconds` is the decoding time spent by this call (0 when the images came from the cache).
        """
        sub = "all" if index is None else hashlib.sha256(np.asarray(index, dtype=np.int64).tobytes()).hexdigest()[:12]
        key = (self.fingerprint(split), sub, prep.key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats["memory_hits"] += 1
                return CacheEntry(entry.images, 0.0, entry.from_disk)
        t0 = time.perf_counter()
        file = self.cache_dir / f"{prep.key}-{key[0]}-{sub}.npy" if self.cache_dir is not None else None
        if file is not None and file.exists():
            images = np.load(file, mmap_mode="r")
            self.stats["disk_hits"] += 1
            entry = CacheEntry(images, 0.0, True)
        else:
            images = decode_split(split, prep, index=index, workers=self.workers, progress=progress)
            self.stats["decoded"] += 1
            if file is not None:
                write_npy(file, images)
            entry = CacheEntry(images, time.perf_counter() - t0, False)
        with self._lock:
            self._entries[key] = CacheEntry(entry.images, entry.seconds, entry.from_disk)
            self._evict()
        return entry

    def _evict(self) -> None:
        total = sum(e.images.nbytes for e in self._entries.values() if not isinstance(e.images, np.memmap))
        while total > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            if not isinstance(old.images, np.memmap):
                total -= old.images.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def decode_cache_for(ctx) -> DecodeCache:
    """The context's shared decode cache (created on first use, with the context's cache_dir)."""
    store = ctx._tensors  # JobContext's per-run scratch dict; see the engine
    cache = store.get("decode_cache")
    if cache is None:
        cache_dir = Path(ctx.cache_dir) / "decoded" if getattr(ctx, "cache_dir", None) else None
        cache = store["decode_cache"] = DecodeCache(cache_dir, workers=getattr(ctx, "threads", None))
    return cache
