"""k-NN probes on the embeddings of a trained network, and the prediction depth they give (baldock2021 §2.1).

Embeddings are taken after the input, after the stem and each stage (or each
ReLU of a plain stack), and after the softmax; exact k-NN probes (k = 30) are
fitted on a subsample of the network's own training images. Torch and k-NN
here; the depth rule itself is `audit.metrics.depth`. No files, no prints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.metrics.depth import knn_vote, prediction_depth

#: k of the probes (baldock2021 §2.1; A.4 finds the accuracies insensitive to k over a wide range).
DEFAULT_K = 30
#: Largest embedding fed to a probe; wider maps are average-pooled on a coarser grid (see `layer_embeddings`).
DEFAULT_MAX_DIM = 2048
#: Training images the probes are fitted on (a seeded subsample of the network's own training images).
DEFAULT_N_REFERENCE = 2000
KNN_BACKENDS = ("sklearn", "faiss")


def resolve_knn_backend(backend: str = "auto") -> str:
    """"auto" picks faiss when it is installed (measured faster, benchmarks/bench_depth.py), else scikit-learn."""
    if backend == "auto":
        try:
            import faiss  # noqa: F401
        except ImportError:
            return "sklearn"
        return "faiss"
    if backend not in KNN_BACKENDS:
        raise ValueError(f"k-NN backend must be auto or one of {KNN_BACKENDS}, got {backend!r}")
    return backend


def probe_layer_names(model) -> list[str]:
    """Names of the probe positions of `model`: input, each block, softmax.

    Models with a ``features(x)`` method (SmallResNet, SmallDenseNet) give the
    stem and every stage; a plain ``nn.Sequential`` (vgg_small) gives the
    output of every ReLU, as baldock2021 places probes after each VGG layer.
    """
    import torch.nn as nn

    if hasattr(model, "features"):
        n_stages = len(model.stages) if hasattr(model, "stages") else None
        if n_stages is None:
            raise ValueError(f"{type(model).__name__}.features() has no `stages` to name; cannot place probes")
        hidden = ["stem"] + [f"stage{i + 1}" for i in range(n_stages)]
    elif isinstance(model, nn.Sequential):
        n_relu = sum(isinstance(m, nn.ReLU) for m in model)
        if n_relu == 0:
            raise ValueError("an nn.Sequential model without ReLU layers has no place for probes")
        hidden = [f"relu{i + 1}" for i in range(n_relu)]
    else:
        raise ValueError(
            f"prediction depth needs a model with features(x) or an nn.Sequential, got {type(model).__name__}"
        )
    return ["input", *hidden, "softmax"]


def _hidden_outputs(model, x) -> list:
    import torch.nn as nn

    if hasattr(model, "features"):
        return list(model.features(x))
    outs = []
    for m in model:
        x = m(x)
        if isinstance(m, nn.ReLU):
            outs.append(x)
    return outs


def _flatten(t, max_dim: int | None):
    """Flatten a map; when C*H*W > max_dim, average-pool it to the largest s x s grid with C*s*s <= max_dim."""
    import torch.nn.functional as F

    if t.ndim == 4 and max_dim is not None:
        c, h, w = t.shape[1:]
        if c * h * w > max_dim:
            s = max(1, int(math.isqrt(max(1, max_dim // c))))
            t = F.adaptive_avg_pool2d(t, (min(s, h), min(s, w)))
    return t.reshape(t.shape[0], -1).float()


def layer_embeddings(model, images, norm, *, max_dim: int | None = DEFAULT_MAX_DIM, batch_size: int = 1000,
                     channels_last: bool = True):
    """Yield the probe embeddings of `images` batch by batch.

    Parameters
    ----------
    model : torch.nn.Module
        A trained network (set to eval mode here).
    images : torch.Tensor of uint8, shape (n_images, C, H, W)
    norm : audit.data.tensors.Normalizer
        The normalisation the network was trained with.
    max_dim : int or None, default DEFAULT_MAX_DIM
        baldock2021 flattens each layer's output. Maps wider than `max_dim`
        values are first average-pooled to a coarser grid (None = always the
        full map); benchmarks/bench_depth.py measures what this changes.
    batch_size : int, default 1000

    Yields
    ------
    start : int
        Index of the batch's first image.
    embeddings : list of ndarray of float32, each of shape (batch, d_layer)
        One per `probe_layer_names(model)`: the normalised input, each block,
        and the softmax.
    """
    import torch

    model.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = norm(images[start : start + batch_size], channels_last)
            hidden = _hidden_outputs(model, x)
            probs = torch.softmax(model(x).float(), dim=1)
            layers = [x, *hidden, probs]
            yield start, [_flatten(t, max_dim).cpu().numpy().astype(np.float32, copy=False) for t in layers]


class ExactKNN:
    """Exact Euclidean k nearest neighbours, with scikit-learn or faiss (``IndexFlatL2``).

    Parameters
    ----------
    k : int, default DEFAULT_K
    backend : {"auto", "sklearn", "faiss"}, default "auto"
        Both are exact; benchmarks/bench_depth.py measures which is faster
        ("auto" = `resolve_knn_backend`). The one used is `backend_`.
    """

    def __init__(self, k: int = DEFAULT_K, backend: str = "auto"):
        self.k = k
        self.backend = backend

    def fit(self, reference: np.ndarray, labels: np.ndarray) -> ExactKNN:
        self.backend_ = resolve_knn_backend(self.backend)
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        if len(reference) < self.k:
            raise ValueError(f"k={self.k} needs at least {self.k} reference points, got {len(reference)}")
        if len(labels) != len(reference):
            raise ValueError(f"reference has {len(reference)} rows but labels has {len(labels)}")
        self.labels_ = np.asarray(labels)
        if self.backend_ == "faiss":
            try:
                import faiss
            except ImportError:
                raise ValueError("the faiss k-NN backend needs faiss-cpu: pip install faiss-cpu") from None
            import torch

            faiss.omp_set_num_threads(max(1, torch.get_num_threads()))  # the job's thread budget
            self.index_ = faiss.IndexFlatL2(reference.shape[1])
            self.index_.add(reference)
        else:
            from sklearn.neighbors import NearestNeighbors

            self.index_ = NearestNeighbors(n_neighbors=self.k, algorithm="brute").fit(reference)
        return self

    def neighbor_labels(self, query: np.ndarray) -> np.ndarray:
        """Labels of the k nearest reference points, nearest first: shape (n_query, k)."""
        query = np.ascontiguousarray(query, dtype=np.float32)
        if self.backend_ == "faiss":
            _, idx = self.index_.search(query, self.k)
        else:
            idx = self.index_.kneighbors(query, return_distance=False)
        return self.labels_[idx]


def softmax_outputs(model, images, norm, *, batch_size: int = 1000, channels_last: bool = True) -> np.ndarray:
    """The network's softmax on `images` (uint8, shape (n_images, C, H, W)): float32 (n_images, n_classes)."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = norm(images[start : start + batch_size], channels_last)
            out.append(torch.softmax(model(x).float(), dim=1).cpu())
    return torch.cat(out).numpy()


@dataclass
class DepthResult:
    """Probe predictions and prediction depth of a set of query images in one network.

    Arrays have one row per query image; ``layers`` names the probe positions
    (input first, softmax last), so the depth lies in 0..len(layers) - 1.
    """

    layers: list[str]
    dims: list[int]
    probe_predictions: np.ndarray  # (n_images, n_layers) int16
    vote_share: np.ndarray  # (n_images, n_layers) float32
    predicted: np.ndarray  # (n_images,) the network's argmax
    probs: np.ndarray  # (n_images, n_classes) float32 softmax
    depth: np.ndarray  # (n_images,) float, NaN where undefined
    n_reference: int
    k: int
    backend: str
    seconds: float

    @property
    def max_depth(self) -> int:
        return len(self.layers) - 1

    def frame(self, image_ids, split: str) -> pd.DataFrame:
        """The rows stored in depth/<model>.parquet: image_id, split, depth, predicted, probe_<layer>."""
        frame = pd.DataFrame({
            "image_id": np.asarray(image_ids, dtype=np.int64),
            "split": split,
            "depth": self.depth.astype(np.float32),
            "predicted": self.predicted.astype(np.int32),
        })
        for i, name in enumerate(self.layers):
            frame[f"probe_{name}"] = self.probe_predictions[:, i]
        return frame

    def describe(self) -> dict:
        """Facts for the job record: layers, dims, reference size, k, backend, undefined share, seconds."""
        return {"layers": self.layers, "dims": self.dims, "max_depth": self.max_depth,
                "n_reference": self.n_reference, "k": self.k, "backend": self.backend,
                "undefined_share": float(np.isnan(self.depth).mean()), "mean_depth": _nanmean(self.depth),
                "seconds": round(self.seconds, 3)}


def _nanmean(values: np.ndarray) -> float | None:
    ok = values[~np.isnan(values)]
    return float(ok.mean()) if ok.size else None


def probe_depth(model, reference_images, reference_labels, query_images, norm, *, n_classes: int,
                k: int = DEFAULT_K, max_dim: int | None = DEFAULT_MAX_DIM, backend: str = "auto",
                batch_size: int = 1000, channels_last: bool = True) -> DepthResult:
    """Fit k-NN probes on the reference images and find the prediction depth of each query image.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network.
    reference_images : torch.Tensor of uint8, shape (n_reference, C, H, W)
        Training images of this network (baldock2021 builds the probes from
        the training split); subsample them beforehand to bound the cost.
    reference_labels : array-like of int, shape (n_reference,)
        Their labels (the probes vote with the given labels).
    query_images : torch.Tensor of uint8, shape (n_images, C, H, W)
    norm : audit.data.tensors.Normalizer
    n_classes : int
    k, max_dim, backend, batch_size : see DEFAULT_K, `layer_embeddings`, `ExactKNN`.

    Returns
    -------
    result : DepthResult
    """
    t0 = time.perf_counter()
    backend = resolve_knn_backend(backend)
    names = probe_layer_names(model)
    reference_labels = np.asarray(reference_labels, dtype=np.int64)
    ref_layers: list[list[np.ndarray]] = [[] for _ in names]
    for _, emb in layer_embeddings(model, reference_images, norm, max_dim=max_dim, batch_size=batch_size,
                                   channels_last=channels_last):
        for i, e in enumerate(emb):
            ref_layers[i].append(e)
    if len(ref_layers) != len(names):
        raise ValueError(f"{type(model).__name__} gave {len(ref_layers)} embeddings for {len(names)} probes")
    dims = [int(parts[0].shape[1]) for parts in ref_layers]
    knns = [ExactKNN(k, backend).fit(np.concatenate(parts), reference_labels) for parts in ref_layers]
    del ref_layers
    n = len(query_images)
    probes = np.empty((n, len(names)), dtype=np.int16)
    share = np.empty((n, len(names)), dtype=np.float32)
    probs = np.empty((n, n_classes), dtype=np.float32)
    for start, emb in layer_embeddings(model, query_images, norm, max_dim=max_dim, batch_size=batch_size,
                                       channels_last=channels_last):
        stop = start + len(emb[0])
        probs[start:stop] = emb[-1]
        for i, (knn, e) in enumerate(zip(knns, emb, strict=True)):
            pred, vote = knn_vote(knn.neighbor_labels(e), n_classes=n_classes)
            probes[start:stop, i] = pred
            share[start:stop, i] = vote
    predicted = probs.argmax(axis=1)
    depth = prediction_depth(probes.astype(np.int64), predicted)
    return DepthResult(layers=names, dims=dims, probe_predictions=probes, vote_share=share, predicted=predicted,
                       probs=probs, depth=depth, n_reference=len(reference_labels), k=k, backend=backend,
                       seconds=time.perf_counter() - t0)


def reference_subsample(indices: np.ndarray, n_reference: int | None, random_state: int = 0) -> np.ndarray:
    """A seeded, sorted subsample of at most `n_reference` of `indices` (all of them when None)."""
    indices = np.asarray(indices)
    if n_reference is None or n_reference >= len(indices):
        return np.sort(indices)
    return np.sort(np.random.default_rng(random_state).choice(indices, size=n_reference, replace=False))
