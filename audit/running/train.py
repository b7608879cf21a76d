"""The training loop that records every decision on the validation split at every epoch.

Small datasets live on the device as uint8 tensors and are augmented there in
batches (random shifts, flips); the per-epoch evaluation reuses the same
tensors. Epoch 0 is recorded before any training. Progress goes to a callback;
nothing here prints, and the only file written is the checkpoint a caller asks for.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audit.data.tensors import INPUT_TRANSFORMS, Normalizer, TensorData  # noqa: F401  (the trainer's inputs)
from audit.models.architectures import create_architecture
from audit.models.variants import VariantSpec

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available; use --device auto or cpu")
    if device not in ("cpu",) and not device.startswith("cuda") and device != "mps":
        raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(device)


def has_nondeterministic_kernels(device: torch.device) -> bool:
    """Only CUDA has the non-deterministic kernels of meding2022 A.1's "CUDA non-deterministic" condition."""
    return device.type == "cuda"


def augment(x: torch.Tensor, generator: torch.Generator, *, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Batched random shifts (zero padding, random crop) and horizontal flips on uint8 tensors."""
    n, c, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(x.device)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (n, h)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # (n, w)
        idx_n = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator, device="cpu") < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def train_indices(n_train: int, spec: VariantSpec) -> np.ndarray:
    """The training images a variant sees: all, a seeded half, or one of two disjoint halves.

    `train_size` first takes a fixed subset (the same for every variant, seed 0),
    so that "all" and the halves refer to the same pool.
    """
    pool = np.arange(n_train)
    if spec.train_size is not None and spec.train_size < n_train:
        pool = np.sort(np.random.default_rng(0).permutation(n_train)[: spec.train_size])
    half = len(pool) // 2
    if spec.train_part == "all":
        return pool
    if spec.train_part == "half":
        return np.sort(np.random.default_rng(spec.order_seed + 7919).permutation(pool)[:half])
    shuffled = np.random.default_rng(12345).permutation(pool)
    if spec.train_part == "first_half":
        return np.sort(shuffled[:half])
    if spec.train_part == "second_half":
        return np.sort(shuffled[half : 2 * half])
    raise ValueError(f"train_part must be all, half, first_half or second_half, got {spec.train_part!r}")


@torch.inference_mode()
def evaluate(model, data: TensorData, norm: Normalizer, *, batch_size: int = 1000,
             channels_last: bool = True, amp: bool = False) -> tuple[np.ndarray, ...]:
    """Predicted label, true-class probability, top probability, margin and sum of squared probabilities.

    The margin is the true-class logit minus the largest other logit (Pleiss et al. 2020, for AUM);
    the sum of p_k^2 gives EL2N without storing every probability (Paul et al. 2021; see
    audit.metrics.training_scores). One value of each per image.
    """
    model.eval()
    preds, true_p, top_p, margins, sq_sums = [], [], [], [], []
    for start in range(0, len(data), batch_size):
        x = norm(data.images[start : start + batch_size], channels_last)
        y = data.labels[start : start + batch_size]
        with _autocast(x.device, amp):
            logits = model(x)
        prob = torch.softmax(logits.float(), dim=1)
        top, pred = prob.max(dim=1)
        preds.append(pred.cpu())
        top_p.append(top.cpu())
        true_p.append(prob.gather(1, y[:, None])[:, 0].cpu())
        logits = logits.float()
        others = logits.scatter(1, y[:, None], float("-inf"))
        margins.append((logits.gather(1, y[:, None])[:, 0] - others.max(dim=1).values).cpu())
        sq_sums.append(prob.square().sum(dim=1).cpu())
    return tuple(torch.cat(parts).numpy() for parts in (preds, true_p, top_p, margins, sq_sums))


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class TrainResult:
    """Per-epoch decisions (shape (n_epochs + 1, n_images)) and the training curve."""

    epochs: list[int]
    predicted: np.ndarray
    true_prob: np.ndarray
    top_prob: np.ndarray
    train_predicted: np.ndarray | None
    train_true_prob: np.ndarray | None
    train_top_prob: np.ndarray | None
    train_loss: list[float]
    val_accuracy: list[float]
    seconds: float
    model: torch.nn.Module
    #: the epoch a checkpoint was resumed after (None: trained from the start)
    resumed_after_epoch: int | None = None
    #: margin and sum of squared probabilities, shaped like `true_prob` (see `evaluate`)
    margin: np.ndarray | None = None
    prob_sq_sum: np.ndarray | None = None
    train_margin: np.ndarray | None = None
    train_prob_sq_sum: np.ndarray | None = None


def one_cycle_factor(step: int, total_steps: int, *, warmup: float = 0.25, start: float = 0.1,
                     end: float = 1e-4) -> float:
    """The one-cycle learning rate at optimizer step `step`, as a fraction of the peak.

    Cosine from `start` up to 1 over the first `warmup` share of the steps, then cosine down to `end`:
    the values of torch's OneCycleLR (div_factor 10, final_div_factor 1e3), which divides by zero when
    the warm-up ends on step 0 (4 steps in all, e.g. a tiny dataset's "plus1" variant); here a phase of
    no length counts as finished.
    """
    warm_end = warmup * total_steps - 1.0
    if step <= warm_end:
        lo, hi, pct = start, 1.0, (step / warm_end if warm_end > 0 else 1.0)
    else:
        span = (total_steps - 1.0) - warm_end
        lo, hi, pct = 1.0, end, (min(1.0, (step - warm_end) / span) if span > 0 else 1.0)
    return hi + (lo - hi) / 2.0 * (math.cos(math.pi * pct) + 1.0)


#: an epoch of a small training split passes over it at most this many times to draw `epoch_size` images
MAX_PASSES_PER_EPOCH = 10


def epoch_draws(n_part: int, epoch_size: int | None, *, max_passes: int = MAX_PASSES_PER_EPOCH) -> int:
    """How many images one epoch draws from a training part of `n_part` images.

    `epoch_size` None: one pass over the part. Otherwise `epoch_size` images, drawn as consecutive fresh
    permutations of the part when it is smaller (at most `max_passes` of them), so that a small dataset
    (digits' 1,198 images, a folder of a few hundred) still gets enough optimizer steps per epoch from
    a recipe sized for Fashion-MNIST, where 30,000 of the 60,000 images make one epoch.
    """
    if epoch_size is None or n_part == 0:
        return n_part
    return min(epoch_size, n_part * max_passes)


def make_scheduler(optimizer, spec: VariantSpec, *, steps_per_epoch: int):
    """The learning-rate schedule: "step" (x0.1 at the fractions `lr_milestones` of the epochs, stepped
    once per epoch) or "onecycle" (Smith & Topin 2019: warm up over the first 25 % of the steps to
    `lr`, then cosine down to lr / 10^4 over the rest, stepped once per optimizer step).

    Both span the variant's own epochs, so a variant trained one epoch longer ("plus1") gets the same
    schedule stretched over one more epoch.
    """
    if spec.schedule == "onecycle":
        steps = spec.epochs * steps_per_epoch * (2 if spec.split_batch else 1)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: one_cycle_factor(step, max(steps, 1)))
    milestones = sorted({max(1, int(round(f * spec.epochs))) for f in spec.lr_milestones})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def _checkpoint_meta(spec: VariantSpec, train: TensorData, val: TensorData, record_train: bool, flip: bool) -> str:
    """What a checkpoint must match to be resumed: the spec, the options that change training, the data sizes."""
    return json.dumps({"spec": spec.to_dict(), "record_train": record_train, "flip": flip, "n_train": len(train),
                       "n_val": len(val)}, sort_keys=True, default=str)


def _load_checkpoint(path: Path | None, meta: str) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        # tensors and plain values only: a checkpoint in an audit folder from elsewhere runs no code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start the variant again
        return None
    if not isinstance(state, dict) or state.get("meta") != meta:
        return None
    state["records"] = {k: [v.numpy() if isinstance(v, torch.Tensor) else v for v in values]
                        for k, values in state["records"].items()}
    return state


def _save_checkpoint(path: Path, state: dict) -> None:
    from audit.store import atomic_path

    with atomic_path(path, ".pt") as tmp:
        torch.save(state, tmp)


class _Step:
    """The optimizer steps of one epoch: augment, normalise, forward, backward and step, batch by batch."""

    def __init__(self, net, optimizer, scheduler, spec: VariantSpec, norm, *, device, amp: bool,
                 channels_last: bool):
        self.net, self.optimizer, self.scheduler, self.spec, self.norm = net, optimizer, scheduler, spec, norm
        self.device, self.amp, self.channels_last = device, amp, channels_last

    def epoch(self, train: TensorData, order, gen, *, flip: bool, n_batches: int, progress=None) -> float:
        """Train on `order` in batches; the epoch's mean training loss. `progress(b)` after batch b (from 1)."""
        spec = self.spec
        epoch_loss, seen = 0.0, 0
        for b in range(n_batches):
            idx = order[b * spec.batch_size : (b + 1) * spec.batch_size]
            x = augment(train.images[idx], gen, flip=flip)
            x = self.norm(x, self.channels_last)
            y = train.labels[idx]
            chunks = [(x, y)] if not spec.split_batch else list(zip(x.chunk(2), y.chunk(2), strict=True))
            for xc, yc in chunks:
                with _autocast(self.device, self.amp):
                    loss = F.cross_entropy(self.net(xc), yc, label_smoothing=spec.label_smoothing)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if spec.schedule == "onecycle":
                    self.scheduler.step()
                epoch_loss += float(loss.detach()) * len(yc)
                seen += len(yc)
            if progress is not None:
                progress(b + 1)
        return epoch_loss / max(seen, 1)


def train_variant(
    spec: VariantSpec,
    train: TensorData,
    val: TensorData,
    n_classes: int,
    *,
    device: torch.device,
    record_train: bool = False,
    flip: bool = True,
    progress: ProgressFn | None = None,
    amp: bool | None = None,
    compile: bool = False,
    checkpoint: str | os.PathLike | None = None,
) -> TrainResult:
    """Train one variant and record its decisions on `val` at epoch 0 and after every epoch.

    `train` is the full training split; the variant's own part of it is taken
    with `train_indices`. Seeds: `init_seed` fixes the weights, `order_seed` the
    batch order and augmentation. `compile` runs the forward passes through
    `torch.compile` (a one-off compile cost per variant; see benchmarks/bench_scale.py
    for where it pays); the returned `model` is always the plain module.

    `checkpoint` is a file written after every epoch (weights, optimizer,
    schedule, random state and the decisions so far). When it exists and was
    written for the same spec and data, training resumes after its epoch and
    gives the same result as an uninterrupted run on the same device and threads.
    """
    t0 = time.perf_counter()
    channels_last = True
    amp = (device.type == "cuda") if amp is None else amp
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = spec.deterministic
        torch.backends.cudnn.benchmark = not spec.deterministic
    part = torch.from_numpy(train_indices(len(train), spec)).to(device)
    norm = Normalizer.fit(train)

    torch.manual_seed(spec.init_seed)
    in_channels = train.images.shape[1]
    model = create_architecture(spec.arch, in_channels=in_channels, n_classes=n_classes, **spec.arch_kwargs)
    model = model.to(device).to(memory_format=torch.channels_last)
    net = torch.compile(model, dynamic=False) if compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                                weight_decay=spec.weight_decay)
    part_size = epoch_draws(len(part), spec.epoch_size)
    n_batches = (part_size + spec.batch_size - 1) // spec.batch_size
    total_steps = spec.epochs * n_batches
    scheduler = make_scheduler(optimizer, spec, steps_per_epoch=n_batches)
    gen = torch.Generator().manual_seed(spec.order_seed)

    val_keys, train_keys = ("pred", "true", "top", "margin", "sq"), ("tpred", "ttrue", "ttop", "tmargin", "tsq")
    records = {k: [] for k in val_keys + train_keys}

    def record():
        for key, values in zip(val_keys, evaluate(net, val, norm, channels_last=channels_last, amp=amp), strict=True):
            records.setdefault(key, []).append(values)
        if record_train:
            for key, values in zip(train_keys, evaluate(net, train, norm, channels_last=channels_last, amp=amp),
                                   strict=True):
                records.setdefault(key, []).append(values)
        return float((records["pred"][-1] == val.labels.cpu().numpy()).mean())

    ckpt = Path(checkpoint) if checkpoint is not None else None
    meta = _checkpoint_meta(spec, train, val, record_train, flip)
    state = _load_checkpoint(ckpt, meta)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        records = state["records"]
        val_acc, losses, start_epoch = state["val_accuracy"], state["train_loss"], state["epoch"] + 1
        if state.get("threads"):  # the rest of the variant sums its floats as its first epochs did
            torch.set_num_threads(int(state["threads"]))
    else:
        val_acc, losses, start_epoch = [record()], [], 1
    for epoch in range(start_epoch, spec.epochs + 1):
        net.train()
        passes = [torch.randperm(len(part), generator=gen) for _ in range(-(-part_size // len(part)))]
        order = part[torch.cat(passes)[:part_size].to(device)]
        step = _Step(net, optimizer, scheduler, spec, norm, device=device, amp=amp, channels_last=channels_last)
        loss = step.epoch(train, order, gen, flip=flip, n_batches=n_batches,
                          progress=None if progress is None else
                          (lambda b, epoch=epoch: progress("train", (epoch - 1) * n_batches + b, total_steps)))
        if spec.schedule == "step":
            scheduler.step()
        losses.append(loss)
        val_acc.append(record())
        if ckpt is not None and epoch < spec.epochs:
            _save_checkpoint(ckpt, {"meta": meta, "epoch": epoch, "model": model.state_dict(),
                                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                    "generator": gen.get_state(), "val_accuracy": val_acc,
                                    "records": {k: [torch.from_numpy(np.ascontiguousarray(v)) for v in values]
                                                for k, values in records.items()},
                                    "train_loss": losses, "threads": torch.get_num_threads()})
    # a checkpoint from before the margins were recorded has fewer epochs of them: left out then
    stack = lambda key: np.stack(records[key]) if len(records.get(key, ())) == len(records["pred"]) else None  # noqa: E731
    return TrainResult(
        epochs=list(range(spec.epochs + 1)),
        predicted=stack("pred"), true_prob=stack("true"), top_prob=stack("top"),
        train_predicted=stack("tpred"), train_true_prob=stack("ttrue"), train_top_prob=stack("ttop"),
        train_loss=losses, val_accuracy=val_acc, seconds=time.perf_counter() - t0, model=model,
        resumed_after_epoch=None if state is None else start_epoch - 1,
        margin=stack("margin"), prob_sq_sum=stack("sq"), train_margin=stack("tmargin"),
        train_prob_sq_sum=stack("tsq"),
    )
