"""The job protocol: what a job gets (`JobContext`), hands back (`JobOutput`) and reports (`ProgressFn`),
and the registry of job kinds that the engine plans a run from.

A job never writes the store itself, so any executor (local or Ray) can run it
and hand the output to the store's atomic writer. The one file a job writes is
a variant's per-epoch checkpoint, in the folder the engine names in the context.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from audit.data.base import Dataset

#: A job's progress callback: (stage, done, total).
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
    #: choose `threads` again before each job, from the cores other processes leave free (the default)
    adapt_threads: bool = False
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
    #: validation images whose penultimate Gram matrix each model stores (representation/), for RSA and CKA;
    #: a seeded subset shared by all models, 0 = none, None = all
    rsa_images: int | None = 2000
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
        from audit.running.train import resolve_device

        return resolve_device(self.device)

    def tensors(self):
        """Train and val splits as uint8 tensors on the device (built once per context)."""
        from audit.running.train import TensorData

        dev = self.torch_device()
        key = str(dev)
        if key not in self._tensors:
            ds = self.dataset
            if ds.train is None:
                raise ValueError(f"{ds.name} has no training split; trained variants need one (use --variants none)")
            self._tensors[key] = (
                TensorData.from_numpy(_as_array(ds.train), ds.train.labels, dev, transform=ds.input_transform),
                TensorData.from_numpy(_as_array(ds.val), ds.val.labels, dev, transform=ds.input_transform),
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


def environment() -> dict:
    """The versions a job record keeps: torch, Python, the machine, and the intra-op threads it ran with."""
    import torch

    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------- the registry of job kinds
@dataclass
class JobPlanning:
    """What a job kind reads when it lists its jobs for a run.

    config : the run's `audit.running.engine.AuditConfig`
    context : the jobs' context; a kind may replace `context.dataset` (the variants decode a file dataset)
    specs : the variants of `config.variants` (`VariantSpec`s), resolved once for every kind
    notes : the run's notes; a kind appends what the user should know
    """

    config: object
    context: JobContext
    specs: list
    notes: list[str]

    @property
    def dataset(self) -> Dataset:
        return self.context.dataset


_KINDS: dict[str, type] = {}


def register_job(kind: str):
    """Class decorator: register a job class as the job kind `kind`.

    The class lists its jobs for a run in a classmethod `plan(planning: JobPlanning) -> list`
    (empty when the run asks for none). The engine asks the kinds in the order they were
    registered, which is the order `audit/running/jobs/__init__.py` imports them.
    """

    def add(cls: type) -> type:
        if getattr(cls, "kind", kind) != kind:
            raise ValueError(f"{cls.__name__}.kind is {cls.kind!r}, registered as {kind!r}")
        if not callable(getattr(cls, "plan", None)):
            raise TypeError(f"{cls.__name__} has no plan(planning) classmethod")
        old = _KINDS.get(kind)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"job kind {kind!r} is already registered by {old.__module__}.{old.__qualname__}")
        _KINDS[kind] = cls
        return cls

    return add


def job_kind(kind: str) -> type:
    """The job class registered as `kind`."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown job kind {kind!r}; registered: {', '.join(_KINDS)}") from None


def job_kinds() -> list[str]:
    """The registered kinds, in the order the engine plans them."""
    return list(_KINDS)
