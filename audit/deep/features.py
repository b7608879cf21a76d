"""The penultimate representation of a network on a seeded subset of the validation images.

`representation_images` picks the images (the same for every model of an audit);
`penultimate_features` runs a trained network and keeps the input of its last linear layer;
`capture` turns either into the `Representation` the audit stores (its Gram matrix,
never the features; see audit.metrics.representation). Used by the jobs while their model is
in memory; nothing here writes.
"""

from __future__ import annotations

import numpy as np

from audit.metrics.representation import Representation

#: Validation images whose representation an audit keeps by default (`--rsa-images`).
DEFAULT_RSA_IMAGES = 2000


def representation_images(n_images: int, n_wanted: int | None, *, seed: int = 0) -> np.ndarray:
    """Sorted image ids of a seeded subset of at most `n_wanted` of `n_images` (all when n_wanted is None or larger)."""
    if n_wanted is not None and n_wanted < 3:
        raise ValueError(f"--rsa-images must be at least 3 (or 0 for none), got {n_wanted}")
    if n_wanted is None or n_wanted >= n_images:
        return np.arange(n_images, dtype=np.int64)
    rng = np.random.default_rng([seed, 17])
    return np.sort(rng.choice(n_images, size=n_wanted, replace=False)).astype(np.int64)


def penultimate_features(model, images, norm, *, batch_size: int = 1000, channels_last: bool = True) -> np.ndarray:
    """The input of the network's last linear layer for `images` (uint8 tensor), float32 (n_images, n_features).

    Every trained architecture here ends in an nn.Linear classifier (SmallResNet's and
    SmallDenseNet's `fc`, the last layer of vgg_small and of the MLP), so its input is the
    penultimate representation, taken with a forward hook after training.
    """
    import torch
    import torch.nn as nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer whose input is a penultimate representation")
    captured: list = []
    hook = linears[-1].register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                model(norm(images[start : start + batch_size], channels_last))
    finally:
        hook.remove()
    return torch.cat([t.reshape(t.shape[0], -1).float().cpu() for t in captured]).numpy()


def capture(features: np.ndarray, image_ids: np.ndarray) -> Representation:
    """The stored form of one network's representation of `image_ids` (rows of `features`)."""
    return Representation.from_features(features, image_ids)
