"""Batched inference of one model over decoded uint8 images (the decode cache's output).

Batches are normalised on the device, fed channels-last under `torch.inference_mode`
(and autocast on CUDA); when memory runs out the batch size is halved and the
batch retried, as timm's validate.py does. Returns numpy arrays; writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

ProgressFn = Callable[[str, int, int], None]
OUTPUTS = ("logits", "features")


@dataclass
class Prediction:
    """Model outputs for every image: `values` has shape (n_images, n_outputs), float32."""

    values: np.ndarray
    batch_size: int
    seconds: float


def _autocast(device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _batch_tensor(images, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        x = images[lo:hi]
    else:
        part = images[lo:hi]
        if isinstance(part, np.memmap) or not part.flags.writeable:
            part = np.array(part)  # read-only on-disk cache: copy this batch
        x = torch.from_numpy(part)
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    return x


def _is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in msg or "can't allocate memory" in msg


def predict(
    model: torch.nn.Module,
    images,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
    batch_size: int = 128,
    output: str = "logits",
    progress: ProgressFn | None = None,
) -> Prediction:
    """Run `model` over uint8 images.

    Parameters
    ----------
    images : ndarray or Tensor of uint8, shape (n_images, 3, H, W)
    mean, std : the model's normalisation, in [0, 1] units
    output : "logits" (the classifier's output) or "features" (pooled pre-logits, for a linear probe)

    Returns
    -------
    Prediction with values of shape (n_images, n_classes) or (n_images, n_features)
    """
    import time

    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if len(images) == 0:
        raise ValueError("no images to predict")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (n_images, 3, H, W), got {tuple(images.shape)}")
    device = torch.device(device)
    t0 = time.perf_counter()
    model = model.eval().to(device, memory_format=torch.channels_last)
    shift = torch.tensor([255.0 * m for m in mean], device=device).view(1, 3, 1, 1)
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, 3, 1, 1)
    n = len(images)
    chunks: list[torch.Tensor] = []
    lo = 0
    bs = max(1, int(batch_size))
    with torch.inference_mode():
        while lo < n:
            hi = min(n, lo + bs)
            try:
                x = _batch_tensor(images, lo, hi, device).float().sub_(shift).mul_(scale)
                x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device):
                    if output == "logits":
                        y = model(x)
                    else:
                        y = model.forward_head(model.forward_features(x), pre_logits=True)
                chunks.append(y.float().cpu())
            except RuntimeError as exc:
                if not _is_oom(exc) or bs == 1:
                    raise
                del exc
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                bs //= 2  # out of memory: retry this batch at half the size
                continue
            lo = hi
            if progress is not None:
                progress(output, lo, n)
    values = torch.cat(chunks).numpy()
    if values.ndim != 2:
        values = values.reshape(len(values), -1)
    return Prediction(values=values, batch_size=bs, seconds=time.perf_counter() - t0)
