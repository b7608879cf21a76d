"""Jobs: one per trained variant and one per pretrained model, each producing a decision table.

A job gets a `JobContext` (dataset, device, options) and returns a `JobOutput`;
it never writes the store itself, so any executor (local or Ray) can run it
and hand the output to the store's atomic writer. The one file a job writes is
a variant's per-epoch checkpoint, in the folder the engine names in the context.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from audit.data.sources import Dataset
from audit.store import decisions_frame

ProgressFn = Callable[[str, int, int], None]


@dataclass
class JobContext:
    """What every job needs: the dataset, the device and the run's options."""

    dataset: Dataset
    device: str = "auto"
    record_train: bool = False
    seed: int = 0
    cache_dir: str | None = None
    flip: bool = False
    threads: int | None = None
    #: prediction depth (baldock2021) for "none", the "base" group's variants, or "all" variants
    depth: str = "base"
    #: also the depth of the probes' reference images (training split), as baldock2021 does
    depth_train: bool = False
    #: training images the k-NN probes are fitted on (None = all of the variant's own)
    depth_reference: int | None = 2000
    #: k-NN library: auto (faiss when installed), faiss or sklearn
    knn_backend: str = "auto"
    #: store each variant's final softmax on the validation split (probs/<model>.npy), for label issues
    probs: bool = True
    #: run the variants' forward passes through torch.compile
    compile: bool = False
    #: how pretrained models' images are resized: "pil" (timm's transform) or "torch" (faster, within a few levels)
    resizer: str = "pil"
    #: folder for the variants' per-epoch checkpoints (the engine sets it inside the audit directory)
    checkpoint_dir: str | None = None
    _tensors: dict = field(default_factory=dict, repr=False)

    def wants_depth(self, group: str) -> bool:
        if self.depth not in ("none", "base", "all"):
            raise ValueError(f"depth must be none, base or all, got {self.depth!r}")
        return self.depth == "all" or (self.depth == "base" and group == "base")

    def torch_device(self):
        from audit.train import resolve_device

        return resolve_device(self.device)

    def tensors(self):
        """Train and val splits as uint8 tensors on the device (built once per context)."""
        from audit.train import TensorData

        dev = self.torch_device()
        key = str(dev)
        if key not in self._tensors:
            ds = self.dataset
            if ds.train is None:
                raise ValueError(f"{ds.name} has no training split; trained variants need one (use --variants none)")
            self._tensors[key] = (
                TensorData.from_numpy(_as_array(ds.train), ds.train.labels, dev),
                TensorData.from_numpy(_as_array(ds.val), ds.val.labels, dev),
            )
        return self._tensors[key]


def _as_array(split) -> np.ndarray:
    if split.images is None:
        raise ValueError("trained variants need decoded images; decode the ImageFolder first (see audit.data.decode)")
    return np.array(split.images)  # a writable copy for torch


@dataclass
class JobOutput:
    """What a job hands back. `decisions` is None for jobs that are not models (their record goes to aux/).

    `extras` maps paths inside the audit (depth/, probs/, learnability/) to a
    DataFrame or an array; the store writes them before the record.
    """

    record: dict
    decisions: pd.DataFrame | None
    train_decisions: pd.DataFrame | None = None
    extras: dict = field(default_factory=dict)


class Job(Protocol):
    name: str
    kind: str

    def describe(self) -> dict: ...

    def estimate_seconds(self, ctx: JobContext) -> float: ...

    def run(self, ctx: JobContext, progress: ProgressFn | None = None) -> JobOutput: ...


def _environment() -> dict:
    import torch

    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}


@dataclass
class VariantJob:
    """Train one variant (meding2022 A.1) and record its decisions every epoch."""

    spec: object  # VariantSpec
    kind: str = "variant"

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "group": self.spec.group, "spec": self.spec.to_dict()}

    def estimate_seconds(self, ctx: JobContext) -> float:
        """A rough CPU estimate from the work done (images seen x epochs), calibrated on 2 cores."""
        from audit.train import train_indices

        ds = ctx.dataset
        n_train = len(train_indices(len(ds.train), self.spec)) if ds.train is not None else 0
        h, w = (ds.val.images.shape[1:3] if ds.val.images is not None else (32, 32))
        scale = (h * w) / (28 * 28)
        per_image = {"resnet_small": 1 / 2500, "vgg_small": 1 / 5000, "densenet_small": 1 / 600}.get(self.spec.arch, 1 / 1500)
        train_cost = self.spec.epochs * n_train * per_image * (1.3 if self.spec.split_batch else 1.0)
        eval_cost = (self.spec.epochs + 1) * len(ds.val) * per_image / 3
        if ctx.record_train:
            eval_cost += (self.spec.epochs + 1) * n_train * per_image / 3
        if ctx.wants_depth(self.spec.group):  # embeddings of the val and reference images, and the k-NN
            n_ref = min(n_train, ctx.depth_reference or n_train)
            eval_cost += (len(ds.val) + n_ref) * per_image + len(ds.val) * n_ref / 4e6
        seconds = (train_cost + eval_cost) * scale
        if ctx.compile:  # benchmarks/bench_scale.py on 2 CPU cores: ~35 s to compile, then ~1.17x faster epochs
            seconds = seconds / 1.17 + 35.0
        return seconds / 20 if ctx.torch_device().type == "cuda" else seconds

    def checkpoint_path(self, ctx: JobContext) -> str | None:
        return None if ctx.checkpoint_dir is None else str(Path(ctx.checkpoint_dir) / f"{self.name}.pt")

    def run(self, ctx: JobContext, progress: ProgressFn | None = None) -> JobOutput:
        import torch

        from audit.train import train_variant

        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        train, val = ctx.tensors()
        res = train_variant(self.spec, train, val, ctx.dataset.n_classes, device=ctx.torch_device(),
                            record_train=ctx.record_train, flip=ctx.flip, progress=progress,
                            compile=ctx.compile, checkpoint=self.checkpoint_path(ctx))
        ds = ctx.dataset
        decisions = decisions_frame(res.epochs, np.arange(len(ds.val)), res.predicted, res.true_prob,
                                    res.top_prob, ds.val.labels)
        train_dec = None
        if res.train_predicted is not None:
            train_dec = decisions_frame(res.epochs, np.arange(len(ds.train)), res.train_predicted,
                                        res.train_true_prob, res.train_top_prob, ds.train.labels)
        from audit.deep.jobs import deep_outputs

        extras, deep = deep_outputs(self.spec, ctx, res.model, train, val)
        record = {
            **self.describe(),
            **deep,
            "accuracy": res.val_accuracy[-1],
            "n_epochs": self.spec.epochs,
            "val_accuracy_curve": res.val_accuracy,
            "train_loss_curve": res.train_loss,
            "weights_source": f"trained here (init seed {self.spec.init_seed})",
            "weights_hash": _state_hash(res.model),
            "seconds": round(res.seconds, 3),
            "device": str(ctx.torch_device()),
            "compiled": bool(ctx.compile),
            "resumed_after_epoch": res.resumed_after_epoch,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "environment": _environment(),
        }
        return JobOutput(record=record, decisions=decisions, train_decisions=train_dec, extras=extras)


def _state_hash(model) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
